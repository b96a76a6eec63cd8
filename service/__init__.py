"""The HTTP service: `service:create_app` builds it (gunicorn: `service/gunicorn.conf.py`).

Kept light: importing `service` (or `service.config`) does not load Flask, Redis or MLflow.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Flask:
    """Build the Flask app; see `service.app.create_app`."""
    from service.app import create_app as factory

    return factory(*args, **kwargs)
