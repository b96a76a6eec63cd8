"""`CLIENT_STATE=redis`: write every client's state to Redis before the alias moves, and let old ones go.

Order (`training.registry.log_and_register` calls these): the model identity (the MLflow run id) is recorded in
the tenant's set of identities first, then every client's value is written (pipelined in batches, with a
progress bar), then the item-side model is logged and registered and its alias set; only then are the
identities no alias points to any more given CLIENT_STATE_GRACE_SECONDS to live, key by key, so Redis removes
them itself. A run that fails half way leaves its identity in the set with no alias, and the next training
expires its keys the same way.

The values are `scoring.client_state` values; the keys `scoring.contract.client_state_key` (the client id is
the Redis Cluster hash tag).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import redis
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from redis.cluster import RedisCluster
from tqdm import tqdm

from scoring import client_state
from scoring.contract import client_state_key, client_state_models_key
from scoring.recommender import Recommender
from training.config import TrainConfig

log = logging.getLogger(__name__)

#: Clients written per pipeline (one round trip each).
BATCH = 1000
#: The model version tag naming the identity its client state is keyed by.
VERSION_TAG = "client_state_id"
#: Keys expired per pipeline while letting an old identity go.
_SCAN_COUNT = 1000


def connect(config: TrainConfig) -> redis.Redis:
    """The Redis client state is written to; ValueError when none is configured."""
    url = config.client_state_redis_url or config.redis_url
    if not url:
        raise ValueError("CLIENT_STATE=redis needs CLIENT_STATE_REDIS_URL or REDIS_URL")
    return redis_client(url, config.redis_cluster, socket_timeout=30, socket_connect_timeout=5)


def redis_client(url: str, cluster: bool, **options: Any) -> redis.Redis:
    """A client of `url`; with `cluster` (REDIS_CLUSTER), redis-py's cluster client, which routes each key to
    the node holding its slot (a client's keys of every version share one, `client_state_key`'s hash tag)."""
    if cluster:
        return RedisCluster.from_url(url, **options)  # type: ignore[return-value]
    return redis.Redis.from_url(url, **options)


def eviction_warning(r: redis.Redis) -> str | None:
    """A sentence when Redis may evict keys (client state would silently turn into cold starts), else None."""
    try:
        policy = r.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.ResponseError:  # a managed Redis may refuse CONFIG
        return "could not read Redis's maxmemory-policy (CONFIG GET refused): make sure it is noeviction"
    if policy != "noeviction":
        return (f"Redis runs with maxmemory-policy {policy!r}: it may evict client state, which then answers as "
                "cold start; set maxmemory-policy noeviction")
    return None


def write(rec: Recommender, config: TrainConfig, model_id: str, r: redis.Redis | None = None) -> Recommender:
    """Write every client's state under `model_id`; the item-side model to register instead of `rec`."""
    r = r or connect(config)
    warning = eviction_warning(r)
    if warning:
        log.warning(warning)
    n = len(rec.client_ids)
    r.zadd(client_state_models_key(config.tenant, config.model_name), {model_id: math.inf})
    encoder = client_state.Encoder(rec.state)
    written = 0
    with tqdm(total=n, desc="client state", unit="client", mininterval=2) as bar:
        for start in range(0, n, BATCH):
            stop = min(n, start + BATCH)
            pipe = r.pipeline(transaction=False)
            for ci in range(start, stop):
                value = encoder.encode(ci)
                written += len(value)
                pipe.set(client_state_key(model_id, str(rec.client_ids[ci])), value)
            pipe.execute()
            bar.update(stop - start)
    log.info("client state of %d clients written to Redis under %s (%.1f MB of values)", n, model_id, written / 1e6)
    busiest = int(np.argmax(np.diff(rec.state.hist_indptr)))
    return Recommender(client_state.item_side(rec, model_id, n, busiest))


def live_identities(client: MlflowClient, model_name: str) -> set[str]:
    """The client-state identities of the versions an alias points to."""
    aliases = client.get_registered_model(model_name).aliases or {}
    live = set()
    for version in set(aliases.values()):
        tag = client.get_model_version(model_name, str(version)).tags.get(VERSION_TAG)
        if tag:
            live.add(tag)
    return live


def _for_keys(r: redis.Redis, model_id: str, command: Callable[[Any, bytes], Any]) -> int:
    """Run `command(pipeline, key)` on every key of `model_id`, pipelined; how many keys."""
    count = 0
    pattern = client_state_key(model_id, "*").replace("{*}", "*")
    batch: list[bytes] = []
    for key in r.scan_iter(match=pattern, count=_SCAN_COUNT):
        batch.append(key)
        if len(batch) >= _SCAN_COUNT:
            count += _run(r, batch, command)
            batch = []
    return count + _run(r, batch, command)


def _run(r: redis.Redis, keys: list[bytes], command: Callable[[Any, bytes], Any]) -> int:
    pipe = r.pipeline(transaction=False)
    for key in keys:
        command(pipe, key)
    pipe.execute()
    return len(keys)


def _expire(r: redis.Redis, model_id: str, seconds: int) -> int:
    """Give every key of `model_id` `seconds` to live (a key already expiring keeps its sooner end)."""
    return _for_keys(r, model_id, lambda pipe, key: pipe.expire(key, seconds, nx=True))


def let_old_go(config: TrainConfig, client: MlflowClient, r: redis.Redis | None = None) -> dict[str, Any]:
    """After an alias moved: the identities no alias points to get CLIENT_STATE_GRACE_SECONDS (their keys
    expire in Redis); those whose grace has passed leave the set. Returns what was done."""
    r = r or connect(config)
    models = client_state_models_key(config.tenant, config.model_name)
    known = r.zrange(models, 0, -1, withscores=True)
    if not known:
        return {"live": [], "expiring": []}
    try:
        live = live_identities(client, config.model_name)
    except MlflowException as error:  # nothing is expired when the registry cannot say what is live
        log.warning("could not read the registry's aliases; old client state is kept: %s", error)
        return {"live": None, "expiring": []}
    now = time.time()
    expiring = []
    for raw, score in known:
        model_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        if model_id in live:
            if not math.isinf(score):  # an alias came back to it within its grace
                _for_keys(r, model_id, lambda pipe, key: pipe.persist(key))
                r.zadd(models, {model_id: math.inf})
        elif math.isinf(score):
            keys = _expire(r, model_id, config.client_state_grace_seconds)
            r.zadd(models, {model_id: now + config.client_state_grace_seconds})
            expiring.append(model_id)
            log.info("client state of %s (no alias) expires in %ds: %d keys", model_id,
                     config.client_state_grace_seconds, keys)
        elif score < now:
            r.zrem(models, model_id)
    return {"live": sorted(live), "expiring": expiring}


class FromRedis:
    """A model whose clients live in Redis, answering each call about a client from the client's value (one
    GET a call): what the offline commands (campaign audiences) use where the service reads the value in the
    request's own round trip. Everything else is the model's."""

    def __init__(self, model: Any, r: redis.Redis) -> None:
        self.model = model
        self.redis = r

    def _view(self, client_id: str) -> Any:
        return self.model.with_client_state(client_id, self.redis.get(self.model.client_state_key(client_id)))

    def suggest(self, client_id: str, *args: Any, **kwargs: Any) -> Any:
        return self._view(client_id).suggest(client_id, *args, **kwargs)

    def holdings(self, client_id: str) -> Any:
        return self._view(client_id).holdings(client_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)
