"""A published baseline's setting chosen on the inner split: the best candidate is kept (on a
grid whose right answer is known), ties keep the first, the choice is reported and kept by a
hold-out refit, and EASE's λ and SAR's similarity and half-life are chosen this way."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from support.factories import make_shop, make_transactions

from training.baseline_tuning import InnerSplit, choose_on_inner
from training.config import TrainConfig
from training.context import TrainContext
from training.ease import DEFAULT_L2, L2_GRID, Ease
from training.ranker import ScoringRanker
from training.sar import SETTINGS, Sar, SarSetting
from training.split import time_split
from training.tasks import TaskQueries


class Prefers(ScoringRanker):
    """Scores `item` above everything else, whoever asks: a candidate whose worth is known."""

    name = "prefers"

    def __init__(self, item: str) -> None:
        self.item = item

    def score(self, queries: TaskQueries, rows: slice) -> np.ndarray:
        scores = np.zeros((rows.stop - rows.start, len(self.ctx.items)), dtype=np.float32)
        scores[:, self.ctx.items.index_of([self.item])[0]] = 1.0
        return scores


def new_item_in_the_last_days() -> TrainContext:
    """Twelve clients buy milk weekly; at the end each also buys tea for the first time (another
    client bought it early, so the inner training part knows it). The inner split's cross_sell
    answer is tea, never soap."""
    rows = [(f"c{c}", "milk", (pd.Timestamp("2024-01-01") + pd.Timedelta(days=7 * w)).strftime("%Y-%m-%d"))
            for c in range(12) for w in range(12)]
    rows += [(f"c{c}", "tea", "2024-03-20") for c in range(12)] + [("c0", "soap", "2024-01-02"), ("t", "tea", "2024-01-03")]
    return TrainContext.build(make_transactions(rows))


def prefer(items: tuple[str, ...]):
    def fitted(inner: TrainContext) -> Iterator[tuple[str, ScoringRanker]]:
        for item in items:
            yield item, Prefers(item).fit(inner)
    return fitted


def test_the_candidate_that_finds_the_answer_is_chosen() -> None:
    ctx = new_item_in_the_last_days()
    choice = choose_on_inner(ctx, ("soap", "tea"), str, prefer(("soap", "tea")), "cross_sell", "test")
    assert choice.chosen == "tea"
    assert choice.inner["tea"] == 1.0 and choice.inner["soap"] < 1.0
    assert choice.metric == "cross_sell ndcg@10" and choice.inner_split["method"] == "time"


def test_a_tie_keeps_the_first_candidate_and_one_candidate_is_not_searched() -> None:
    ctx = new_item_in_the_last_days()
    assert choose_on_inner(ctx, ("tea", "tea"), lambda c: c, prefer(("tea", "tea")), "cross_sell", "t").chosen == "tea"
    choice = choose_on_inner(ctx, ("tea", "soap"), str, prefer(("tea", "soap")), "cross_sell", "t")
    assert list(choice.inner) == ["tea", "soap"]
    single = choose_on_inner(ctx, ("soap",), str, lambda inner: pytest.fail("nothing to search"), "cross_sell", "t")
    assert single.chosen == "soap" and single.inner == {} and single.inner_split is None


def test_without_any_inner_split_the_first_candidate_is_kept_and_why_is_said() -> None:
    ctx = TrainContext.build(make_transactions([("a", "x", "2024-01-01"), ("b", "y", "2024-01-01")]))
    choice = choose_on_inner(ctx, ("x", "y"), str, lambda inner: pytest.fail("no split to fit on"), "cross_sell", "t")
    assert choice.chosen == "x" and choice.inner_split["method"] is None and "no order" in choice.inner_split["why"]


def test_the_inner_split_is_the_models_own() -> None:
    config = TrainConfig(tune_days=21, seed=7)
    assert InnerSplit.of(config) == InnerSplit(21, 7)
    assert InnerSplit() == InnerSplit.of(TrainConfig())


@pytest.fixture(scope="module")
def shop_train() -> TrainContext:
    tx, items, packages = make_shop()
    train, _, _ = time_split(tx, 30)
    return TrainContext.build(train, items, packages)


def test_ease_chooses_the_l2_with_the_best_inner_score(shop_train: TrainContext) -> None:
    ranker = Ease().fit(shop_train)
    settings = ranker.settings
    assert set(settings["inner"]) == {f"{l2:g}" for l2 in L2_GRID} and L2_GRID[0] == DEFAULT_L2
    assert settings["inner"][f"{ranker.l2:g}"] == max(settings["inner"].values())
    assert settings["chosen"] == {"l2": ranker.l2, "max_items": ranker.max_items}
    assert settings["chosen_on"] == "cross_sell ndcg@10"


def test_sar_chooses_similarity_and_half_life_with_the_best_inner_score(shop_train: TrainContext) -> None:
    ranker = Sar().fit(shop_train)
    inner = ranker.settings["inner"]
    assert set(inner) == {s.name for s in SETTINGS} == {"jaccard/30d", "jaccard/no-decay", "lift/30d", "lift/no-decay"}
    assert inner[ranker.setting.name] == max(inner.values())
    assert ranker.settings["chosen"]["similarity"] == ranker.setting.similarity


def test_a_fixed_setting_is_not_searched_and_says_so(shop_train: TrainContext) -> None:
    ranker = Sar(SarSetting("lift", None)).fit(shop_train)
    assert ranker.settings == {"chosen": {"similarity": "lift", "half_life_days": None, "neighbours": 200}}


def test_a_holdout_refit_keeps_the_choice_without_searching_again(shop_train: TrainContext,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    ranker = Ease(candidates=(2000.0, 100.0)).fit(shop_train)
    import training.baseline_tuning as tuning

    monkeypatch.setattr(tuning, "inner_split", lambda *a, **k: pytest.fail("the refit searched again"))
    other = ranker.refit(shop_train)
    assert other is not ranker and other.l2 == ranker.l2 and other.settings == ranker.settings
