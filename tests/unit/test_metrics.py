"""Ranking metrics against values worked out by hand, and the batch scorer against the per-list ones."""
from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import (
    average_precision_at_k,
    catalogue_coverage,
    dcg_at_k,
    hit_rate_at_k,
    metric_names,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    score_rankings,
)

D2, D3, D4, D5 = (1 / math.log2(p + 1) for p in (2, 3, 4, 5))  # discounts at positions 2..5

# Three relevant items; the list finds two of them, at positions 2 and 4.
RANKED = np.array([3, 1, 7, 2])
RELEVANT = {1, 2, 9}


def test_hand_computed_values_at_4() -> None:
    assert dcg_at_k(RANKED, RELEVANT, 4) == pytest.approx(D2 + D4)
    assert ndcg_at_k(RANKED, RELEVANT, 4) == pytest.approx((D2 + D4) / (1 + D2 + D3))
    assert ndcg_at_k(RANKED, RELEVANT, 4) == pytest.approx(1.0616064 / 2.1309298, abs=1e-6)  # 0.498189
    assert precision_at_k(RANKED, RELEVANT, 4) == pytest.approx(2 / 4)
    assert recall_at_k(RANKED, RELEVANT, 4) == pytest.approx(2 / 3)
    assert average_precision_at_k(RANKED, RELEVANT, 4) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert hit_rate_at_k(RANKED, RELEVANT, 4) == 1.0
    assert mrr_at_k(RANKED, RELEVANT, 4) == pytest.approx(1 / 2)


def test_cut_at_k_and_ideal_uses_min_of_relevant_and_k() -> None:
    # at k=2 only the hit at position 2 counts; the ideal list has min(3, 2) = 2 hits
    assert ndcg_at_k(RANKED, RELEVANT, 2) == pytest.approx(D2 / (1 + D2))
    assert precision_at_k(RANKED, RELEVANT, 2) == pytest.approx(1 / 2)
    assert recall_at_k(RANKED, RELEVANT, 2) == pytest.approx(1 / 3)
    # MAP denominator is min(|rel|, k) = 2, not |rel| = 3
    assert average_precision_at_k(RANKED, RELEVANT, 2) == pytest.approx((1 / 2) / 2)
    assert mrr_at_k(RANKED, RELEVANT, 1) == 0.0
    assert hit_rate_at_k(RANKED, RELEVANT, 1) == 0.0


def test_perfect_list_scores_one() -> None:
    ranked = np.array([9, 2, 1, 5])
    assert ndcg_at_k(ranked, RELEVANT, 4) == pytest.approx(1.0)
    assert average_precision_at_k(ranked, RELEVANT, 4) == pytest.approx(1.0)
    assert recall_at_k(ranked, RELEVANT, 4) == pytest.approx(1.0)
    assert precision_at_k(ranked, RELEVANT, 4) == pytest.approx(3 / 4)


def test_padding_is_never_a_hit_and_short_lists_are_not_rewarded() -> None:
    ranked = np.array([-1, 5, -1])
    assert ndcg_at_k(ranked, {5}, 3) == pytest.approx(D2)
    assert precision_at_k(ranked, {5}, 3) == pytest.approx(1 / 3)
    # a negative relevant code (item unseen in training) never matches the -1/-2 padding
    assert hit_rate_at_k(np.array([-2, -1]), {-2}, 2) == 0.0


def test_unseen_relevant_items_count_in_the_denominator() -> None:
    ranked = np.array([5])
    assert recall_at_k(ranked, {5, -2, -3}, 1) == pytest.approx(1 / 3)
    assert ndcg_at_k(ranked, {5, -2}, 1) == pytest.approx(1.0)  # ideal DCG is capped at k = 1
    assert ndcg_at_k(np.array([5, 6]), {5, -2}, 2) == pytest.approx(1 / (1 + D2))


def test_repeated_item_counts_once() -> None:
    assert precision_at_k(np.array([1, 1, 1]), {1}, 3) == pytest.approx(1 / 3)
    assert dcg_at_k(np.array([1, 1]), {1}, 2) == pytest.approx(1.0)


def test_empty_relevant_scores_zero_and_bad_k_is_an_error() -> None:
    assert ndcg_at_k(RANKED, set(), 4) == 0.0
    assert recall_at_k(RANKED, set(), 4) == 0.0
    with pytest.raises(ValueError):
        ndcg_at_k(RANKED, RELEVANT, 0)


def test_catalogue_coverage_ignores_padding() -> None:
    assert catalogue_coverage([np.array([0, 1, -1]), np.array([1, 2, -1])], 10) == pytest.approx(0.3)
    assert catalogue_coverage([], 10) == 0.0
    with pytest.raises(ValueError):
        catalogue_coverage([np.array([0])], 0)


def test_score_rankings_keys_follow_k() -> None:
    scores = score_rankings(np.array([[3, 1, 7, 2, 0]]), [RELEVANT], n_items=10, k=5)
    assert tuple(scores) == metric_names(5)
    assert tuple(scores) == ("ndcg@5", "precision@5", "recall@5", "map@5", "hr@5", "mrr@5", "coverage", "n")
    assert scores["n"] == 1
    assert scores["coverage"] == pytest.approx(0.5)


def test_score_rankings_is_the_mean_of_the_per_list_metrics() -> None:
    rng = np.random.default_rng(7)
    n_items, k = 30, 10
    recommendations = np.stack([rng.permutation(n_items)[:k] for _ in range(200)])
    recommendations[rng.random(recommendations.shape) < 0.1] = -1  # some padding
    relevant = [set(rng.choice(n_items, size=rng.integers(1, 15), replace=False).tolist()) for _ in range(200)]
    relevant[0] |= {-2, -3}  # unseen items
    scores = score_rankings(recommendations, relevant, n_items=n_items, k=k)
    per_list = {
        f"ndcg@{k}": ndcg_at_k, f"precision@{k}": precision_at_k, f"recall@{k}": recall_at_k,
        f"map@{k}": average_precision_at_k, f"hr@{k}": hit_rate_at_k, f"mrr@{k}": mrr_at_k,
    }
    for name, metric in per_list.items():
        expected = np.mean([metric(r, rel, k) for r, rel in zip(recommendations, relevant, strict=True)])
        assert scores[name] == pytest.approx(expected), name
    assert scores["coverage"] == pytest.approx(catalogue_coverage(recommendations, n_items))
    assert scores["n"] == 200


def test_score_rankings_reads_only_the_first_k_columns() -> None:
    wide = np.array([[0, 1, 2, 3]])
    assert score_rankings(wide, [{3}], n_items=4, k=2)["hr@2"] == 0.0
    assert score_rankings(wide, [{3}], n_items=4)["hr@4"] == 1.0


def test_score_rankings_rejects_bad_batches() -> None:
    with pytest.raises(ValueError, match="relevant"):
        score_rankings(np.array([[0, 1]]), [set()], n_items=3)
    with pytest.raises(ValueError, match="repeats"):
        score_rankings(np.array([[0, 0]]), [{0}], n_items=3)
    with pytest.raises(ValueError):
        score_rankings(np.array([[0, 1]]), [{0}, {1}], n_items=3)
    empty = score_rankings(np.zeros((0, 10), dtype=np.int64), [], n_items=3)
    assert empty["n"] == 0 and empty["ndcg@10"] == 0.0
