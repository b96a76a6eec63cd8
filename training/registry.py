"""Log a trained model to MLflow, register it, and decide whether it becomes `@champion`.

Order matters: everything that can fail (fitting, evaluation, saving, logging the artifact) runs
before `register_model`, so a run that fails part way leaves the registry untouched. A version
becomes `@champion` only through the promotion gate (or `--promote`); otherwise `@challenger`.
"""
from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from training.config import TrainConfig
from scoring.pyfunc import ARTIFACT_KEY, RecommenderPyfunc
from scoring.recommender import Recommender

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
#: Scoring code shipped inside the model (imports of `scoring` need `features` too).
CODE_PATHS = [str(ROOT / "scoring")]
PIP_REQUIREMENTS = ["numpy>=1.26,<3", "pandas>=2.1,<4", "pyarrow>=14", "scipy>=1.11,<2", "mlflow>=3,<4"]


@dataclass
class GateDecision:
    promote: bool
    failures: list[str] = field(default_factory=list)
    checked: dict[str, dict[str, float | None]] = field(default_factory=dict)


def primary_scores(result: dict[str, Any], ranker: str) -> dict[str, float]:
    """task -> the ranker's primary metric, for every task it was scored on."""
    out = {}
    for task, entry in result["tasks"].items():
        scores = entry.get("scores", {})
        if ranker in scores:
            out[task] = float(scores[ranker][entry["metric"]])
    return out


def gate(result: dict[str, Any], tolerance: float) -> GateDecision:
    """Promote only if, per task, model > popularity and model >= champion - tolerance (same split)."""
    decision = GateDecision(promote=True)
    model = primary_scores(result, "model")
    popularity = primary_scores(result, "popularity")
    champion = primary_scores(result, "champion")
    for task, value in model.items():
        metric = result["tasks"][task]["metric"]
        pop, champ = popularity.get(task), champion.get(task)
        decision.checked[task] = {"model": value, "popularity": pop, "champion": champ}
        if pop is not None and not value > pop:
            decision.failures.append(f"{task}: {metric} {value:.4f} is not above popularity {pop:.4f}")
        if champ is not None and value < champ - tolerance:
            decision.failures.append(f"{task}: {metric} {value:.4f} is below the champion's {champ:.4f} - {tolerance}")
    decision.promote = not decision.failures
    return decision


def ensure_experiment(config: TrainConfig) -> None:
    """Use the configured experiment; a new one on a local sqlite store keeps its artifacts next to
    the database (MLflow's default would be ./mlruns under whatever directory training ran in)."""
    if mlflow.get_experiment_by_name(config.experiment) is None and config.tracking_uri.startswith("sqlite:///"):
        database = Path(config.tracking_uri.removeprefix("sqlite:///"))
        mlflow.create_experiment(config.experiment,
                                 artifact_location=(database.parent / "mlartifacts").resolve().as_uri())
    mlflow.set_experiment(config.experiment)


def load_champion(config: TrainConfig) -> tuple[Recommender | None, str | None]:
    """The current champion's scoring model and version, or (None, None) when there is none."""
    client = MlflowClient(tracking_uri=config.tracking_uri)
    try:
        version = client.get_model_version_by_alias(config.model_name, "champion")
    except MlflowException:
        return None, None
    model = mlflow.pyfunc.load_model(f"models:/{config.model_name}@champion")
    return model.unwrap_python_model().recommender, str(version.version)


def _metrics(result: dict[str, Any]) -> dict[str, float]:
    flat = {}
    for task, entry in result["tasks"].items():
        for ranker, scores in entry.get("scores", {}).items():
            for metric, value in scores.items():
                if isinstance(value, int | float):
                    flat[f"{task}.{ranker}.{metric.replace('@', '_at_')}"] = float(value)
    return flat


def log_and_register(rec: Recommender, result: dict[str, Any], config: TrainConfig, *,
                     promote: str = "gate", figures: dict[str, Any] | None = None) -> dict[str, Any]:
    """Log the run and the pyfunc, register a version, set its alias; returns what was done.

    promote: "gate" (default), "force" (`--promote`), or "if-none" (gate, but the first model of
    an empty registry becomes champion anyway: there is no good model it could replace).
    """
    mlflow.set_tracking_uri(config.tracking_uri)
    ensure_experiment(config)
    client = MlflowClient(tracking_uri=config.tracking_uri)
    decision = gate(result, config.promotion_tolerance)
    had_champion = "champion" in {t for e in result["tasks"].values() for t in e.get("scores", {})}
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({f"cf.{k}": v for k, v in rec.meta["params"].items()})
        mlflow.log_params({f"weight.{k}": v for k, v in rec.weights.items()})
        mlflow.log_metrics(_metrics(result))
        mlflow.log_dict(result, "evaluation.json")
        mlflow.log_dict(rec.meta.get("data", {}), "data_fingerprint.json")
        mlflow.log_dict(rec.meta.get("tuning", {}), "tuning.json")
        for name, fig in (figures or {}).items():
            mlflow.log_figure(fig, f"plots/{name}.png")
        model_dir = Path(tmp) / "recommender"
        rec.save(model_dir)
        example = pd.DataFrame({"client_id": [str(rec.client_ids[0])], "kind": ["cross_sell"], "limit": [3]})
        py = RecommenderPyfunc()
        py.recommender = rec
        signature = infer_signature(example, py.predict(None, example))
        info = mlflow.pyfunc.log_model(name="model", python_model=RecommenderPyfunc(),
                                       artifacts={ARTIFACT_KEY: str(model_dir)}, code_paths=CODE_PATHS,
                                       signature=signature, input_example=example,
                                       pip_requirements=PIP_REQUIREMENTS)
        # last: only a fully logged model is registered
        version = mlflow.register_model(info.model_uri, config.model_name)
        run_id = run.info.run_id
    if promote == "force" or decision.promote or (promote == "if-none" and not had_champion and _no_champion(client, config)):
        alias = "champion"
    else:
        alias = "challenger"
    client.set_registered_model_alias(config.model_name, alias, version.version)
    client.set_model_version_tag(config.model_name, version.version, "gate",
                                 "passed" if decision.promote else "; ".join(decision.failures)[:4000])
    _notify(config, alias, str(version.version))
    return {"version": str(version.version), "alias": alias, "run_id": run_id, "gate": decision.promote,
            "failures": decision.failures, "forced": alias == "champion" and not decision.promote}


def _no_champion(client: MlflowClient, config: TrainConfig) -> bool:
    try:
        client.get_model_version_by_alias(config.model_name, "champion")
    except MlflowException:
        return True
    return False


def _notify(config: TrainConfig, alias: str, version: str) -> None:
    """Tell running services the alias moved (they also poll, so a lost notice only delays)."""
    if not config.redis_url:
        return
    try:
        import redis

        with redis.Redis.from_url(config.redis_url, socket_timeout=2, socket_connect_timeout=2) as r:
            r.publish(config.updates_channel, json.dumps({"name": config.model_name, "alias": alias, "version": version}))
    except Exception as exc:  # noqa: BLE001 - a missed notice must not fail a finished training
        log.warning("could not publish the model update notice to Redis: %s", exc)
