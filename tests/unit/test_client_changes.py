"""Behaviour changes as transitions (features/changes.py), on synthetic hand-made clients whose changes are worked
out by hand, and the per-client table on the real slice."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from support.factories import make_transactions

from features.changes import TRIGGERS, ChangeSettings, client_changes
from features.loader import load_dataset
from features.segments import activity_states
from training.clients import client_table
from training.config import TrainConfig
from training.value import fit_value_params

AS_OF = pd.Timestamp("2024-06-30")
SETTINGS = ChangeSettings(period_days=30, baseline_days=90, threshold=0.5, min_past_visits=3)


def weekly(client: str, start: str, end: str, price: float = 10.0, item: str = "milk") -> list[tuple]:
    """A synthetic client buying `item` once a week from `start` to `end`."""
    return [(client, item, day.strftime("%Y-%m-%d"), None, 1.0, price)
            for day in pd.date_range(start, end, freq="7D")]


@pytest.fixture(scope="module")
def changes() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = (weekly("steady", "2024-01-01", "2024-06-29")
            + weekly("quiet", "2024-01-01", "2024-05-20", price=40.0)   # last visit 41 days before: lapsing
            + weekly("back", "2023-11-01", "2024-01-26") + weekly("back", "2024-06-20", "2024-06-29")
            + weekly("slower", "2024-01-01", "2024-05-31") + [("slower", "milk", "2024-06-25", None, 1.0, 10.0)]
            + weekly("explorer", "2024-01-01", "2024-06-29") + [("explorer", "salmon", "2024-06-28", None, 1.0, 9.0)])
    categories = pd.Series({"milk": "DAIRY", "salmon": "SEAFOOD"})
    return client_changes(make_transactions(rows), AS_OF, SETTINGS, categories)


def triggers(moves: pd.DataFrame, client: str) -> set[str]:
    return set(moves.loc[moves["client_id"] == client, "trigger"])


def test_a_client_who_stopped_a_period_ago_is_lapsing_and_to_be_retained(changes) -> None:
    table, moves = changes
    assert table.loc["quiet", "activity"] == "lapsing" and table.loc["quiet", "activity_before"] == "active"
    row = moves[(moves["client_id"] == "quiet") & (moves["trigger"] == "lapsing")].iloc[0]
    assert row["action"] == "retain" and "no purchase for 41 days" in row["detail"]


def test_a_client_who_came_back_is_won_back(changes) -> None:
    table, moves = changes
    assert table.loc["back", "activity_before"] == "inactive" and table.loc["back", "activity"] == "active"
    assert "won_back" in triggers(moves, "back")


def test_a_visit_rate_drop_beyond_the_threshold_says_its_figures(changes) -> None:
    _, moves = changes
    row = moves[(moves["client_id"] == "slower") & (moves["trigger"] == "frequency_drop")].iloc[0]
    # 13 weekly visits in the 90 days before the last 30 = 4.33 a period; 1 in the last period: -77 %
    assert row["change"] == pytest.approx(1 / (13 * 30 / 90) - 1)
    assert row["detail"].startswith("visits −77 % against their last 3 months")
    assert row["action"] == "retain" and 0 < row["severity"] <= 1


def test_a_new_category_is_development_and_a_steady_client_has_no_transition(changes) -> None:
    _, moves = changes
    assert "new_category" in triggers(moves, "explorer")
    assert "SEAFOOD" in moves[(moves["client_id"] == "explorer") & (moves["trigger"] == "new_category")]["detail"].iloc[0]
    # ABC is relative: a steady client may change class as others change, but not state or trend
    assert triggers(moves, "steady") <= {"moved_up", "moved_down"}
    assert set(moves["action"]) <= set(TRIGGERS.values())


def test_inactive_starts_at_120_days_by_default() -> None:
    history = make_transactions([("a", "i", "2024-03-01"), ("b", "i", "2024-01-15")])
    states = activity_states(history, now=pd.Timestamp("2024-06-01"))
    assert states.to_dict() == {"a": "lapsing", "b": "inactive"}  # 92 and 138 days


def test_the_client_table_has_segments_transitions_and_dated_value_figures(slice_dir: Path) -> None:
    dataset = load_dataset(slice_dir)
    tx = dataset.transactions
    end = tx["timestamp"].max()
    config = TrainConfig()
    from features.value import value_summary

    params = fit_value_params(value_summary(tx, as_of=end), config, end)
    as_of = end - pd.Timedelta(days=30)
    table, moves = client_table(dataset.with_transactions(tx[tx["timestamp"] <= as_of]), params, config, as_of)
    for column in ("client_id", "p_alive", "p_purchase", "expected_purchases", "expected_revenue",
                   "expected_value_per_purchase", "clv", "abc", "rfm", "activity", "abc_before", "activity_before",
                   "transitions", "as_of", "data_end"):
        assert column in table, column
    assert (table["as_of"] == as_of.date().isoformat()).all() and (table["data_end"] == end.date().isoformat()).all()
    assert table["p_purchase"].between(0, 1).all() and (table["clv"] >= table["expected_revenue"]).all()
    assert len(moves) and set(moves["client_id"]) <= set(table["client_id"])
