"""Small but valid data: `train` and `evaluate` either work or stop with exit 2 and a sentence.

Issue 10, item 2: a 41-client, 30-item file crashed `evaluate` and `train` in the cross-sell task
with "The truth value of an array ... is ambiguous". Every folder here is cut from the real
150-household slice and is valid data; each command runs as a user runs it, as a subprocess
against a private MLflow store. It must end in exit 0, or in exit 2 with an `error:` sentence
saying what is too small and the minimum: never a traceback, never exit 3.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from support.processes import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Cut = Callable[[pd.DataFrame], pd.DataFrame]


def _first_clients_top_items(tx: pd.DataFrame, clients: int = 41, items: int = 30) -> pd.DataFrame:
    """The issue's shape: the first clients, restricted to the items they buy most."""
    sub = tx[tx["client_id"].isin(sorted(tx["client_id"].unique())[:clients])]
    return sub[sub["item_id"].isin(sub["item_id"].value_counts().index[:items])]


def _sparse(tx: pd.DataFrame) -> pd.DataFrame:
    """331 lines of the 41-client, 30-item cut, as in the issue."""
    return _first_clients_top_items(tx).sample(331, random_state=0)


def _returns_in_test_window(tx: pd.DataFrame) -> pd.DataFrame:
    """Nothing bought in the test window: the lines there are returns (the crash of item 2)."""
    cut = _first_clients_top_items(tx).copy()
    cut.loc[cut["timestamp"] >= cut["timestamp"].max() - pd.Timedelta(days=60), "quantity"] = -1.0
    return cut


def _one_client(tx: pd.DataFrame) -> pd.DataFrame:
    return tx[tx["client_id"] == sorted(tx["client_id"].unique())[0]]


def _one_item(tx: pd.DataFrame) -> pd.DataFrame:
    return tx[tx["item_id"] == tx["item_id"].value_counts().index[0]]


def _one_day(tx: pd.DataFrame) -> pd.DataFrame:
    return _first_clients_top_items(tx).assign(timestamp=pd.Timestamp("2017-06-01 10:00:00"))


def _shorter_than_the_tune_window(tx: pd.DataFrame) -> pd.DataFrame:
    """The last 75 days: 15 days of training before the 60-day test, half the 30-day tune window."""
    cut = _first_clients_top_items(tx)
    return cut[cut["timestamp"] >= cut["timestamp"].max() - pd.Timedelta(days=75)]


def _two_lines(tx: pd.DataFrame) -> pd.DataFrame:
    return tx.sort_values("timestamp").iloc[[0, -1]]


#: name -> (cut, (train's exit, sentence), (evaluate's exit, sentence)); sentence None for exit 0.
CASES: dict[str, tuple[Cut, tuple[int, str | None], tuple[int, str | None]]] = {
    "41 clients, 30 items, 331 lines": (_sparse, (0, None), (0, None)),
    "returns only in the test window": (
        _returns_in_test_window, (2, "the 60-day test window gives no task anything to score"), (0, None)),
    "two lines": (_two_lines, (2, "the 60-day test window gives no task anything to score"), (0, None)),
    "one client": (_one_client, (2, "purchases by 1 client(s); training needs at least 2"), (0, None)),
    "one item": (_one_item, (2, "purchases of 1 item(s); training needs at least 2"), (0, None)),
    "everything on one day": (_one_day, (2, "is not longer than the 60-day test window"),
                              (2, "is not longer than the 60-day test window")),
}


@pytest.fixture(scope="module")
def slice_tables(slice_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    tx = pd.read_parquet(slice_dir / "transactions.parquet")
    items = pd.read_parquet(slice_dir / "items.parquet")
    return (tx.astype({"client_id": str, "item_id": str}), items.astype({"item_id": str}))


def _folder(tmp_path: Path, tables: tuple[pd.DataFrame, pd.DataFrame], cut: Cut) -> Path:
    tx, items = tables
    lines = cut(tx)
    folder = tmp_path / "data"
    folder.mkdir()
    lines.to_csv(folder / "transactions.csv", index=False)
    items[items["item_id"].isin(lines["item_id"])].to_csv(folder / "items.csv", index=False)
    return folder


def _run(command: list[str], cwd: Path) -> tuple[int, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "MODEL_NAME")}
    env.update(PYTHONPATH=str(ROOT), MLFLOW_TRACKING_URI=f"sqlite:///{cwd / 'mlflow.db'}")
    done = subprocess.run([sys.executable, "-m", "training", *command], cwd=cwd, env=env, capture_output=True,
                          timeout=600)
    return done.returncode, (done.stdout + done.stderr).decode("utf-8", errors="replace")


def _check(outcome: tuple[int, str], expected: tuple[int, str | None]) -> None:
    code, output = outcome
    assert "Traceback" not in output, output[-3000:]
    assert code == expected[0], output[-3000:]
    if expected[1] is not None:
        error = [line for line in output.splitlines() if line.startswith("error: ")]
        assert error and expected[1] in error[-1], output[-3000:]


@pytest.mark.parametrize("case", list(CASES))
def test_small_valid_data_trains_or_says_what_is_too_small(case: str, tmp_path: Path, slice_tables) -> None:
    cut, train_expected, evaluate_expected = CASES[case]
    folder = _folder(tmp_path, slice_tables, cut)
    _check(_run(["train", "--data", str(folder), "--no-tune"], tmp_path), train_expected)
    _check(_run(["evaluate", "--data", str(folder)], tmp_path), evaluate_expected)


def test_a_history_shorter_than_the_tune_window_is_tuned_on_a_random_holdout(tmp_path: Path, slice_tables) -> None:
    """Issue 11: tuning must not depend on a long purchase log. The trainer says it fell back,
    and the choice reaches the MLflow run and the evaluation JSON (model and baselines alike)."""
    folder = _folder(tmp_path, slice_tables, _shorter_than_the_tune_window)
    code, output = _run(["train", "--data", str(folder), "--promote", "--max-baskets", "200"], tmp_path)
    _check((code, output), (0, None))
    assert "WARNING training.tuning: inner split: a per-client random hold-out" in output, output[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("crm-recommender")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["tuning.inner_split"] == "random_holdout"
    assert "inner window" in run.data.params["tuning.inner_split_why"]

    out = tmp_path / "evaluation.json"
    _check(_run(["evaluate", "--data", str(folder), "--out", str(out), "--max-baskets", "200"], tmp_path), (0, None))
    settings = json.loads(out.read_text())["settings"]
    assert settings["model"]["inner_split"]["method"] == "random_holdout"
    for baseline in ("ease", "sar", "tifu_knn"):
        assert settings[baseline]["inner_split"]["method"] == "random_holdout", settings[baseline]
