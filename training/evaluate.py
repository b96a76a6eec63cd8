"""The offline evaluation: every ranker on every task, on one time split, in one JSON.

    result = evaluate(load_dataset("data/sample"))
    print(format_table(result))

The result says what it was measured on (`split`, `data` fingerprint) next to the figures, so a
number in a report can always be traced back. A trained model joins by being passed in
`rankers` next to (or instead of) the baselines: anything with `name`, `answers`, `fit` and
`rank` (see `training.baselines.Ranker`), optionally `refit` (how it is re-trained without a
hold-out task's hidden items; `fit` otherwise) and `heavy` (True: it takes far longer than the
baselines, so parallel evaluation starts it first).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from training.baselines import Ranker, default_rankers
from training.context import TrainContext
from training.item_facts import item_facts
from training.metrics import metric_names, score_rankings
from training.presentable import aligned, fetch_depth, presentable
from training.revenue import metric_names as revenue_names
from training.revenue import revenue_metrics, spent_in_window
from training.split import time_split
from training.tasks import HOLDOUT_TASKS, TASKS, Skipped, TaskQueries, build_tasks, without_held_out

log = logging.getLogger(__name__)


def evaluate(
    dataset: Any,
    test_days: float = 60,
    k: int = 10,
    rankers: Sequence[Ranker] | Mapping[str, Ranker] | None = None,
    seed: int = 0,
    progress: bool = True,
    max_baskets: int = 20_000,
    keep: dict[str, Any] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """{"split", "data", "tasks": {task: {"metric", "scores": {ranker: metrics}} | {"skipped": why}},
    "settings": {ranker: what it chose}}.

    `dataset` is a `features.loader.Dataset` (transactions, items, packages, fingerprint).
    `rankers` defaults to `default_rankers()`; a mapping renames them (e.g. {"model": m}).
    A ranker that does not answer a task is left out of that task's scores.
    "settings" holds, for each ranker that has them (a `settings` dict after fitting), the
    settings it chose on the inner split and each candidate's inner score (`training.baseline_tuning`),
    or the model's inner split.
    `keep`, when given, receives the context, the task queries and every ranking (for breakdowns
    such as `training.breakdown.by_segment`).
    `workers` > 1 evaluates that many rankers at once, in threads. Rankers share nothing but the
    read-only context and queries, so the figures do not change; the time does, because the
    model's Python-heavy fitting and scoring leave a core free that the baselines' numpy and
    scipy work (which releases the GIL) can use.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    level = logging.INFO if progress else logging.DEBUG
    started = time.perf_counter()
    named = _named(default_rankers() if rankers is None else rankers)

    train_tx, test_tx, split_info = time_split(dataset.transactions, test_days)
    log.log(level, "split at %s: %d train rows, %d test rows", split_info["cutoff"],
            split_info["train"]["rows"], split_info["test"]["rows"])
    ctx = TrainContext.build(train_tx, dataset.items, dataset.packages)
    tasks = build_tasks(ctx, test_tx, seed=seed, max_baskets=max_baskets)
    log.log(level, "tasks built in %.1fs: %s", time.perf_counter() - started,
            ", ".join(f"{name}={_size(task)}" for name, task in tasks.items()))

    held_out = _HeldOut(ctx, tasks, level)
    money = _Money(spent_in_window(ctx, test_tx), ctx.item_price)
    jobs = {name: partial(_evaluate_ranker, name, ranker, ctx, tasks, held_out, k, level, money)
            for name, ranker in named.items()}
    if workers > 1 and len(jobs) > 1:
        per_ranker = _in_parallel(jobs, named, workers)
    else:
        per_ranker = {name: job() for name, job in jobs.items()}

    results: dict[str, Any] = {}
    for task_name in TASKS:
        task = tasks[task_name]
        if isinstance(task, Skipped):
            results[task_name] = {"skipped": task.reason}
            log.log(level, "%s skipped: %s", task_name, task.reason)
            continue
        answered = [name for name in named if task_name in per_ranker[name]]
        scores = {name: per_ranker[name][task_name][0] for name in answered}
        for name in answered:  # the same ranker under a business objective, beside it
            scores.update({f"{name}_{key[1]}": got[0] for key, got in per_ranker[name].items()
                           if isinstance(key, tuple) and key[0] == task_name})
        results[task_name] = {"metric": f"{task.metric}@{k}", "scores": scores}
        if keep is not None:
            keep.setdefault("tasks", {})[task_name] = task
            keep.setdefault("rankings", {})[task_name] = {name: per_ranker[name][task_name][1] for name in answered}
            keep["ctx"] = ctx
    settings = {name: chosen for name, ranker in named.items() if (chosen := getattr(ranker, "settings", None))}
    log.log(level, "evaluation done in %.1fs", time.perf_counter() - started)
    return {"split": split_info, "data": dict(dataset.fingerprint), "tasks": results, "settings": settings}


