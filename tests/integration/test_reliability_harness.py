"""The reliability harness's own parts (support/reliability_harness.py) do what the fault tests
rely on: the proxy forwards, delays and goes down on a real redis-server; the load generator
keeps every outcome and spots an answer that mixes two model versions."""
from __future__ import annotations

import time

import pytest
from support.processes import free_port, wait_until
from support.reliability_harness import LoadGenerator, Outcome, TcpProxy, version_tags


def test_proxy_forwards_delays_and_goes_down(redis_url: str) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    def connect() -> redis.Redis:
        return redis.Redis(port=proxy.port, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))

    proxy = TcpProxy(int(redis_url.rsplit(":", 1)[1].split("/")[0])).up()
    try:
        client = connect()
        assert client.ping()
        proxy.delay = 0.2
        started = time.monotonic()
        assert client.ping() and time.monotonic() - started >= 0.35
        proxy.delay = 0.0
        proxy.down()
        with pytest.raises(redis.ConnectionError):
            connect().ping()
        proxy.up()
        assert connect().ping()
    finally:
        proxy.down()


def test_load_generator_keeps_every_outcome_and_spots_mixed_answers() -> None:
    mixed = Outcome("x", 0.0, 0.0, 200, version="1", versions_in_body=frozenset({"1", "2"}))
    assert mixed.mixed and not Outcome("x", 0.0, 0.0, 200, version="1", versions_in_body=frozenset({"1"})).mixed
    assert version_tags({"a": [{"version_tag": "3"}, {"b": {"version_tag": 4}}]}) == {"3", "4"}
    with LoadGenerator(f"http://127.0.0.1:{free_port()}", threads=2, max_seconds=5, timeout=1) as load:
        wait_until(lambda: len(load.snapshot()) >= 4, timeout=5, interval=0.05)
    outcomes = load.outcomes
    assert outcomes and all(o.status is None and o.error for o in outcomes)
