"""Model versions for the fault tests: one that says which version answered, and broken ones.

`TaggedRecommender` is the catalogue double of support/service_model_double.py with every suggestion
stamped with its version (`version_tag`), so a test can prove that no answer mixes two versions;
a client id `slow-<seconds>` makes `suggest` take that long (an in-flight request for the drain
test). `register_variant` logs one of these (or a broken one) to a real MLflow registry with this
file as its code (models-from-code, as the trainer logs its model; the variant and tag travel in
the model config, and the support/ package ships beside it so `support.service_model_double`
imports in a service process as it does here), and moves @champion to it.
tests/unit/test_reliability_doubles.py checks that the service's checks accept the good one and
reject every broken one.
"""
from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow.models
import mlflow.pyfunc
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from scoring.pyfunc import PACKAGE_FORMAT, PACKAGE_FORMAT_KEY
from support.service_model_double import CODE_PATHS, CatalogueRecommender

#: Every way a version can be broken that the service must refuse (corrupt_artifact is handled
#: at registration: its model code is overwritten with garbage).
BROKEN = ("corrupt_artifact", "wrong_schema", "nan_scores", "wrong_smoke_answer", "smoke_check_fails")
MAX_SLOW_SECONDS = 10.0


class TaggedRecommender(CatalogueRecommender):
    """The catalogue double, each suggestion carrying `version_tag`; `slow-<s>` clients are slow."""

    def _stamp(self, suggestions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**s, "version_tag": self.tag} for s in suggestions]

    def suggest(self, client_id: str, kind: str, limit: int = 10, **kwargs: Any) -> list[dict[str, Any]]:
        if client_id.startswith("slow-"):
            try:
                time.sleep(min(float(client_id.removeprefix("slow-")), MAX_SLOW_SECONDS))
            except ValueError:
                pass
        return self._stamp(super().suggest(client_id, kind, limit, **kwargs))

    def cart(self, items: Sequence[str], client_id: str | None = None, limit: int = 10, **kwargs: Any) -> dict[str, Any]:
        answer = super().cart(items, client_id, limit, **kwargs)
        return {**answer, **{part: self._stamp(answer[part]) for part in ("complete", "upsell", "bundles")}}

    def similar(self, item_id: str, limit: int = 10) -> list[dict[str, Any]]:
        return self._stamp(super().similar(item_id, limit))


class WrongSchema(TaggedRecommender):
    """Answers suggestions without item_id and with a text score."""

    def suggest(self, client_id: str, kind: str, limit: int = 10, **kwargs: Any) -> list[dict[str, Any]]:
        return [{"id": s["item_id"], "score": "high"} for s in super().suggest(client_id, kind, limit, **kwargs)]


class NaNScores(TaggedRecommender):
    def suggest(self, client_id: str, kind: str, limit: int = 10, **kwargs: Any) -> list[dict[str, Any]]:
        return [{**s, "score": math.nan} for s in super().suggest(client_id, kind, limit, **kwargs)]


class WrongSmokeAnswer(TaggedRecommender):
    """Its own smoke_check passes, but it ignores the limit and has no cold start."""

    def suggest(self, client_id: str, kind: str, limit: int = 10, **kwargs: Any) -> list[dict[str, Any]]:
        if not self.knows_client(client_id):
            return []
        return super().suggest(client_id, kind, limit + 5, **kwargs)


def make_recommender(variant: str, tag: str) -> CatalogueRecommender:
    if variant in ("tagged", "corrupt_artifact"):
        return TaggedRecommender(tag=tag)
    if variant == "smoke_check_fails":
        return TaggedRecommender(tag=tag, broken=True)
    classes = {"wrong_schema": WrongSchema, "nan_scores": NaNScores, "wrong_smoke_answer": WrongSmokeAnswer}
    return classes[variant](tag=tag)


class VariantPyfunc(mlflow.pyfunc.PythonModel):
    """The MLflow wrapper the service unwraps: `.recommender` is the contract object."""

    def __init__(self, variant: str = "tagged", tag: str = "0") -> None:
        self.recommender = make_recommender(variant, tag)

    def load_context(self, context: Any) -> None:
        config = context.model_config or {}
        self.recommender = make_recommender(str(config.get("variant", "tagged")), str(config.get("tag", "0")))

    def predict(self, context: Any, model_input: list[str], params: dict[str, Any] | None = None) -> list[int]:
        return [len(self.recommender.suggest(str(client), "cross_sell")) for client in model_input]


def register_variant(tracking_uri: str, name: str, variant: str = "tagged", alias: str | None = "champion") -> str:
    """Register the next version of `name` as `variant` (its tag is its version number) and move
    `alias` to it. Returns the version."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        client.create_registered_model(name)
    except MlflowException:
        pass
    latest = client.search_model_versions(f"name='{name}'")
    tag = str(max((int(v.version) for v in latest), default=0) + 1)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        mlflow.pyfunc.save_model(str(model_dir), python_model=__file__, model_config={"variant": variant, "tag": tag},
                                 code_paths=CODE_PATHS,
                                 pip_requirements=["mlflow"], metadata={PACKAGE_FORMAT_KEY: PACKAGE_FORMAT})
        if variant == "corrupt_artifact":
            (model_dir / Path(__file__).name).write_bytes(b"\x80\x05 this is not python" * 10)
        run = client.create_run(experiment_id="0", run_name=f"reliability-{variant}-{tag}")
        client.log_artifacts(run.info.run_id, str(model_dir), "model")
        client.set_terminated(run.info.run_id)
    version = str(client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id).version)
    assert version == tag, f"another writer registered {name} meanwhile ({version} != {tag})"
    if alias:
        client.set_registered_model_alias(name, alias, version)
    return version


# This file is the variants' model code: MLflow runs it to rebuild the model (see register_variant).
mlflow.models.set_model(VariantPyfunc())