def _in_parallel(jobs: Mapping[str, Callable[[], Any]], named: Mapping[str, Ranker], workers: int) -> dict[str, Any]:
    """Each ranker's job on a pool of `workers` threads, the longest first (rankers flagged `heavy`
    fit a whole model), so that none starts last. BLAS is held to one thread meanwhile: the jobs
    already fill the cores, and none of them changes the setting under another."""
    first = sorted(jobs, key=lambda name: not getattr(named[name], "heavy", False))
    with threadpool_limits(1, "blas"), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evaluate") as pool:
        futures = {name: pool.submit(jobs[name]) for name in first}
        try:
            for future in as_completed(futures.values()):
                future.result()  # the first failure stops what has not started yet
        except BaseException:
            for future in futures.values():
                future.cancel()
            raise
    return {name: futures[name].result() for name in named}


class _HeldOut:
    """The training context less each hold-out task's hidden pairs, built once, when a ranker first
    needs it (several rankers may ask at once)."""

    def __init__(self, ctx: TrainContext, tasks: Mapping[str, TaskQueries | Skipped], level: int) -> None:
        self.ctx, self.tasks, self.level = ctx, tasks, level
        self._built: dict[str, TrainContext] = {}
        self._lock = threading.Lock()

    def __call__(self, task_name: str) -> TrainContext:
        with self._lock:
            if task_name not in self._built:
                task = self.tasks[task_name]
                self._built[task_name] = without_held_out(self.ctx, task)
                log.log(self.level, "%s: every ranker is refitted without the %d held-out items", task_name, len(task))
            return self._built[task_name]


@dataclass(frozen=True)
class _Money:
    """What the revenue figures read (`training.revenue`): test spend per client and item, and
    each item's typical price."""

    spend: sp.csr_matrix
    price: np.ndarray


def _evaluate_ranker(
    name: str, ranker: Ranker, ctx: TrainContext, tasks: Mapping[str, TaskQueries | Skipped], held_out: _HeldOut,
    k: int, level: int, money: _Money,
) -> dict[Any, tuple[dict[str, float | int | str], np.ndarray]]:
    """{task: (metrics, rankings)} for one ranker: fitted on `ctx`, then refitted without the
    hidden items for each hold-out task (HOLDOUT_TASKS come last in TASKS). A ranker with
    business `objectives` for a task is scored under each too, keyed (task, objective).
    Client tasks add the revenue figures of `training.revenue` to the metrics."""
    tick = time.perf_counter()
    ranker.fit(ctx)
    log.log(level, "fitted %s in %.1fs", name, time.perf_counter() - tick)
    out = {}
    for task_name in TASKS:
        task = tasks[task_name]
        if isinstance(task, Skipped) or not ranker.answers(task_name):
            continue
        scorer, task_ctx = ranker, ctx
        if task_name in HOLDOUT_TASKS:
            task_ctx = held_out(task_name)
            scorer = ranker.refit(task_ctx) if hasattr(ranker, "refit") else ranker.fit(task_ctx)
            if not scorer.answers(task_name):
                continue
        for goal in ("", *getattr(scorer, "objectives", {}).get(task_name, ())):
            tick = time.perf_counter()
            scores, recommendations = _scored(scorer, task, task_ctx, k, money, goal or "relevance")
            log.log(level, "%s / %s%s: %s@%d=%.4f (%d queries, %.1fs)", task.task, name, goal and f" ({goal})",
                    task.metric, k, scores[f"{task.metric}@{k}"], len(task), time.perf_counter() - tick)
            out[(task_name, goal) if goal else task_name] = (scores, recommendations)
    return out


