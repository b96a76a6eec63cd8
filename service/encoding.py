"""Answers as JSON text, encoded once (orjson): the response body and the cached copy are one text.

Why text and not a dict: a cache hit then returns the stored bytes as they are, and a miss
encodes once, instead of encoding, decoding and encoding again on every request. Why orjson: it
encodes an answer about ten times faster than the standard library, numpy numbers included.

NaN and infinities are not JSON. orjson writes them as null; a suggestion whose score is not
finite is not shown at all (`finite_scores`, applied to every list before it is positioned): the
version passed its smoke checks, so this guards the odd client or item, not a broken model.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

logger = logging.getLogger(__name__)

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_default(value: Any) -> Any:
    """Make numpy scalars and arrays (which a model may return) JSON-ready without importing numpy."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(body: Any) -> str:
    """The answer as compact JSON text (a non-finite number becomes null)."""
    return orjson.dumps(body, default=json_default, option=_OPTIONS).decode()


#: What Redis keeps beside an answer (exposure rows and items) is the same compact text.
compact = encode


def finite_scores(suggestions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The suggestions whose score is a finite number (or absent); the others are dropped and logged."""
    kept = [s for s in suggestions if _finite(s.get("score"))]
    if isinstance(suggestions, list) and len(kept) < len(suggestions):
        logger.warning("dropped suggestions with non-finite scores",
                       extra={"dropped": len(suggestions) - len(kept)})
    return kept


def _finite(score: Any) -> bool:
    try:
        return score is None or math.isfinite(score)
    except TypeError:
        return True
