"""Redis for the service: answer cache, event store, recent-purchase memory, erasure record,
rate-limit counters and model-update notices. One module per idea:

  core.py     the connection, its circuit breaker and every key name (`Keys`)
  cache.py    cached answers and the one-round-trip read of what a request needs about a client
  events.py   the event stream, recent purchases and client erasure
  limits.py   the fixed-window request counter behind service/rate_limit.py
  updates.py  "an alias moved" notices: publish and subscribe on MODEL_UPDATES_CHANNEL
  store.py    `RedisStore`: one of each, sharing one connection (what the app holds)

Each operation raises `core.RedisUnavailable` instead of redis errors; callers decide whether a
missing Redis means "answer without it" (reads) or 503 (writes).
"""
