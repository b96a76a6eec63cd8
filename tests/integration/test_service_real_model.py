"""The real trained model (not a double) served by gunicorn, registered in a real `mlflow server`.

Trains on the real Complete Journey slice straight into the session's MLflow server over HTTP,
then calls every suggestion endpoint through real HTTP and checks the answers make sense.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests
from support.processes import wait_until
from support.service_process import Service

from scoring.contract import KINDS
from training.config import TrainConfig
from training.train import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registered(mlflow_server: str, slice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    name = f"crm-real-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("real")
    config = TrainConfig(tracking_uri=mlflow_server, model_name=name, redis_url=None,
                         erasures_file=str(root / "none.jsonl"), threads=1)
    import mlflow

    mlflow.set_tracking_uri(mlflow_server)
    summary = train(slice_dir, config=config, tune=False, promote="force", max_baskets=500)
    return name, summary


def _status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


def test_gunicorn_serves_the_real_model(tmp_path: Path, registered: tuple[str, dict], mlflow_server: str,
                                        redis_url: str, slice_dir: Path) -> None:
    import pandas as pd

    name, summary = registered
    tx = pd.read_parquet(slice_dir / "transactions.parquet")
    client = tx["client_id"].value_counts().index[0]
    env = {"MLFLOW_TRACKING_URI": mlflow_server, "MODEL_NAME": name, "REDIS_URL": redis_url,
           "AUTH_DISABLED": "true", "WORKERS": "2",
           "MODEL_CACHE_DIR": str(tmp_path / "cache"), "SERVICE_STATE_DIR": str(tmp_path / "state")}
    service = Service(tmp_path, env, "g")
    base = service.base
    with service.start(ready=False, timeout=90):
        # a worker gives its first load a head start before it accepts: the first poll may wait
        wait_until(lambda: _status(f"{base}/readyz") == 200, timeout=120, interval=0.5)
        ready = requests.get(f"{base}/readyz", timeout=5).json()
        assert summary["version"] in str(ready)

        for kind in KINDS:
            answer = requests.get(f"{base}/v1/clients/{client}/suggestions", params={"kind": kind, "limit": 5},
                                  timeout=10)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["cold_start"] is False and body["segment"]["abc"] in {"A", "B", "C"}
            assert body["suggestions"], f"the busiest client of the slice gets no {kind}"
            assert all(s["reason"] and s["item_id"] for s in body["suggestions"]), kind
        cross = requests.get(f"{base}/v1/clients/{client}/suggestions?kind=cross_sell&limit=5", timeout=10).json()
        first = cross["suggestions"][0]["item_id"]
        bought = set(tx.loc[tx["client_id"] == client, "item_id"])
        assert not bought & {s["item_id"] for s in cross["suggestions"]}

        everything = requests.get(f"{base}/v1/clients/{client}/suggestions?kind=all&limit=3", timeout=10).json()
        assert set(everything["suggestions"]) >= {"cross_sell", "replenishment"}
        assert "next_basket" not in everything["suggestions"], "kind=all would list its items twice"
        cold = requests.get(f"{base}/v1/clients/nobody-at-all/suggestions", timeout=10).json()
        assert cold["cold_start"] is True and cold["suggestions"]

        top_items = tx["item_id"].value_counts().index[:2].tolist()
        cart = requests.post(f"{base}/v1/cart/suggestions", json={"items": top_items, "limit": 5}, timeout=10)
        assert cart.status_code == 200, cart.text
        assert cart.json()["complete"] and not set(top_items) & {s["item_id"] for s in cart.json()["complete"]}
        similar = requests.get(f"{base}/v1/items/{top_items[0]}/similar?limit=3", timeout=10)
        assert similar.status_code == 200 and len(similar.json()["suggestions"]) == 3
        assert requests.get(f"{base}/v1/items/no-such-item/similar", timeout=10).status_code == 404

        event = [{"client_id": client, "item_id": first, "type": "purchase", "timestamp": "2018-01-02T10:00:00Z"}]
        assert requests.post(f"{base}/v1/events", json=event, timeout=10).status_code == 202
        for _ in range(4):  # whichever worker answers
            again = requests.get(f"{base}/v1/clients/{client}/suggestions?kind=cross_sell&limit=5", timeout=10).json()
            assert first not in {s["item_id"] for s in again["suggestions"]}
