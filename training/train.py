"""`python -m training train`: fit, evaluate against baselines and the champion, register.

Steps, each logged: load and validate the data (rejections reported), drop erased clients, add
the purchases posted through the API that the folder lacks (training/posted.py),
evaluate every ranker on the time split (the model is tuned on an inner split of the training
part only; the champion is compared as `champion_ranker` says is fair), refit the model on all the data with the chosen settings, smoke-check it, then log
and register it; the promotion gate decides `@champion` or `@challenger`.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from features.loader import load_dataset
from features.schema import TIMESTAMP
from scoring.contract import client_state_of
from scoring.recommender import Recommender
from training.baselines import default_rankers
from training.candidates import precompute as precompute_candidates
from training.config import TrainConfig
from training.context import TrainContext
from training.engine import FitEngine
from training.erasures import erased_clients
from training.evaluate import evaluate, format_table
from training.fit import fit_recommender
from training.minimums import require_scored, require_trainable
from training.model_ranker import ModelRanker
from training.plots import metric_bars
from training.posted import with_posted_purchases
from training.recipe import Recipe
from training.registry import load_champion, log_and_register
from training.spark.run import WHERE, SparkRun

log = logging.getLogger(__name__)

#: How the gate compared the champion (`result["champion"]["compared_as"]`).
AS_REGISTERED = "as registered (its data ends before the test window)"
AS_REFIT = "its recipe refitted on this split's training part (its data overlaps the test window)"


def champion_ranker(champion: Recommender, config: TrainConfig, transactions: pd.DataFrame,
                    engine: FitEngine | None = None) -> tuple[ModelRanker, str]:
    """The champion as the promotion gate may fairly compare it, and how.

    The champion was refitted on all of its data. If that data reaches into this split's test
    window, the champion has seen the answers and would beat any new model there: its recipe is
    refitted on this split's training part instead, so both recipes meet the same data (the gate
    then asks whether the new recipe is at least as good). A champion whose data ends before the
    test window is scored as registered, which also checks the new code against the old model."""
    cutoff = transactions[TIMESTAMP].max() - pd.Timedelta(days=config.test_days)
    last = champion.meta.get("data", {}).get("last")
    # a champion whose clients live in Redis (`scoring.client_state`) carries none to score: its recipe is refitted
    if last is not None and pd.Timestamp(last) < cutoff and client_state_of(champion) is None:
        return ModelRanker(config, recommender=champion, registered=True), AS_REGISTERED
    try:
        recipe = Recipe.from_meta(champion.meta, champion.state.extras)
    except (KeyError, TypeError):
        log.warning("the champion records no recipe to refit: it is scored as registered, on a test window "
                    "its data may include")
        return ModelRanker(config, recommender=champion, registered=True), AS_REGISTERED
    return ModelRanker(config, recipe=recipe, engine=engine), AS_REFIT


def catalogue_summary(meta: dict[str, Any]) -> str:
    """What the trainer says about the catalogue it read: the product groups it formed and every
    item it will never offer as not merchandise (with why), so that a person can check both."""
    groups, fees = meta["product_groups"], meta["non_merchandise"]
    lines = [f"product groups: {groups['groups']:,} groups of {groups['items']:,} items "
             f"({groups['groups_with_variants']:,} with several codes); largest: "
             + ", ".join(f"{g['example']} ({g['size']})" for g in groups["largest"]),
             f"not merchandise, never offered: {fees['count']:,} items ("
             + ", ".join(f"{why}: {n}" for why, n in fees["by_reason"].items()) + ")"]
    lines += [f"  {e['item_id']} {e['name']}: {e['reason']}" for e in fees["examples"]]
    return "\n".join(lines)


def train(data: str | Path, *, model_name: str | None = None, test_days: float | None = None, k: int | None = None,
          max_baskets: int = 5_000, out: str | Path | None = None, tune: bool = True, promote: str = "gate",
          config: TrainConfig | None = None, engine: str | None = None,
          spark_master: str | None = None) -> dict[str, Any]:
    """`engine` ("local" or "spark") and `spark_master` override the config's for this run."""
    started = time.perf_counter()
    config = config or TrainConfig()
    config = config.model_copy(update={key: value for key, value in
                                       {"model_name": model_name, "test_days": test_days, "k": k, "engine": engine,
                                        "spark_master": spark_master}.items()
                                       if value is not None})
    spark = SparkRun.start(config) if config.engine == "spark" else None
    try:
        return _train(data, config, spark, max_baskets=max_baskets, out=out, tune=tune, promote=promote,
                      started=started)
    finally:
        if spark is not None:
            spark.stop()


