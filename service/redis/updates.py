""""An alias moved" notices on Redis pub/sub: {"name", "alias", "version"} on MODEL_UPDATES_CHANNEL.

The trainer publishes one when it moves an alias (training/registry.py, on its own
MODEL_UPDATES_CHANNEL); the service publishes one after an admin reload, so every worker and
replica follows; each worker's model watcher subscribes. Both sides default to
scoring.contract.MODEL_UPDATES_CHANNEL. The subscription has its own connection: it blocks on
reads, which the request path's short timeouts and breaker must not.
"""
from __future__ import annotations

import json

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.redis.core import RedisConnection, RedisUnavailable


class ModelUpdates:
    """Publish and subscribe to the model-update notices of MODEL_UPDATES_CHANNEL."""

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self.channel = connection.settings.model_updates_channel

    def publish(self, name: str, alias: str, version: str) -> None:
        message = json.dumps({"name": name, "alias": alias, "version": version})
        self.connection.run("publish", lambda r: r.publish(self.channel, message))

    def subscriber(self) -> redis.client.PubSub:
        """A pub/sub on its own connection, subscribed to the model-updates channel."""
        settings = self.connection.settings
        if not settings.redis_url:
            raise RedisUnavailable("REDIS_URL is not set")
        client = redis.Redis.from_url(settings.redis_url, decode_responses=True,
                                      socket_connect_timeout=max(settings.redis_timeout_seconds, 0.5),
                                      socket_timeout=10, retry=Retry(NoBackoff(), 0))
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.channel)
        return pubsub
