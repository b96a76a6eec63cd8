"""Answers as JSON text, encoded once: the response body and the cached copy are the same text.

Why text and not a dict: a cache hit then returns the stored bytes as they are, and a miss
encodes once, instead of encoding, decoding and encoding again on every request.
"""
from __future__ import annotations

import json
import logging
import math
from datetime import datetime
from typing import Any

logger = logging.getLogger(__name__)


def json_default(value: Any) -> Any:
    """Make numpy scalars and arrays (which a model may return) JSON-ready without importing numpy."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_checked(body: dict[str, Any]) -> tuple[str, bool]:
    """The answer as JSON text, and whether anything non-finite had to be taken out.

    NaN and infinities are not JSON: a suggestion whose score is not finite is dropped (and
    logged), any other non-finite number becomes null. The version passed its smoke checks, so
    this guards the odd client or item, not a broken model."""
    text = json.dumps(body, default=json_default)
    if "NaN" not in text and "Infinity" not in text:
        return text, False
    cleaned = _finite(json.loads(text))
    if cleaned != json.loads(text, parse_constant=lambda _: None):
        logger.warning("dropped suggestions with non-finite scores", extra={"model_version": body.get("model_version")})
    return json.dumps(cleaned), True


def encode(body: dict[str, Any]) -> str:
    """The answer as JSON text (see `encode_checked`)."""
    return encode_checked(body)[0]


def compact(value: Any) -> str:
    """JSON text without spaces, for what Redis keeps beside an answer (exposure rows and items)."""
    return json.dumps(value, separators=(",", ":"), default=json_default)


def _finite(node: Any) -> Any:
    if isinstance(node, float):
        return node if math.isfinite(node) else None
    if isinstance(node, list):
        return [_finite(item) for item in node if not _non_finite_score(item)]
    if isinstance(node, dict):
        return {key: _finite(value) for key, value in node.items()}
    return node


def _non_finite_score(item: Any) -> bool:
    score = item.get("score") if isinstance(item, dict) else None
    return isinstance(score, float) and not math.isfinite(score)
