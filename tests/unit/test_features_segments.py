"""RFM, ABC and activity segments on hand-made clients whose classes are worked out by hand."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.factories import make_transactions

from features.segments import abc_classes, activity_states, client_segments, rfm_scores, segment_changes

NOW = pd.Timestamp("2024-01-31")


def one_purchase_each(revenues: dict[str, float], date: str = "2024-01-01") -> pd.DataFrame:
    return make_transactions([(client, "i1", date, None, 1.0, price) for client, price in revenues.items()])


def test_abc_is_a_pareto_on_the_revenue_share_before_each_client() -> None:
    history = one_purchase_each({"e": 4.0, "a": 50.0, "c": 10.0, "b": 30.0, "d": 6.0, "z": np.nan})
    # shares before each client: a 0, b 0.5, c 0.8, d 0.9, e 0.96; z has no revenue
    classes = abc_classes(history)
    assert classes.to_dict() == {"a": "A", "b": "A", "c": "B", "d": "B", "e": "C", "z": "C"}
    assert classes.index.name == "client_id"


def test_abc_uses_net_revenue() -> None:
    history = make_transactions(
        [
            ("a", "i1", "2024-01-01", "o1", 1.0, 10.0),
            ("b", "i1", "2024-01-01", "o2", 2.0, 10.0),
            ("b", "i1", "2024-01-02", "o3", -2.0, 10.0),  # everything returned
        ]
    )
    assert abc_classes(history).to_dict() == {"a": "A", "b": "C"}


def test_activity_states_by_days_since_last_purchase() -> None:
    history = make_transactions(
        [
            ("a", "i1", "2024-03-20"),  # 12 days
            ("b", "i1", "2024-03-02"),  # 30 days: still active
            ("c", "i1", "2024-03-01"),  # 31 days
            ("d", "i1", "2024-01-02"),  # 90 days: still lapsing
            ("e", "i1", "2024-01-01"),  # 91 days
            ("f", "i1", "2024-01-01"),
            ("f", "i1", "2024-03-31", "r1", -1.0),  # a return is not a purchase
        ]
    )
    states = activity_states(history, now=pd.Timestamp("2024-04-01"), inactive_days=90)
    assert states.to_dict() == {
        "a": "active",
        "b": "active",
        "c": "lapsing",
        "d": "lapsing",
        "e": "inactive",
        "f": "inactive",
    }


@pytest.fixture()
def rfm_history() -> pd.DataFrame:
    return make_transactions(
        [
            ("a", "i1", "2024-01-30", None, 1.0, 10.0),
            ("a", "i2", "2024-01-30", None, 1.0, 0.0),  # same order: still 3 orders
            ("a", "i1", "2024-01-29", None, 1.0, 10.0),
            ("a", "i1", "2024-01-28", None, 1.0, 10.0),
            ("b", "i1", "2024-01-01", None, 1.0, 1.0),
            ("b", "i1", "2024-01-02", None, 1.0, 1.0),
            ("b", "i1", "2024-01-03", None, 1.0, 1.0),
            ("b", "i1", "2024-01-04", None, 1.0, 1.0),
            ("c", "i1", "2024-01-21", None, 2.0, 50.0),
            ("d", "i1", "2024-01-11", None, 1.0, 5.0),
            ("d", "i1", "2024-01-12", None, 1.0, 5.0),
            ("e", "i1", "2024-01-26", None, 1.0, np.nan),  # unknown price counts as 0
            ("e", "i1", "2024-01-27", None, -1.0, 3.0),  # a return: neither recency nor money
        ]
    )


def test_rfm_scores_by_hand(rfm_history) -> None:
    scores = rfm_scores(rfm_history, now=NOW, bins=5)
    assert list(scores.columns) == [
        "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "rfm",
    ]
    assert scores["recency_days"].to_dict() == {"a": 1.0, "b": 27.0, "c": 10.0, "d": 19.0, "e": 5.0}
    assert scores["frequency"].to_dict() == {"a": 3, "b": 4, "c": 1, "d": 2, "e": 1}
    assert scores["monetary"].to_dict() == {"a": 30.0, "b": 4.0, "c": 100.0, "d": 10.0, "e": 0.0}
    # c and e tie on frequency (average rank 1.5 of 5 -> 30th percentile -> score 2)
    assert scores["rfm"].to_dict() == {"a": "544", "b": "152", "c": "325", "d": "233", "e": "421"}
    assert scores["r_score"].between(1, 5).all()


def test_client_segments_combine_everything_and_route_thresholds(rfm_history) -> None:
    segments = client_segments(rfm_history, now=NOW, lapsing_days=10, bins=3, a_share=0.5)
    assert list(segments.columns) == [
        "abc", "activity", "r_score", "f_score", "m_score", "rfm", "recency_days", "frequency", "monetary",
    ]
    assert segments.index.name == "client_id"
    assert segments["activity"].to_dict() == {
        "a": "active", "b": "lapsing", "c": "active", "d": "lapsing", "e": "active",
    }
    # revenue c 100, a 30, d 10, b 4, e 0 (total 144): shares before c 0, a 0.694, d 0.903, b 0.972
    assert segments["abc"].to_dict() == {"a": "B", "b": "C", "c": "A", "d": "B", "e": "C"}
    assert segments["m_score"].max() == 3
    with pytest.raises(ValueError, match="unknown"):
        client_segments(rfm_history, now=NOW, lapsing=10)


def test_segment_changes_flag_clients_who_moved_down() -> None:
    history = make_transactions(
        [
            ("x", "i1", "2024-01-30", None, 1.0, 80.0),
            ("y", "i1", "2024-01-30", None, 1.0, 15.0),
            ("v", "i1", "2024-01-30", None, 1.0, 5.0),
            ("x", "i1", "2024-04-29", None, 1.0, 80.0),
            ("y", "i1", "2024-04-29", None, 1.0, 200.0),
            ("z", "i1", "2024-04-29", None, 1.0, 20.0),  # a new client
        ]
    )
    changes = segment_changes(history, pd.Timestamp("2024-01-31"), pd.Timestamp("2024-04-30"), inactive_days=90)
    assert list(changes.columns) == ["abc_before", "abc_after", "activity_before", "activity_after", "moved"]
    assert changes["abc_before"].drop("z").to_dict() == {"v": "C", "x": "A", "y": "B"}
    assert pd.isna(changes.loc["z", "abc_before"]) and pd.isna(changes.loc["z", "activity_before"])
    assert changes["abc_after"].to_dict() == {"v": "C", "x": "A", "y": "A", "z": "B"}
    assert changes["activity_after"].to_dict() == {"v": "inactive", "x": "active", "y": "active", "z": "active"}
    # x same; y climbed B -> A; v went inactive (91 days); z is new
    assert changes["moved"].to_dict() == {"v": "down", "x": "same", "y": "up", "z": "up"}
    with pytest.raises(ValueError):
        segment_changes(history, pd.Timestamp("2024-04-30"), pd.Timestamp("2024-01-31"))