def _scored(scorer: Ranker, task: TaskQueries, task_ctx: TrainContext, k: int, money: _Money,
            goal: str) -> tuple[dict[str, float | int | str], np.ndarray]:
    """(metrics, rankings) of one ranker on one task under one objective (only a ranker with
    `rank_with_probabilities` has objectives besides relevance)."""
    probabilities = None
    depth = fetch_depth(task.task, k)
    if hasattr(scorer, "rank_with_probabilities"):
        recommendations, probabilities = scorer.rank_with_probabilities(task, depth, objective=goal)
    else:
        recommendations = scorer.rank(task, depth)
    # every ranker's list passes the service's presentability rules before it is scored
    kept = presentable(task, recommendations, item_facts(task_ctx), k)
    if probabilities is not None:
        probabilities = aligned(kept, recommendations, probabilities)
    recommendations = kept
    scores: dict[str, float | int | str] = dict(score_rankings(recommendations, task.relevant,
                                                                n_items=len(task_ctx.items), k=k))
    if task.kind == "client":
        scores.update(revenue_metrics(recommendations, task, money.spend, money.price, k, probabilities))
    return scores, recommendations


def _named(rankers: Sequence[Ranker] | Mapping[str, Ranker]) -> dict[str, Ranker]:
    if isinstance(rankers, Mapping):
        named = dict(rankers)
    else:
        named = {}
        for ranker in rankers:
            if ranker.name in named:
                raise ValueError(f"two rankers are named {ranker.name!r}; pass a mapping to rename one")
            named[ranker.name] = ranker
    if not named:
        raise ValueError("no ranker to evaluate")
    return named


def _size(task: TaskQueries | Skipped) -> str:
    return "skipped" if isinstance(task, Skipped) else str(len(task))


def format_table(result: Mapping[str, Any]) -> str:
    """A plain-text table: one line per (task, ranker), primary metric first, best per task starred."""
    tasks = result["tasks"]
    k = _k_of(tasks)
    others = [m for m in (*metric_names(k), *revenue_names(k)) if m != "n"]
    header = ["task", "ranker", "primary", "value", *others, "n"]
    lines = [header]
    for task_name, entry in tasks.items():
        if "skipped" in entry:
            lines.append([task_name, "-", "skipped", entry["skipped"]])
            continue
        primary = entry["metric"]
        scores = entry["scores"]
        best = max((s[primary] for s in scores.values()), default=None)
        for ranker, s in scores.items():
            star = " *" if best is not None and s[primary] == best and best > 0 else ""
            lines.append([task_name, ranker + star, primary, f"{s[primary]:.4f}",
                          *(f"{s[m]:.4f}" if m in s else "-" for m in others), str(s["n"])])
    return _align(lines, header_len=len(header))


def _k_of(tasks: Mapping[str, Any]) -> int:
    for entry in tasks.values():
        if "metric" in entry:
            return int(entry["metric"].split("@")[1])
    return 10


def _align(lines: list[list[str]], header_len: int) -> str:
    """Left-aligned columns; a skipped task's reason runs on past the column grid."""
    widths = [max(len(row[i]) for row in lines if len(row) == header_len and i < len(row))
              for i in range(header_len)]
    out = []
    for row in lines:
        if len(row) == header_len:
            out.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        else:
            out.append("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=False))
                       + "  " + row[3])
    return "\n".join(out)
