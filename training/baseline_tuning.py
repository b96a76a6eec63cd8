"""How a published baseline picks its setting: the best of a few candidates on the inner split.

Issue 11 asks that each published baseline run "with its published or tuned-on-inner-split
settings", chosen as the model's own settings are: on an inner split of the training part
(`training.split.inner_split`, the same split the model's tuning uses: the last `tune_days`, or a
per-client random hold-out when time gives no usable window), never on the test. TIFU-KNN picks
one of its two published settings this way, EASE its L2 weight, SAR its similarity and half-life.

`choose_on_inner` does it once for all of them: build the inner split and its context, build the
one task the baseline is chosen on, fit and score each candidate (its lists through the same
presentability rules as in the evaluation, `training.presentable`), keep the best (the first on a
tie, so the published default listed first wins unless another beats it). `TunedOnInner` gives
such a ranker the two things the harness asks of it: `settings` (the choice and every
candidate's inner score, written to the evaluation JSON) and `refit` (a hold-out task's refit
keeps the choice, as the model's recipe is kept, instead of searching again).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from training.config import TrainConfig
from training.context import TrainContext
from training.item_facts import item_facts
from training.metrics import score_rankings
from training.presentable import fetch_depth, presentable
from training.ranker import Ranker
from training.split import SplitError, inner_split
from training.tasks import Skipped, TaskQueries, cross_sell, next_basket

log = logging.getLogger(__name__)

P = TypeVar("P")

#: Cut-off of the inner metric that picks the setting (the evaluation's default k).
INNER_K = 10
#: The tasks a baseline can be chosen on, by name.
INNER_TASKS: dict[str, Callable[[TrainContext, Any], TaskQueries | Skipped]] = {
    "cross_sell": cross_sell, "next_basket": next_basket,
}


@dataclass(frozen=True)
class InnerSplit:
    """Where the inner split lies: the last `days` of the training part (else a random hold-out
    drawn with `seed`). Defaults are TrainConfig's (TRAIN_TUNE_DAYS, TRAIN_SEED), so a baseline
    and the model are tuned on the same split."""

    days: float = TrainConfig.model_fields["tune_days"].default
    seed: int = TrainConfig.model_fields["seed"].default

    @classmethod
    def of(cls, config: TrainConfig) -> InnerSplit:
        return cls(config.tune_days, config.seed)


#: The inner split of TrainConfig's defaults.
DEFAULT_SPLIT = InnerSplit()


@dataclass(frozen=True)
class Choice(Generic[P]):
    """The kept candidate, each candidate's inner score (by label), what they were scored on, and
    the inner split's method and reason (None when there was nothing to choose between)."""

    chosen: P
    inner: dict[str, float] = field(default_factory=dict)
    metric: str | None = None
    inner_split: dict[str, Any] | None = None


def choose_on_inner(ctx: TrainContext, candidates: Sequence[P], label: Callable[[P], str],
                    fitted: Callable[[TrainContext], Iterable[tuple[P, Ranker]]], task: str, who: str,
                    split: InnerSplit = DEFAULT_SPLIT) -> Choice[P]:
    """The candidate whose ranker, fitted on the inner training part, scores best on `task`'s
    primary metric @INNER_K over the inner validation part; the first when only one is given, the
    split is impossible or the task has nothing to score.

    `fitted(inner_ctx)` yields (candidate, its ranker fitted on inner_ctx) for every candidate, one
    at a time, so a baseline can share work between candidates (SAR computes its co-occurrences
    once for both similarities) and hold one fitted candidate in memory at a time."""
    if len(candidates) == 1:
        return Choice(candidates[0])
    try:
        inner_tx, valid, info = inner_split(ctx.transactions, split.days, seed=split.seed)
    except SplitError as exc:
        log.info("%s: no inner split (%s); keeping %s", who, exc, label(candidates[0]))
        return Choice(candidates[0], inner_split={"method": None, "why": str(exc)})
    how = {"method": info["method"], "why": info["why"]}
    if info["method"] != "time":
        log.info("%s: inner split by per-client random hold-out (%s)", who, info["why"])
    inner = TrainContext.build(inner_tx, ctx.items_df, ctx.packages)
    queries = INNER_TASKS[task](inner, valid)
    if isinstance(queries, Skipped):
        log.info("%s: the inner split has no %s task (%s); keeping %s", who, task, queries.reason,
                 label(candidates[0]))
        return Choice(candidates[0], inner_split=how)
    metric = f"{queries.metric}@{INNER_K}"
    facts = item_facts(inner)
    values: dict[str, float] = {}
    for candidate, ranker in fitted(inner):
        # scored as the evaluation scores it: the list cut to what the service could show
        ranked = presentable(queries, ranker.rank(queries, fetch_depth(task, INNER_K)), facts, INNER_K)
        del ranker  # one fitted candidate at a time (an EASE candidate holds 256 MB)
        values[label(candidate)] = round(float(score_rankings(ranked, queries.relevant, len(inner.items),
                                                              INNER_K)[metric]), 5)
    best = max(candidates, key=lambda c: values[label(c)])  # max keeps the first on a tie
    log.info("%s: inner %s %s %s; keeping %s", who, task, metric, values, label(best))
    return Choice(best, values, f"{task} {metric}", how)


class TunedOnInner(Generic[P]):
    """Mixin for a ranker whose `_fit` sets `self.choice` (a `Choice`) and which can be rebuilt
    with one fixed candidate (`with_setting`)."""

    choice: Choice[P]

    def with_setting(self, setting: P) -> Ranker:
        """A ranker of the same kind that uses `setting` and chooses nothing."""
        raise NotImplementedError

    def describe_setting(self, setting: P) -> dict[str, Any]:
        """The setting as JSON-ready values."""
        raise NotImplementedError

    @property
    def settings(self) -> dict[str, Any]:
        """What the evaluation JSON records of this ranker: the setting used, and when it was
        chosen, each candidate's inner score, the metric and the inner split's method and reason."""
        report: dict[str, Any] = {"chosen": self.describe_setting(self.choice.chosen)}
        if self.choice.inner_split is not None:
            report.update(chosen_on=self.choice.metric, inner=dict(self.choice.inner),
                          inner_split=dict(self.choice.inner_split))
        return report

    def refit(self, ctx: TrainContext) -> Ranker:
        """The same setting fitted on `ctx` (a hold-out task's context), without searching again."""
        other = self.with_setting(self.choice.chosen).fit(ctx)
        other.choice = self.choice
        return other