def _train(data: str | Path, config: TrainConfig, spark: SparkRun | None, *, max_baskets: int,
           out: str | Path | None, tune: bool, promote: str, started: float) -> dict[str, Any]:
    if spark is not None:
        print(WHERE)
        dataset = spark.load(data)
    else:
        dataset = load_dataset(data, non_merchandise=config.non_merchandise, merchandise_allow=config.merchandise_allow)
    engine = spark.engine if spark is not None else None
    log.info("data: %s", dataset.report.format().replace("\n", "; "))
    dataset, posted = with_posted_purchases(dataset, data, config, erased_clients(config))
    print(posted.format())
    require_trainable(dataset.transactions)
    scored = dataset
    if spark is not None:
        scored, sample = spark.sample(dataset)
        print(sample)

    rankers: dict[str, Any] = {r.name: r for r in default_rankers(published=False)}
    rankers["model"] = ModelRanker(config, tune=tune, engine=engine)
    champion, champion_version = load_champion(config)
    compared_as = None
    if champion is not None:
        rankers["champion"], compared_as = champion_ranker(champion, config, scored.transactions, engine)
        log.info("comparing with the champion, version %s, %s", champion_version, compared_as)
    result = evaluate(scored, test_days=config.test_days, k=config.k, rankers=rankers, seed=config.seed,
                      max_baskets=max_baskets, workers=config.workers)
    if spark is not None:
        result["engine"] = {"name": "spark", **spark.describe(), "evaluated_on": sample, "where": WHERE}
    result["data"]["load_report"] = dataset.report.as_dict()
    result["data"]["event_store"] = posted.as_dict()
    if champion is not None:
        result["champion"] = {"version": champion_version, "compared_as": compared_as}
    print(format_table(result))
    require_scored(result, config.test_days)

    model_ranker = rankers.pop("model")
    recipe, tuning = model_ranker.recipe, model_ranker.recommender.meta.get("tuning")
    del rankers, model_ranker, champion, scored  # baselines and refits hold ~1.5 GB on the full data
    gc.collect()
    log.info("refitting on all %d lines with the chosen recipe", len(dataset.transactions))
    final = fit_recommender(TrainContext.build(dataset.transactions, dataset.items, dataset.packages), config,
                            recipe, fingerprint=dataset.fingerprint, tuning=tuning, engine=engine)
    if spark is not None:
        spark.candidates(final)
        final.meta["engine_run"] = spark.describe()
    else:
        precompute_candidates(final, workers=config.threads or os.cpu_count() or 1)
    final.meta["evaluation"] = {t: e.get("scores", {}).get("model") for t, e in result["tasks"].items()}
    final.meta["champion_compared"] = champion_version
    final.smoke_check()
    print(catalogue_summary(final.meta))
    result["catalogue"] = {key: final.meta[key] for key in ("product_groups", "non_merchandise")}
    figure = metric_bars(result)
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "evaluation.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        figure.savefig(out / "metrics.png", dpi=110)
    registered = log_and_register(final, result, config, promote=promote, figures={"metrics": figure})
    registered["seconds"] = round(time.perf_counter() - started, 1)
    if registered["failures"]:
        print("promotion gate failed:\n  " + "\n  ".join(registered["failures"]))
    if registered["forced"]:
        print("promoted anyway (" + ("--promote" if promote == "force" else "first model of an empty registry") + ")")
    print(f"registered {config.model_name} version {registered['version']} as @{registered['alias']} "
          f"(run {registered['run_id']}, {registered['seconds']}s)")
    return registered
