"""`python -m training train --engine spark` end to end: a real Spark (`local[1]`) on the real
slice, a real MLflow store, then the service answering from the registered model.

The data folder is the slice with a few malformed lines added to its transactions (Parquet with
nanosecond timestamps, as `prepare` writes, plus text quantities and prices), so the Spark loader's
rejection counts are compared with the in-process loader's on the same file. Spark needs Java 17:
without it this test fails (`make java-bin` installs it), it never skips.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from flask import Flask
from support.apps import app_maker
from support.processes import ROOT

from features.loader import load_dataset
from training.config import TrainConfig

pytestmark = pytest.mark.slow

NAME = TrainConfig.model_fields["model_name"].default
_REGISTERED = re.compile(r"registered (\S+) version (\d+) as @(\w+) \(run (\w+),")

#: Lines no loader may accept, one per reason (and one duplicate of a good line).
MALFORMED = [
    {"client_id": None, "item_id": "ITEM", "timestamp": "2017-06-01", "quantity": "1", "price": "1.0"},
    {"client_id": "spark-a", "item_id": "ITEM", "timestamp": None, "quantity": "1", "price": "1.0"},
    {"client_id": "spark-b", "item_id": "ITEM", "timestamp": "2017-06-01", "quantity": "many", "price": "1.0"},
    {"client_id": "spark-c", "item_id": "ITEM", "timestamp": "2017-06-01", "quantity": "1e12", "price": "1.0"},
    {"client_id": "spark-d", "item_id": "ITEM", "timestamp": "2017-06-01", "quantity": "1", "price": "cheap"},
    {"client_id": "spark-e", "item_id": "no-such-item", "timestamp": "2017-06-01", "quantity": "1", "price": "1.0"},
]


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        pytest.fail("Spark 4 needs Java 17 and `java` is not on PATH: run `make java-bin` "
                    "(Debian's openjdk-17-jre-headless)")
    return java


def test_java_17_is_there_for_spark() -> None:
    """Spark 4 runs on Java 17 or later; a machine without it fails here with what to do."""
    found = subprocess.run([_java(), "-version"], capture_output=True, text=True, timeout=60).stderr
    major = re.search(r'version "(\d+)', found)
    assert major and int(major.group(1)) >= 17, f"Spark 4 needs Java 17 or later, found: {found[:200]}"


def _folder(slice_dir: Path, out: Path) -> Path:
    """The slice, its transactions with MALFORMED and a duplicate line appended (quantities and
    prices as text, so a bad one can be written; timestamps stay nanosecond datetimes)."""
    out.mkdir()
    for table in ("items", "clients", "packages"):
        shutil.copy(slice_dir / f"{table}.parquet", out / f"{table}.parquet")
    tx = pd.read_parquet(slice_dir / "transactions.parquet")
    item = str(tx["item_id"].iloc[0])
    bad = pd.DataFrame([{**row, "item_id": item if row["item_id"] == "ITEM" else row["item_id"],
                         "order_id": f"spark-order-{n}"} for n, row in enumerate(MALFORMED)])
    bad["timestamp"] = pd.to_datetime(bad["timestamp"])
    tx = pd.concat([tx.astype({"quantity": str, "price": str}), bad, tx.head(1).astype({"quantity": str, "price": str})],
                   ignore_index=True)
    tx.to_parquet(out / "transactions.parquet", index=False)
    return out


@pytest.fixture()
def spark_trained(slice_dir: Path, mlflow_uri: str, tmp_path: Path) -> tuple[dict, str, Path]:
    """(the registered version, the trainer's output, the data folder): one Spark training."""
    _java()
    data = _folder(slice_dir, tmp_path / "data")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRAIN_THREADS": "1", "SPARK_SHUFFLE_PARTITIONS": "2",
           "SPARK_DRIVER_MEMORY": "1g", "ALS_ITERATIONS": "5", "SPARK_WORK_DIR": str(tmp_path / "spark"),
           "ERASURES_FILE": str(tmp_path / "none.jsonl"), "EVENTS_DB_URL": f"sqlite:///{tmp_path / 'no-events.db'}"}
    env.pop("REDIS_URL", None)
    proc = subprocess.run([sys.executable, "-m", "training", "train", "--data", str(data), "--engine", "spark",
                           "--spark-master", "local[1]", "--no-tune", "--promote", "--max-baskets", "300"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = _REGISTERED.search(proc.stdout)
    assert found, proc.stdout[-2000:]
    name, version, alias, run_id = found.groups()
    return {"name": name, "version": version, "alias": alias, "run_id": run_id}, proc.stdout, data


@pytest.fixture()
def make_app(tmp_path: Path, mlflow_uri: str, redis_url: str) -> Iterator:
    env = {"MLFLOW_TRACKING_URI": mlflow_uri, "MODEL_NAME": NAME, "REDIS_URL": redis_url, "AUTH_DISABLED": "true",
           "MODEL_CACHE_DIR": str(tmp_path / "model-cache"), "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db",
           "SERVICE_STATE_DIR": str(tmp_path / "state")}
    yield from app_maker(env, lambda app: app.extensions["crm"].models.refresh("test"))


def test_spark_training_registers_a_model_the_service_answers_from(spark_trained, make_app, mlflow_uri: str) -> None:
    registered, stdout, data = spark_trained
    assert (registered["name"], registered["alias"]) == (NAME, "champion")
    assert "engine spark: on Spark:" in stdout and "tuning and evaluation on the driver: all 150 clients" in stdout

    # the Spark loader rejected what the in-process loader rejects, reason for reason, and kept the same lines
    mlflow.set_tracking_uri(mlflow_uri)
    evaluation = mlflow.artifacts.load_dict(f"runs:/{registered['run_id']}/evaluation.json")
    local = load_dataset(data)
    assert evaluation["data"]["load_report"]["tables"] == local.report.as_dict()["tables"]
    assert local.report.tables["transactions"]["rejected"] == {
        "bad_price": 1, "bad_quantity": 1, "bad_timestamp": 1, "duplicate": 1, "missing_or_invalid_id": 1,
        "quantity_out_of_range": 1, "unknown_item": 1}
    fingerprint = mlflow.artifacts.load_dict(f"runs:/{registered['run_id']}/data_fingerprint.json")
    assert fingerprint == local.fingerprint
    assert mlflow.get_run(registered["run_id"]).data.params["engine"] == "spark"

    # the candidate lists were ranked on the executors by the same scoring code
    rec = mlflow.pyfunc.load_model(f"models:/{NAME}/{registered['version']}").unwrap_python_model().recommender
    assert {"cross_sell", "next_basket"} <= set(rec.meta["candidates"]["kinds"])
    again = rec.rank_candidates(range(0, 20), rec.meta["candidates"]["size"])
    for kind, arrays in again.items():
        assert np.array_equal(arrays["items"], rec.state.extras[f"cand_{kind}"][:20]), kind

    # the service loads it like any model and answers a known client
    client_id = local.transactions["client_id"].value_counts().index[0]
    app: Flask = make_app()
    ready = app.test_client().get("/readyz").get_json()
    assert ready["model"]["version"] == registered["version"]
    answer = app.test_client().get(f"/v1/clients/{client_id}/suggestions?kind=cross_sell&limit=5")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["cold_start"] is False and len(body["suggestions"]) == 5
    bought = set(local.transactions.loc[local.transactions["client_id"] == client_id, "item_id"])
    assert not bought & {s["item_id"] for s in body["suggestions"]}


def test_spark_evidence_and_pair_counts_equal_the_in_process_ones(slice_dir: Path) -> None:
    """The two steps the Spark engine computes instead of scipy give the same numbers on the slice:
    the BM25 evidence ALS learns from, and the basket pair counts bundles and neighbours read
    (tests/support/spark_steps.py, in a process of its own)."""
    _java()
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "support" / "spark_steps.py"), str(slice_dir)],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["evidence_nnz"][0] == got["evidence_nnz"][1] > 0 and got["evidence_max_difference"] < 1e-5
    assert got["pairs_nnz"][0] == got["pairs_nnz"][1] > 0 and got["pairs_differing"] == 0
    assert got["same_indptr"] and got["same_item_baskets"] and got["baskets"][0] == got["baskets"][1]
    # the session the trainer starts lets the validated lines through (Spark's 1g stopped 23.5M lines)
    assert got["max_result_size"] == "0"
