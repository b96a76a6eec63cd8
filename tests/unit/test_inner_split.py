"""The inner split tuning chooses on: the last days when they give a usable window, else a
per-client random hold-out, and the tuning report says which and why (issue 11)."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from support.factories import SHOP_CONFIG, make_shop, make_transactions

from features.schema import CLIENT, ITEM, ORDER, TIMESTAMP
from training.context import TrainContext
from training.split import MIN_SCORED_CLIENTS, SplitError, inner_split, random_holdout, time_split
from training.tuning import tune


def orders_of(tx: pd.DataFrame) -> set[tuple[str, str]]:
    return set(map(tuple, tx[[CLIENT, ORDER]].drop_duplicates().to_numpy()))


def test_random_holdout_keeps_orders_whole_and_a_fifth_of_each_clients_orders() -> None:
    rows = [("ten", f"i{d % 3}", f"2024-01-{d + 1:02d}") for d in range(10) for _ in range(2)]
    rows += [("two", "x", "2024-01-01"), ("two", "y", "2024-01-02")]
    rows += [("once", "x", "2024-01-01", "big"), ("once", "y", "2024-01-01", "big"),
             ("once", "z", "2024-01-01", "big")]
    rows += [("single", "x", "2024-01-05")]
    tx = make_transactions(rows)
    train, valid, info = random_holdout(tx, seed=0)
    assert len(train) + len(valid) == len(tx)
    # an order is on one side only, except the one order of a client who is split by items
    assert not (orders_of(train) & orders_of(valid)) - {("once", "big")}
    held = valid.groupby(CLIENT)[ORDER].nunique().to_dict()
    assert held["ten"] == 2 and held["two"] == 1  # round(0.2 x 10); at least one of two
    assert valid.loc[valid[CLIENT] == "once", ITEM].nunique() == 1  # round(0.2 x 3) = 1 item of 3
    assert train.loc[train[CLIENT] == "once", ITEM].nunique() == 2
    assert "single" not in set(valid[CLIENT])  # one order, one item: nothing to hold out
    assert set(train[CLIENT]) == {"ten", "two", "once", "single"}  # everyone keeps something to learn from
    assert info["method"] == "random_holdout" and info["clients_by_order"] == 2 and info["clients_by_item"] == 1


def test_random_holdout_depends_on_the_seed_not_on_the_row_order() -> None:
    tx, _, _ = make_shop()
    _, valid, _ = random_holdout(tx, seed=3)
    _, shuffled, _ = random_holdout(tx.sample(frac=1.0, random_state=1), seed=3)
    assert orders_of(valid) == orders_of(shuffled)
    _, other, _ = random_holdout(tx, seed=4)
    assert orders_of(valid) != orders_of(other)


def test_random_holdout_needs_something_to_hold_out() -> None:
    tx = make_transactions([("a", "x", "2024-01-01"), ("b", "y", "2024-01-01")])
    with pytest.raises(SplitError, match="no client has two orders"):
        random_holdout(tx)


def test_a_normal_history_is_split_by_time() -> None:
    tx, _, _ = make_shop()
    train, valid, info = inner_split(tx, 30)
    expected_train, expected_valid, _ = time_split(tx, 30)
    assert info["method"] == "time" and "the last 30 days hold purchases by" in info["why"]
    assert len(train) == len(expected_train) and len(valid) == len(expected_valid)


@pytest.mark.parametrize(("history", "why"), [
    (lambda tx: tx.assign(**{TIMESTAMP: pd.Timestamp("2024-03-01 10:00")}), "the timestamps carry no order"),
    (lambda tx: tx, "is not longer than the 200-day inner window"),
    (lambda tx: tx[(tx[TIMESTAMP] < tx[TIMESTAMP].max() - pd.Timedelta(days=45)) | tx[CLIENT].isin(["c01", "c02"])],
     "2 client(s) bought in it and before it, fewer than 10"),
], ids=["all on one day", "shorter than the window", "too few clients in the window"])
def test_no_usable_window_falls_back_to_a_random_holdout(history, why: str) -> None:
    tx = history(make_shop()[0])
    train, valid, info = inner_split(tx, 200 if "200" in why else 30, seed=0)
    assert info["method"] == "random_holdout" and why in info["why"]
    assert len(train) and len(valid) and len(train) + len(valid) == len(tx)
    assert valid[CLIENT].nunique() >= MIN_SCORED_CLIENTS


def test_no_split_at_all_says_both_reasons() -> None:
    tx = make_transactions([("a", "x", "2024-01-01"), ("b", "y", "2024-01-01")])
    with pytest.raises(SplitError, match="carry no order.*no random hold-out either"):
        inner_split(tx, 30)


@pytest.fixture(scope="module")
def shop_ctx() -> TrainContext:
    tx, items, packages = make_shop()
    return TrainContext.build(tx, items, packages)


def _tuned(tx: pd.DataFrame, caplog: pytest.LogCaptureFixture, tune_days: int = 30) -> dict:
    _, items, packages = make_shop()
    with caplog.at_level(logging.INFO, logger="training.tuning"):
        _, report = tune(TrainContext.build(tx, items, packages), SHOP_CONFIG.model_copy(update={"tune_days": tune_days}))
    return report


@pytest.mark.parametrize(("history", "tune_days", "why"), [
    (lambda tx: tx.assign(**{TIMESTAMP: pd.Timestamp("2024-03-01 10:00")}), 30, "the timestamps carry no order"),
    (lambda tx: tx, 200, "not longer than the 200-day inner window"),
], ids=["all on one day", "shorter than the tune window"])
def test_tuning_without_a_usable_window_uses_and_reports_the_random_holdout(
        history, tune_days: int, why: str, caplog: pytest.LogCaptureFixture) -> None:
    report = _tuned(history(make_shop()[0]), caplog, tune_days)
    assert report["inner_split"]["method"] == "random_holdout" and why in report["inner_split"]["why"]
    assert report["cf"] and report["weights"]  # it was tuned, not left at the configured settings
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("random hold-out" in message and why in message for message in warnings), warnings


def test_tuning_a_normal_history_uses_the_last_days(caplog: pytest.LogCaptureFixture) -> None:
    report = _tuned(make_shop()[0], caplog)
    assert report["inner_split"] == {"method": "time", "why": report["inner_split"]["why"]}
    assert "the last 30 days hold purchases by" in report["inner_split"]["why"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_report_travels_in_the_models_meta(shop_ctx: TrainContext) -> None:
    from training.pipeline import fit_tuned

    _, model = fit_tuned(shop_ctx, SHOP_CONFIG)
    assert model.meta["tuning"]["inner_split"]["method"] == "time"
    assert np.isfinite(model.meta["tuning"]["seconds"])
