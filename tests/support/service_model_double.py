"""A tiny model that honours the scoring contract, and a helper that registers it in real MLflow.

The service tests need a registered model before the real trainer exists. `CatalogueRecommender`
answers from a catalogue of eight items and three clients with fixed, explainable scores;
`DoublePyfunc` wraps it as an MLflow pyfunc (`.recommender`), and `register_double` logs this
file as the model's code (models-from-code, as the trainer logs scoring/pyfunc.py; the tag and
`broken` travel in the model config), so a service process loads it without unpickling anything.
Everything goes through a real registry and real artifacts; nothing is mocked.
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow.models
import mlflow.pyfunc
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from scoring import objective as objectives
from scoring.pyfunc import PACKAGE_FORMAT, PACKAGE_FORMAT_KEY

#: What a logged double that imports the support/ package ships as code (the reliability
#: doubles import this module as `support.service_model_double` in the service process too).
CODE_PATHS = [str(Path(__file__).resolve().parent)]

#: item_id -> (name, category, price, popularity)
ITEMS: dict[str, tuple[str, str, float, float]] = {
    "coffee": ("Coffee beans 500 g", "grocery", 9.0, 0.9),
    "coffee-premium": ("Single-origin coffee 500 g", "grocery", 15.0, 0.5),
    "filters": ("Paper filters x100", "grocery", 3.0, 0.7),
    "milk": ("Milk 1 l", "dairy", 1.5, 0.95),
    "mug": ("Ceramic mug", "home", 6.0, 0.4),
    "machine": ("Drip coffee machine", "home", 120.0, 0.3),
    "descaling": ("Descaling service", "service", 20.0, 0.2),
    "warranty": ("Extended warranty, 2 years", "service", 30.0, 0.1),
}
UPGRADES = {"coffee": "coffee-premium"}
SERVICES = {"machine": ["descaling", "warranty"]}
CONSUMABLES = {"coffee", "milk", "filters"}
GOES_WITH = {"coffee": ["filters", "mug", "milk", "machine"], "machine": ["coffee", "filters", "mug"],
             "milk": ["coffee"], "filters": ["coffee"], "mug": ["coffee"]}
HISTORY = {"c1": ["coffee", "milk"], "c2": ["machine"], "c3": ["mug"]}
SEGMENTS = {"c1": ("A", "active"), "c2": ("B", "lapsing"), "c3": ("C", "inactive")}


class CatalogueRecommender:
    """Implements `SuggestionModel` on the catalogue above. `broken=True` fails `smoke_check`."""

    def __init__(self, tag: str = "v", broken: bool = False) -> None:
        self.tag = tag
        self.broken = broken
        self.meta: dict[str, Any] = {"model_format": 1, "trained_at": "2024-01-01T00:00:00+00:00",
                                     "data": "double", "params": {"tag": tag}}

    def knows_client(self, client_id: str) -> bool:
        return client_id in HISTORY

    def knows_item(self, item_id: str) -> bool:
        return item_id in ITEMS

    def segment(self, client_id: str) -> dict[str, Any]:
        abc, activity = SEGMENTS.get(client_id, (None, None))
        return {"abc": abc, "activity": activity, "rfm": None if abc is None else f"{abc}11"}

    def _suggestion(self, item_id: str, kind: str, score: float, reason: str) -> dict[str, Any]:
        name, category, price, _ = ITEMS[item_id]
        return {"item_id": item_id, "name": name, "kind": kind, "score": round(score, 4), "price": price,
                "reason": reason, "category": category}

    def _candidates(self, client_id: str, kind: str, bought: list[str]) -> list[dict[str, Any]]:
        if kind == "cross_sell":
            seeds = bought or ["coffee"]
            scores: dict[str, float] = {}
            for seed in seeds:
                for rank, item in enumerate(GOES_WITH.get(seed, [])):
                    scores[item] = max(scores.get(item, 0.0), 1.0 - 0.1 * rank)
            for item, (_, _, _, popularity) in ITEMS.items():
                scores.setdefault(item, 0.1 * popularity)
            return [self._suggestion(item, kind, score, f"Often bought with {', '.join(seeds)}")
                    for item, score in scores.items() if item not in bought and ITEMS[item][1] != "service"]
        if kind == "upsell":
            return [self._suggestion(UPGRADES[item], kind, 0.8, f"A better {ITEMS[item][0].lower()}")
                    for item in bought if item in UPGRADES]
        if kind == "service_package":
            owned = [item for item in bought if item in SERVICES] or ["machine"]
            return [self._suggestion(service, kind, 0.7 - 0.1 * rank, f"Keeps your {ITEMS[item][0].lower()} going")
                    for item in owned for rank, service in enumerate(SERVICES.get(item, []))]
        if kind == "replenishment":
            return [self._suggestion(item, kind, 0.9, "Time to restock: you buy it regularly")
                    for item in bought if item in CONSUMABLES]
        if kind == "next_basket":  # the client's consumables first, then what goes with their items
            due = [{**s, "kind": kind, "score": 1.0 + s["score"]} for s in self._candidates(client_id, "replenishment", bought)]
            return due + [{**s, "kind": kind} for s in self._candidates(client_id, "cross_sell", bought)]
        raise ValueError(f"unknown kind {kind!r}")

    def suggest(self, client_id: str, kind: str, limit: int = 10, *, category: str | None = None,
                exclude: Sequence[str] = (), recent_purchases: Sequence[str] = (),
                objective: str = "relevance") -> list[dict[str, Any]]:
        """Its whole (small) ranking re-ordered under `objective` by the model's own maths; it has
        no margins, so objective=margin is refused as the contract says."""
        objectives.check(objective, has_margins=False)
        bought = list(dict.fromkeys([*HISTORY.get(client_id, []), *recent_purchases]))
        answer = [s for s in self._candidates(client_id, kind, bought)
                  if s["item_id"] not in exclude and (category is None or s["category"] == category)]
        ranked = sorted(answer, key=lambda s: (-s["score"], s["item_id"]))
        return objectives.with_objective(ranked, objective, source=objectives.RANK, rate=None, margins=None,
                                         limit=limit)

    def cart(self, items: Sequence[str], client_id: str | None = None, limit: int = 10, *,
             recent_purchases: Sequence[str] = ()) -> dict[str, Any]:
        known = [item for item in items if item in ITEMS]
        complete: dict[str, float] = {}
        for seed in known:
            for rank, item in enumerate(GOES_WITH.get(seed, [])):
                if item not in items and item not in recent_purchases:
                    complete[item] = max(complete.get(item, 0.0), 1.0 - 0.1 * rank)
        bundles = []
        if "coffee" in known:
            price = ITEMS["coffee"][2] + ITEMS["filters"][2] + ITEMS["mug"][2]
            bundles.append({"bundle_id": "coffee-starter", "name": "Coffee starter kit",
                            "items": ["coffee", "filters", "mug"], "price": price,
                            "bundle_price": round(price * 0.85, 2), "score": 0.6,
                            "reason": "Save 15% on coffee, filters and a mug together"})
        return {
            "complete": [self._suggestion(item, "cross_sell", score, "Completes your basket")
                         for item, score in sorted(complete.items(), key=lambda kv: -kv[1])][:limit],
            "upsell": [self._suggestion(UPGRADES[item], "upsell", 0.8, "A better choice for your cart")
                       for item in known if item in UPGRADES][:limit],
            "bundles": bundles[:limit],
            "unknown_items": [item for item in items if item not in ITEMS],
        }

    def similar(self, item_id: str, limit: int = 10) -> list[dict[str, Any]]:
        if item_id not in ITEMS:
            raise KeyError(item_id)
        category = ITEMS[item_id][1]
        return [self._suggestion(other, "similar", 0.5 + 0.5 * ITEMS[other][3], f"Also in {category}")
                for other in ITEMS if other != item_id and ITEMS[other][1] == category][:limit]

    def smoke_check(self) -> None:
        if self.broken:
            raise ValueError("this version is broken on purpose")
        if not self.suggest("c1", "cross_sell", 3):
            raise ValueError("no suggestion for a known client")


class DoublePyfunc(mlflow.pyfunc.PythonModel):
    """The MLflow wrapper the service unwraps: `.recommender` is the contract object."""

    def __init__(self, tag: str = "v", broken: bool = False) -> None:
        self.recommender = CatalogueRecommender(tag=tag, broken=broken)

    def load_context(self, context: Any) -> None:
        config = context.model_config or {}
        self.recommender = CatalogueRecommender(tag=str(config.get("tag", "v")), broken=bool(config.get("broken")))

    def predict(self, context: Any, model_input: list[str], params: dict[str, Any] | None = None) -> list[int]:
        return [len(self.recommender.suggest(str(client), "cross_sell")) for client in model_input]


def register_double(tracking_uri: str, name: str, alias: str | None = "champion", *, tag: str = "v",
                    broken: bool = False) -> str:
    """Log the double as a run artifact in `tracking_uri`, register it as a new version of `name`
    (moving `alias` to it when given) and return the version."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        mlflow.pyfunc.save_model(str(model_dir), python_model=__file__, model_config={"tag": tag, "broken": broken},
                                 pip_requirements=["mlflow"], metadata={PACKAGE_FORMAT_KEY: PACKAGE_FORMAT})
        run = client.create_run(experiment_id="0", run_name=f"service-double-{tag}")
        client.log_artifacts(run.info.run_id, str(model_dir), "model")
        client.set_terminated(run.info.run_id)
    try:
        client.create_registered_model(name)
    except MlflowException:
        pass  # already registered
    version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


# This file is the double's model code: MLflow runs it to rebuild the model (see register_double).
mlflow.models.set_model(DoublePyfunc())
