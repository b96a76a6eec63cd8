"""Erasures and tenants: the trainer honours exactly its own tenant's erasures, from every source.

Two shops share one Redis and one erasure file, and both have a client "42". The service (its own
code path: `service.intake.erase_client`, which writes the durable file, the event store and the
Redis set) erases
"42" in shop-b and "7" in the default shop; each tenant's trainer must leave out its own erased
clients and nobody else's, whether it reads the file, Redis, or both.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from eventstore import EventStore
from features.loader import load_dataset
from scoring.contract import erasures_key
from service.config import Settings
from service.intake import erase_client
from service.redis.store import RedisStore
from training.config import TrainConfig
from training.erasures import erased_clients, erased_in_file, without_clients

pytestmark = pytest.mark.integration


@pytest.fixture()
def erased(tmp_path: Path, redis_url: str) -> Path:
    """Erase "42" in shop-b and "7" in the default shop through the service; the erasure file."""
    state = tmp_path / "state"
    for tenant, client_id in (("shop-b", "42"), ("default", "7")):
        store = RedisStore(Settings.from_env({"REDIS_URL": redis_url, "TENANT": tenant,
                                              "SERVICE_STATE_DIR": str(state)}))
        events = EventStore(f"sqlite:///{tmp_path}/events.db")
        events.create_all()
        try:
            erase_client(store, events, store.settings.service_state_dir, tenant, client_id, request_id=None)
        finally:
            store.close()
            events.close()
    return state / "erasures.jsonl"


def test_every_line_the_service_writes_names_its_tenant(erased: Path) -> None:
    records = [json.loads(line) for line in erased.read_text(encoding="utf-8").splitlines()]
    assert [(r["tenant"], r["client_id"]) for r in records] == [("shop-b", "42"), ("default", "7")]


def test_the_file_counts_only_the_trainers_tenant(erased: Path) -> None:
    with erased.open("a", encoding="utf-8") as handle:  # a line from before tenants: the default shop's
        handle.write(json.dumps({"client_id": "9"}) + "\n")
    assert erased_clients(TrainConfig(erasures_file=str(erased), redis_url=None)) == {"7", "9"}
    assert erased_clients(TrainConfig(erasures_file=str(erased), redis_url=None, tenant="shop-b")) == {"42"}
    assert erased_clients(TrainConfig(erasures_file=str(erased), redis_url=None, tenant="shop-c")) == set()


def test_redis_counts_only_the_trainers_tenant(erased: Path, redis_url: str, tmp_path: Path) -> None:
    with redis.Redis.from_url(redis_url, decode_responses=True) as r:
        assert r.smembers(erasures_key("shop-b")) == {"42"} and r.smembers(erasures_key("default")) == {"7"}
    no_file = str(tmp_path / "none.jsonl")
    assert erased_clients(TrainConfig(erasures_file=no_file, redis_url=redis_url)) == {"7"}
    assert erased_clients(TrainConfig(erasures_file=no_file, redis_url=redis_url, tenant="shop-b")) == {"42"}


def test_another_tenants_erasure_leaves_our_client_in_the_data(erased: Path, redis_url: str, slice_dir: Path,
                                                               tmp_path: Path) -> None:
    dataset = load_dataset(slice_dir)
    ours = str(dataset.transactions["client_id"].iloc[0])
    with erased.open("a", encoding="utf-8") as handle:  # shop-b erases a client with our client's id
        handle.write(json.dumps({"client_id": ours, "tenant": "shop-b"}) + "\n")
    with redis.Redis.from_url(redis_url) as r:
        r.sadd(erasures_key("shop-b"), ours)
    mine = TrainConfig(erasures_file=str(erased), redis_url=redis_url)
    kept = without_clients(dataset, erased_clients(mine))
    assert ours in set(kept.transactions["client_id"])
    theirs = mine.model_copy(update={"tenant": "shop-b"})
    assert ours not in set(without_clients(dataset, erased_clients(theirs)).transactions["client_id"])


def test_unreadable_lines_are_skipped_and_the_rest_still_count(tmp_path: Path) -> None:
    path = tmp_path / "erasures.jsonl"
    path.write_text("not json\n[1, 2]\n" + json.dumps({"tenant": "default"}) + "\n"
                    + json.dumps({"client_id": 5, "tenant": "default"}) + "\n", encoding="utf-8")
    assert erased_in_file(path, "default") == {"5"}


def test_an_erasure_made_through_another_replica_counts_from_the_shared_store(tmp_path: Path) -> None:
    """Replica B erased "8": its line is in B's file, which this trainer does not read, and there is
    no Redis; the event store all replicas write says it (docs/replicas.md)."""
    store_url = f"sqlite:///{tmp_path}/shared-events.db"
    with EventStore(store_url) as events:
        events.create_all()
        events.erase_client("default", "8")
        events.erase_client("shop-b", "11")
    only_a = str(tmp_path / "replica-a-erasures.jsonl")  # no line: A erased nobody
    config = TrainConfig(erasures_file=only_a, redis_url=None, events_db_url=store_url)
    assert erased_clients(config) == {"8"}
    assert erased_clients(config.model_copy(update={"tenant": "shop-b"})) == {"11"}
    missing = TrainConfig(erasures_file=only_a, redis_url=None, events_db_url=f"sqlite:///{tmp_path}/none.db")
    assert erased_clients(missing) == set() and not (tmp_path / "none.db").exists()  # never created here
