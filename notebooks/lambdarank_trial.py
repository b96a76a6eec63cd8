"""Experiment (issue 11): which trees for the learnt rankers, measured by tuning's own choice.

    PYTHONPATH=. nice -n 10 python notebooks/lambdarank_trial.py --data /work/data-full --test-days 60 \\
        --out /tmp/lgbm-trial.json

It runs `python -m training evaluate`'s tuning (same outer split, inner split, CF choice and
blend search) and, where tuning decides between the blend, the logistic regression and the trees
(`training.tuning.learn_cross_sell`, `learn_replenishment`), calls that very function once per
tree setting below, swapping only the trees it fits (`training.tuning.fit_gbdt`). Every setting
is thus scored on the same pools, features, labels, cross-fitting folds and rules as the shipped
one; each call's trial (blend, learnt = the logistic regression, trees) is kept. Tuning stops
after those two tasks.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

import lightgbm as lgb
import numpy as np

from features.loader import load_dataset
from scoring import trees
from training import tuning
from training.config import TrainConfig
from training.context import TrainContext
from training.models import gbdt
from training.split import time_split

log = logging.getLogger("lambdarank_trial")

#: name -> (LightGBM parameters over `training.models.gbdt.PARAMS`, rounds, early stopping?).
#: "shipped" is `fit_gbdt` as tuning calls it. Without early stopping the trees fit every
#: training query for a fixed number of rounds.
SETTINGS: dict[str, tuple[dict[str, Any], int, bool]] = {
    "binary_15leaves_es (shipped)": ({"objective": "binary"}, gbdt.MAX_ROUNDS, True),
    "lambdarank_15leaves_es": ({"objective": "lambdarank"}, gbdt.MAX_ROUNDS, True),
    "lambdarank_7leaves_es": ({"objective": "lambdarank", "num_leaves": 7}, gbdt.MAX_ROUNDS, True),
    "lambdarank_31leaves_300": ({"objective": "lambdarank", "num_leaves": 31, "min_data_in_leaf": 50,
                                 "lambda_l2": 1.0}, 300, False),
}
RESULTS: dict[str, Any] = {}


class Done(Exception):
    """Both learnt choices are measured: stop tuning."""


def fit_with(extra: dict[str, Any], rounds: int, early: bool):
    """A stand-in for `gbdt.fit_gbdt` with these settings (the objective argument is ignored)."""
    def fit(x: np.ndarray, y: np.ndarray, rows: np.ndarray, objective: str = "binary",
            seed: int = 0) -> dict[str, np.ndarray]:
        params = {**gbdt.PARAMS, "seed": seed, **extra}
        if early:
            stop = rows % 8 >= 6
            data = lgb.Dataset(x[~stop], y[~stop], group=gbdt._sizes(rows[~stop]))
            valid = lgb.Dataset(x[stop], y[stop], group=gbdt._sizes(rows[stop]), reference=data)
            booster = lgb.train(params, data, num_boost_round=rounds, valid_sets=[valid],
                                callbacks=[lgb.early_stopping(gbdt.PATIENCE, verbose=False)])
        else:
            booster = lgb.train(params, lgb.Dataset(x, y, group=gbdt._sizes(rows)), num_boost_round=rounds)
        best = booster.best_iteration or booster.current_iteration()
        ROUNDS.append(best)
        return trees.flatten(booster.dump_model(num_iteration=best))
    return fit


ROUNDS: list[int] = []


def each_setting(task_name: str, original):
    def trial(scorer, task, weights, k, trials, seed):
        objective = tuning.TREE_OBJECTIVE
        out: dict[str, Any] = {}
        chosen = None
        for name, (extra, rounds, early) in SETTINGS.items():
            tuning.fit_gbdt, tuning.TREE_OBJECTIVE = fit_with(extra, rounds, early), extra["objective"]
            ROUNDS.clear()
            started = time.perf_counter()
            got = original(scorer, task, weights, k, trials, seed)
            out[name] = {**trials[-1], "rounds (fold 0, fold 1, all)": list(ROUNDS), "seconds": round(time.perf_counter() - started, 1)}
            log.info("%s %s: %s", task_name, name, out[name])
            if chosen is None:
                chosen = got  # the shipped setting's choice carries on
        tuning.fit_gbdt, tuning.TREE_OBJECTIVE = gbdt.fit_gbdt, objective
        RESULTS[task_name] = out
        if task_name == "next_basket":
            raise Done
        return chosen
    return trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--test-days", type=float, default=60)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = time.perf_counter()
    dataset = load_dataset(args.data)
    train_tx, _, _ = time_split(dataset.transactions, args.test_days)  # the evaluation's training part
    ctx = TrainContext.build(train_tx, dataset.items, dataset.packages)
    tuning.learn_cross_sell = each_setting("cross_sell", tuning.learn_cross_sell)
    tuning.learn_replenishment = each_setting("next_basket", tuning.learn_replenishment)
    try:
        tuning.tune(ctx, TrainConfig())
    except Done:
        pass
    RESULTS["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(RESULTS, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
