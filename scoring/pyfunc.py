"""The registered artifact: an MLflow pyfunc saved as code, whose scoring code ships with it.

This file is the model's code (MLflow's models-from-code): the trainer logs it with
`python_model=<this file>` and `code_paths=[scoring/]`, and MLflow rebuilds the model by running
it (the `set_model` call at the bottom) and then `load_context`, which maps the `.npy` arrays of
the artifact. Nothing is pickled, so loading a registered model executes no pickle.

`mlflow.pyfunc.load_model("models:/crm-recommender@champion").predict(frame)` and
`mlflow models serve` answer a table of (client_id, kind, limit, objective) with one row per suggestion;
the service and the trainer call `load_model_folder`, which unwraps the same object and talks to
the `SuggestionModel` methods directly, skipping the DataFrame round trip on the hot path.

Package formats (`PACKAGE_FORMAT_KEY` in the MLmodel metadata), both read without unpickling:
  1  before issue 10: a cloudpickled `RecommenderPyfunc` with the arrays under
     artifacts/recommender; it recorded no package format. Its arrays are read directly.
  2  this file as code, `scoring/` as its only code path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.models
import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from threadpoolctl import threadpool_limits

from scoring.contract import GROUPED_KINDS
from scoring.recommender import Recommender

INPUT_COLUMNS = ("client_id", "kind", "limit", "objective")
#: Input columns that may be left out (limit: 10, objective: relevance).
OPTIONAL_INPUTS = ("limit", "objective")
OUTPUT_COLUMNS = ("client_id", "kind", "rank", "item_id", "name", "score", "price", "reason")
#: Column types of the tables above, declared rather than inferred from an example (inference
#: cannot know that `limit` may be left out, and warns about every integer column).
INPUT_TYPES = {"client_id": "string", "kind": "string", "limit": "long", "objective": "string"}
OUTPUT_TYPES = {"client_id": "string", "kind": "string", "rank": "long", "item_id": "string", "name": "string",
                "score": "double", "price": "double", "reason": "string"}
ARTIFACT_KEY = "recommender"
#: Key of the MLmodel `metadata` that records how the registered model is packaged.
PACKAGE_FORMAT_KEY = "crm_package_format"
#: The package format this code writes.
PACKAGE_FORMAT = 2
#: Cloudpickled models registered before issue 10; they record no package format.
LEGACY_PACKAGE_FORMAT = 1
READABLE_PACKAGE_FORMATS = (LEGACY_PACKAGE_FORMAT, PACKAGE_FORMAT)


def signature() -> ModelSignature:
    """The MLflow signature of `RecommenderPyfunc.predict`: (client_id, kind[, limit][, objective])
    in, one row per suggestion out."""
    inputs = Schema([ColSpec(INPUT_TYPES[c], c, required=c not in OPTIONAL_INPUTS) for c in INPUT_COLUMNS])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec(OUTPUT_TYPES[c], c) for c in OUTPUT_COLUMNS]))


class UnknownModelFormat(ValueError):
    """The folder is not a model this code can read (a later package format, or not ours)."""


def _one_blas_thread() -> None:
    # One request is one small matrix-vector product: BLAS threads only add wake-up latency
    # (1.5 ms against 0.17 ms for 68k items x 16 factors) and fight the server's own workers.
    threadpool_limits(1, "blas")


class RecommenderPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the arrays saved by `ModelState.save` and answers suggestion tables."""

    def __init__(self) -> None:
        self.recommender: Recommender | None = None

    def load_context(self, context: Any) -> None:
        _one_blas_thread()
        self.recommender = Recommender.load(context.artifacts[ARTIFACT_KEY])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if self.recommender is None:
            raise RuntimeError("model not loaded")
        missing = [c for c in ("client_id", "kind") if c not in model_input.columns]
        if missing:
            raise ValueError(f"input lacks column(s) {missing}; expected {list(INPUT_COLUMNS)}")
        rows: list[dict[str, Any]] = []
        limits = model_input["limit"] if "limit" in model_input.columns else pd.Series(10, index=model_input.index)
        goals = (model_input["objective"].fillna("relevance") if "objective" in model_input.columns
                 else pd.Series("relevance", index=model_input.index))
        for client_id, kind, limit, goal in zip(model_input["client_id"], model_input["kind"], limits, goals,
                                                strict=True):
            kinds = GROUPED_KINDS if kind == "all" else (str(kind),)
            for k in kinds:
                answer = self.recommender.suggest(str(client_id), k, int(limit), objective=str(goal))
                for rank, s in enumerate(answer, start=1):
                    rows.append({"client_id": str(client_id), "kind": k, "rank": rank, "item_id": s["item_id"],
                                 "name": s["name"], "score": float(s["score"]),
                                 "price": float("nan") if s["price"] is None else float(s["price"]),
                                 "reason": s["reason"]})
        return pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS)).astype({"rank": "int64", "score": "float64",
                                                                         "price": "float64"})


def _package_format(folder: str | Path, model: mlflow.models.Model) -> int:
    recorded = (model.metadata or {}).get(PACKAGE_FORMAT_KEY)
    if recorded is not None:
        if recorded not in READABLE_PACKAGE_FORMATS:
            raise UnknownModelFormat(f"the model is in package format {recorded!r}, which this code does not "
                                     f"read (it reads {', '.join(map(str, READABLE_PACKAGE_FORMATS))})")
        if recorded == PACKAGE_FORMAT and "model_code_path" not in model.flavors.get(mlflow.pyfunc.FLAVOR_NAME, {}):
            raise UnknownModelFormat(f"the model claims package format {PACKAGE_FORMAT} but is not saved as code "
                                     "(it would have to be unpickled)")
        return int(recorded)
    if _legacy_arrays(folder, model) is not None:
        return LEGACY_PACKAGE_FORMAT
    raise UnknownModelFormat("the model records no package format and is not the layout of format 1 "
                             f"(a pickled pyfunc with artifacts/{ARTIFACT_KEY}/meta.json): not a crm-recommender model")


def _legacy_arrays(folder: str | Path, model: mlflow.models.Model) -> Path | None:
    """artifacts/recommender of a format-1 model, or None when `folder` does not have that layout."""
    conf = model.flavors.get(mlflow.pyfunc.FLAVOR_NAME, {})
    artifact = conf.get("artifacts", {}).get(ARTIFACT_KEY, {}).get("path")
    if not conf.get("python_model") or not artifact:
        return None
    arrays = Path(folder) / artifact
    return arrays if (arrays / "meta.json").is_file() else None


def load_model_folder(folder: str | Path) -> Any:
    """The `SuggestionModel` of the MLflow model downloaded to `folder`, with no pickle executed.

    Format 2 is loaded by MLflow from its code; format 1 is not unpickled: its arrays are read
    into this code's `Recommender`. UnknownModelFormat for any other package, ValueError for
    arrays in a state format `scoring.state` does not read."""
    model = mlflow.models.Model.load(str(folder))
    if _package_format(folder, model) == PACKAGE_FORMAT:
        return mlflow.pyfunc.load_model(str(folder), suppress_warnings=True).unwrap_python_model().recommender
    _one_blas_thread()
    return Recommender.load(_legacy_arrays(folder, model))  # type: ignore[arg-type]  # format 1, found above


# The models-from-code entry point: MLflow runs this file and serves the object set here.
mlflow.models.set_model(RecommenderPyfunc())
