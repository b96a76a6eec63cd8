"""`python -m training clients` as a user runs it: the registered champion's value model (trained on the real
slice by the session's hand-run trainings), never refitted, writes every client's row."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from support.processes import ROOT

from training.clients import load_model


def _clients(args: list[str], tracking_uri: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": tracking_uri}
    return subprocess.run([sys.executable, "-m", "training", "clients", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_the_clients_table_uses_the_champions_parameters(trained_runs, slice_dir: Path, tmp_path: Path) -> None:
    config, _, _, root, _ = trained_runs
    out = tmp_path / "clients.parquet"
    proc = _clients(["--data", str(slice_dir), "--out", str(out)], config.tracking_uri, root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(@champion)" in proc.stdout
    table = pd.read_parquet(out)
    assert table["client_id"].is_unique and len(table) == 150
    champion, _, _ = load_model(config, None)
    client = table.iloc[0]
    # as of the data's end, the table's figures are the champion's own answer: nothing was refitted
    answer = champion.client_value(client["client_id"])
    for name in ("p_alive", "p_purchase", "expected_purchases", "clv"):
        assert abs(client[name] - answer[name]) < 1e-3 * max(1.0, abs(answer[name])), name
    assert client["data_end"] == answer["data_end"] == client["as_of"]


def test_a_bad_output_name_or_date_is_a_sentence_not_a_traceback(trained_runs, slice_dir: Path,
                                                                 tmp_path: Path) -> None:
    config, _, _, root, _ = trained_runs
    proc = _clients(["--data", str(slice_dir), "--out", str(tmp_path / "x.xlsx")], config.tracking_uri, root)
    assert proc.returncode == 2 and "write .csv, .parquet or .jsonl" in proc.stderr
    proc = _clients(["--data", str(slice_dir), "--as-of", "yesterday-ish", "--out", str(tmp_path / "x.csv")],
                    config.tracking_uri, root)
    assert proc.returncode == 2 and "not a date" in proc.stderr
