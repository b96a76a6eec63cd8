"""Fit the whole model the way `train` does: choose hyper-parameters and blend weights on an
inner time split of the given history, then fit on all of it."""
from __future__ import annotations

import logging
import time

import pandas as pd

from training.config import TrainConfig
from training.fit import default_cf_params, fit_recommender
from training.models.cf import tune_cf
from scoring.recommender import Recommender
from training.tuning import tune_weights

log = logging.getLogger(__name__)


def fit_tuned(tx: pd.DataFrame, items_df: pd.DataFrame | None, packages: pd.DataFrame | None,
              config: TrainConfig | None = None, tune: bool = True,
              fingerprint: dict | None = None) -> Recommender:
    """Tuned on the last `config.tune_days` of `tx` (never on any test), fitted on all of `tx`."""
    config = config or TrainConfig()
    params, cf_trials, weights, weight_trials = default_cf_params(config), [], None, []
    started = time.perf_counter()
    if tune:
        params, cf_trials = tune_cf(tx, params, config.als_factors, config.als_regularization, config.tune_days, config.k)
        log.info("CF chosen: %s (%.1fs)", params, time.perf_counter() - started)
        weights, weight_trials = tune_weights(tx, items_df, packages, config, params)
        log.info("blend weights chosen (%.1fs)", time.perf_counter() - started)
    return fit_recommender(tx, items_df, packages, config, cf_params=params, weights=weights,
                           fingerprint=fingerprint, tuning={"cf": cf_trials, "weights": weight_trials,
                                                            "seconds": round(time.perf_counter() - started, 1)})
