"""Fit the client value model on the training history and pack what the service needs to answer with it.

What ships (and nothing else): the seven fitted parameters with the horizon settings and the data's end date
(`meta["value_model"]`), and four arrays per client, in the model's client order (`ModelState.extras`
`value_frequency`, `value_recency`, `value_T`, `value_monetary`: the summary of `features.value`). From them
`scoring.value` computes every figure with closed forms; nothing is refitted at serving time.

The figures at the model's own horizon, which every answer for a known client carries, are computed here once
for all clients (`scoring.value.FIGURE_ARRAYS`, 48 bytes a client): they depend on nothing a request brings,
and computing one client's costs about 0.4 ms of a request's CPU. Another horizon is still computed per call.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from features.value import ValueFitError, fit_bgnbd, fit_gamma_gamma, value_summary
from scoring.value import FIGURE_ARRAYS, ValueParams, value_figures
from training.config import TrainConfig

log = logging.getLogger(__name__)

#: ModelState.extras keys of the per-client summary, in the order scoring.value reads them
SUMMARY_ARRAYS = {"value_frequency": "frequency", "value_recency": "recency", "value_T": "T",
                  "value_monetary": "monetary"}


def fit_value_params(summary: pd.DataFrame, config: TrainConfig, data_end: pd.Timestamp) -> ValueParams:
    """Maximum-likelihood BG/NBD and Gamma-Gamma on a `features.value.value_summary` table."""
    bg = fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
    gg = fit_gamma_gamma(summary["frequency"], summary["monetary"])
    return ValueParams(**bg.__dict__, **gg.__dict__, horizon_days=config.value_horizon_days,
                       clv_horizon_days=config.clv_horizon_days, annual_discount=config.clv_annual_discount,
                       data_end=pd.Timestamp(data_end).isoformat())


def figure_arrays(params: ValueParams, summary: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every client's figures at the model's horizon, by `FIGURE_ARRAYS` key (NaN for a client with no
    purchase, whom `client_value` answers with None before reading them)."""
    known = np.isfinite(summary["value_frequency"])
    figures = value_figures(params, *(summary[key][known] for key in SUMMARY_ARRAYS))
    arrays = {key: np.full(len(known), np.nan) for key in FIGURE_ARRAYS.values()}
    for name, key in FIGURE_ARRAYS.items():
        arrays[key][known] = figures[name]
    return arrays


def value_state(tx: pd.DataFrame, client_ids: np.ndarray, now: pd.Timestamp,
                config: TrainConfig) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
    """(extras arrays, meta) of the value model; ({}, None) with a warning when the history cannot be fitted
    (a tiny or single-visit shop): the model then answers without value figures, never with wrong ones."""
    started = time.perf_counter()
    summary = value_summary(tx, as_of=now)
    try:
        params = fit_value_params(summary, config, now)
    except ValueFitError as exc:
        log.warning("value model not fitted: %s", exc)
        return {}, None
    table = summary.reindex(pd.Index(client_ids, dtype=object))
    arrays = {key: table[column].to_numpy(np.float64) for key, column in SUMMARY_ARRAYS.items()}
    arrays.update(figure_arrays(params, arrays))
    meta = {**params.__dict__, "clients": int(len(summary)), "fit_seconds": round(time.perf_counter() - started, 2)}
    log.info("value model: BG/NBD r=%.3g alpha=%.3g a=%.3g b=%.3g, Gamma-Gamma p=%.3g q=%.3g v=%.3g (%d clients)",
             params.r, params.alpha, params.a, params.b, params.p, params.q, params.v, len(summary))
    return arrays, meta
