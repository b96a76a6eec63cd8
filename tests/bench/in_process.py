"""Apps built in this process by the app factory, for the CPU-clock benchmarks and profiles.

One place for what they share: the model's arguments (a registered model, or one trained first),
our own redis-server with the append-only file production uses, Prometheus' multi-process files as
gunicorn's workers keep them, and the clean-up.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from serving_stack import train_model
from support.processes import RedisServer


def add_model_arguments(parser: argparse.ArgumentParser, default_data: Path) -> None:
    parser.add_argument("--data", type=Path, default=default_data,
                        help="the data the model was trained on (trained on it when no model is given)")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--model-name", default="crm-bench")


@contextmanager
def in_process_apps(args: argparse.Namespace, prefix: str, key: str,
                    variants: dict[str, dict[str, str]]) -> Iterator[tuple[dict[str, Any], Path]]:
    """({variant: app}, work folder): one app per variant (its settings laid over the common ones,
    auth with `key`, a rate limit never reached), each with its model loaded, on one Redis."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    uri, name = args.tracking_uri, args.model_name
    if uri is None:
        uri, name, _ = train_model(args.data, work)
    redis_server = RedisServer(work, persist=True)
    redis_server.start()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(work / "prometheus")
    (work / "prometheus").mkdir()
    from service.app import create_app
    from service.config import Settings

    apps: dict[str, Any] = {}
    try:
        for variant, overrides in variants.items():
            settings = Settings.from_env({
                "MLFLOW_TRACKING_URI": uri, "MODEL_NAME": name, "REDIS_URL": redis_server.url, "API_KEYS": key,
                "RATE_LIMIT_PER_MINUTE": "1000000000", "MODEL_CACHE_DIR": str(work / "model-cache"),
                "SERVICE_STATE_DIR": str(work / f"state-{variant}"),
                "EVENTS_DB_URL": f"sqlite:///{work}/events-{variant}.db", "LOG_LEVEL": "INFO", **overrides})
            apps[variant] = create_app(settings, watch=False)
            apps[variant].extensions["crm"].models.refresh("bench")
        yield apps, work
    finally:
        for app in apps.values():
            app.extensions["crm"].events.close()
            app.extensions["crm"].redis.close()
        redis_server.stop()
