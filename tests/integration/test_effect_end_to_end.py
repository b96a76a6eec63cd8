"""One seed of the SYNTHETIC simulated shop end to end: its events, exposures and reactions in a
real PostgreSQL server, the report asked of the real service under gunicorn (two workers, real
Redis, a registered model), and the interval must hold the planted incremental revenue.

The rows are written with the event store's own writers (the simulation plays the part of the
shop and of the service's exposure log); the unit tests hold the 40-seed coverage
(tests/unit/test_effect_estimator.py).
"""
from __future__ import annotations

from pathlib import Path

import requests
from support.service_process import ADMIN, READ, Service
from support.simulated_shop import ShopParams, fill_store, simulate

from eventstore import EventStore

SEED = 1201  # the first of the unit tests' planted seeds


def test_one_seed_through_gunicorn_redis_and_postgresql(tmp_path: Path, service_env: dict[str, str],
                                                         first_version: str, postgres_url: str) -> None:
    shop = simulate(SEED, ShopParams(uplift={"champion": 0.3}))
    with EventStore(postgres_url) as store:
        store.create_all()
        fill_store(store, "default", shop, through_writers=True)
    query = {"from": "2024-03-01", "to": "2024-03-28"}
    with Service(tmp_path, {**service_env, "WORKERS": "2", "EVENTS_DB_URL": postgres_url}, "gunicorn").start() as service:
        url = f"{service.base}/v1/reports/effect"
        assert requests.get(url, params=query, headers=READ, timeout=30).status_code == 403
        answers = [requests.get(url, params=query, headers=ADMIN, timeout=60) for _ in range(4)]  # both workers
    assert all(a.status_code == 200 for a in answers), answers[0].text[:2000]
    reports = [a.json() for a in answers]
    assert all(r == reports[0] for r in reports)
    report = reports[0]
    (effect,) = report["effects"]
    truth = shop.true_incremental["champion"]
    assert effect["per_client"]["ci_low"] <= truth <= effect["per_client"]["ci_high"], (truth, effect)
    assert report["variants"]["control"]["clients"] + report["variants"]["champion"]["clients"] == shop.params.clients
    assert report["variants"]["champion"]["attributed_purchases"] > 0
