"""The per-client CRM table: segments now and a period ago, transitions and every value figure, as of a date.

`python -m training clients` writes it for data scientists and CRM imports; `python -m training campaign`
selects its audiences from it. The value figures come from a registered model's fitted parameters (the
champion unless told otherwise): the summaries are recomputed from the data folder as of `as_of`, the
parameters are never refitted, so the table says what the model in production believes.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from features.changes import ChangeSettings, client_changes
from features.loader import Dataset
from features.schema import CLIENT, ITEM, TIMESTAMP
from features.value import value_summary
from scoring.contract import client_state_of
from scoring.value import FIGURES, ValueParams, value_figures
from training import client_state
from training.config import TrainConfig

log = logging.getLogger(__name__)


class NoValueModel(ValueError):
    """The model named has no value model (registered before issue 13, or its history could not be fitted)."""


def change_settings(config: TrainConfig) -> ChangeSettings:
    return ChangeSettings(period_days=config.segment_period_days, baseline_days=config.trend_baseline_days,
                          threshold=config.change_threshold, lapsing_days=config.lapsing_days,
                          inactive_days=config.inactive_days)


def load_model(config: TrainConfig, uri: str | None) -> tuple[Any, str, str | None]:
    """(the scoring model, a label saying which, its registry version or None) of `uri`: None is the registered champion; a folder holds a
    saved model (an MLflow model or `Recommender.save` arrays); anything else an MLflow URI (`models:/...`). A
    model whose clients live in Redis answers them from there (`training.client_state.FromRedis`)."""
    model, which, version = _load_model(config, uri)
    if client_state_of(model) is not None:
        model = client_state.FromRedis(model, client_state.connect(config))
    return model, which, version


def _load_model(config: TrainConfig, uri: str | None) -> tuple[Any, str, str | None]:
    from scoring.pyfunc import load_model_folder
    from scoring.recommender import Recommender
    from training.registry import load_champion

    if uri is None:
        model, version = load_champion(config)
        if model is None:
            raise NoValueModel(f"no @champion of {config.model_name} in {config.tracking_uri}: train one, or "
                               "name a model with --model")
        return model, f"{config.model_name} version {version} (@champion)", version
    if Path(uri).is_dir():
        folder = Path(uri)
        return (Recommender.load(folder) if (folder / "meta.json").is_file() else load_model_folder(folder)), uri, None
    import mlflow

    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        folder = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp,
                                                     tracking_uri=config.tracking_uri)
        version = uri.rsplit("/", 1)[-1] if uri.startswith("models:/") and "@" not in uri else None
        return load_model_folder(folder), uri, version


def value_params(model: Any, horizon_days: float | None) -> ValueParams:
    meta = getattr(model, "meta", {}).get("value_model")
    if not meta:
        raise NoValueModel("the model has no value model (registered before issue 13?): retrain it")
    params = ValueParams.from_meta(meta)
    if horizon_days is not None:
        params = ValueParams(**{**params.__dict__, "horizon_days": float(horizon_days)})
    return params


def client_table(dataset: Dataset, params: ValueParams, config: TrainConfig,
                 as_of: pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per client who bought by `as_of`, the transitions in long form). Columns: client_id, segments
    (`abc`, `rfm`, `activity` and their `*_before` a period earlier), the trend, `transitions`, the summary
    (`frequency` of repeat visits...), every figure of `scoring.value.FIGURES`, `horizon_days`, `as_of`,
    `data_end`."""
    tx = dataset.transactions
    as_of = tx[TIMESTAMP].max() if as_of is None else pd.Timestamp(as_of)
    categories = (dataset.items.drop_duplicates(ITEM).set_index(ITEM)["category"]
                  if dataset.items is not None and "category" in dataset.items else None)
    table, moves = client_changes(tx, as_of, change_settings(config), categories)
    summary = value_summary(tx, as_of=as_of).reindex(table.index)
    figures = value_figures(params, summary["frequency"], summary["recency"], summary["T"], summary["monetary"])
    table = table.rename(columns={"frequency": "orders", "monetary": "revenue"})
    table["repeat_visits"] = summary["frequency"]
    for name in FIGURES:
        table[name] = figures[name].round(4)
    table["p_churn"] = (1.0 - table["p_alive"]).round(4)
    table["horizon_days"] = params.horizon_days
    table["as_of"] = as_of.date().isoformat()
    table["data_end"] = params.data_end[:10]
    table.index.name = CLIENT
    return table.reset_index(), moves


def write_table(table: pd.DataFrame, out: str | Path) -> Path:
    """CSV, Parquet or JSON lines by the file's extension."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        table.to_parquet(out, index=False)
    elif out.suffix in (".jsonl", ".ndjson"):
        table.to_json(out, orient="records", lines=True, force_ascii=False)
    elif out.suffix == ".csv":
        table.to_csv(out, index=False)
    else:
        raise ValueError(f"--out {out}: write .csv, .parquet or .jsonl")
    return out
