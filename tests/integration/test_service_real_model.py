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
                         erasures_file=str(root / "none.jsonl"), threads=1,
                         events_db_url=f"sqlite:///{root / 'no-events.db'}")
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

        assert_presentable(base, slice_dir, tx)

        event = [{"client_id": client, "item_id": first, "type": "purchase", "timestamp": "2018-01-02T10:00:00Z"}]
        assert requests.post(f"{base}/v1/events", json=event, timeout=10).status_code == 202
        for _ in range(4):  # whichever worker answers
            again = requests.get(f"{base}/v1/clients/{client}/suggestions?kind=cross_sell&limit=5", timeout=10).json()
            assert first not in {s["item_id"] for s in again["suggestions"]}


def assert_presentable(base: str, slice_dir: Path, tx) -> None:
    """Issue 11's rules through HTTP, checked against facts derived from the data files here
    (not from the model's own labels): one item per product group in a kind=all answer (across
    its sections too), no non-merchandise, positive prices or a note, item facts, upsells of the
    same product type, and the new fields in the OpenAPI document."""
    import pandas as pd

    from features.merchandise import non_merchandise
    from features.products import product_groups, product_type_of

    items = pd.read_parquet(slice_dir / "items.parquet")
    group = dict(zip(items["item_id"], product_groups(items), strict=True))
    ptype = dict(zip(items["item_id"], product_type_of(items), strict=True))
    fees = set(non_merchandise(items, tx)["item_id"])
    assert fees, "the slice holds coupons and misc lines: the check would prove nothing"
    clients = tx["client_id"].drop_duplicates().sample(20, random_state=0).tolist()
    for client in clients:
        body = requests.get(f"{base}/v1/clients/{client}/suggestions", params={"kind": "all", "limit": 10},
                            timeout=10).json()
        listed = [s for section in body["suggestions"].values() for s in section]
        singles = [s for s in listed if "items" not in s]
        assert len({group[s["item_id"]] for s in singles}) == len(singles), body
        assert not fees & {s["item_id"] for s in listed}, body
        for s in listed:
            assert s["price"] is None and s["price_note"] or s["price"] > 0, s
            assert s["item_id"] not in group or {"brand", "package_size", "category", "product_type"} <= set(s), s
        for s in body["suggestions"]["upsell"]:
            assert ptype[s["item_id"]] == ptype[s["upgrade_from"]] and s["upsell_step"], s
    baskets = tx.groupby("order_id")["item_id"].apply(list)
    for cart_items in baskets[baskets.map(len) >= 3].head(20):
        answer = requests.post(f"{base}/v1/cart/suggestions", json={"items": cart_items[:3], "limit": 10},
                               timeout=10).json()
        complete = answer["complete"]
        cart_groups = {group[i] for i in cart_items[:3]}
        assert not cart_groups & {group[s["item_id"]] for s in complete}, answer
        assert len({group[s["item_id"]] for s in complete}) == len(complete)
        for bundle in answer["bundles"]:
            assert not fees & set(bundle["items"]) and len({group[i] for i in bundle["items"]}) == len(bundle["items"])
    spec = requests.get(f"{base}/openapi.json", timeout=10).json()
    fields = spec["components"]["schemas"]["Suggestion"]["properties"]
    assert {"price_note", "brand", "package_size", "product_type", "image_url", "url", "upsell_step"} <= set(fields)
