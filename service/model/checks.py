"""What a model version must answer before it may serve: the scoring contract and smoke requests.

A version is swapped in only after it loads, its own `smoke_check()` passes and a few requests
of our own (a client it cannot know, an empty cart) get sane answers: lists within the limit,
finite scores, string ids, cold-start suggestions, a cart with its three lists.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

from scoring.contract import CONTRACT_METHODS, KINDS
from service.model.errors import ModelRejected

SMOKE_CLIENT = "__smoke-check-unknown-client__"
SMOKE_LIMIT = 3


def _check_suggestions(where: str, answer: Any, limit: int, id_field: str = "item_id") -> None:
    if not isinstance(answer, list):
        raise ModelRejected(f"{where} did not answer a list")
    if len(answer) > limit:
        raise ModelRejected(f"{where} answered {len(answer)} suggestions when asked for {limit}")
    for item in answer:
        score = item.get("score") if isinstance(item, dict) else None
        if (not isinstance(score, numbers.Real) or isinstance(score, bool) or not math.isfinite(score)
                or not isinstance(item.get(id_field), str) or not item[id_field]
                or not isinstance(item.get("reason", ""), str)):
            raise ModelRejected(f"{where} answered an invalid suggestion: {item!r}"[:300])


def check_recommender(recommender: Any) -> None:
    """Raise ModelRejected unless `recommender` implements the contract and answers its smoke
    requests sanely: lists within the limit, finite scores, string ids, cold-start suggestions
    for a client it cannot know, a cart with its three lists."""
    missing = [name for name in CONTRACT_METHODS if not callable(getattr(recommender, name, None))]
    if missing:
        raise ModelRejected(f"the recommender lacks {', '.join(missing)}")
    try:
        recommender.smoke_check()
        answers = {kind: recommender.suggest(SMOKE_CLIENT, kind, SMOKE_LIMIT) for kind in KINDS}
        cart = recommender.cart([], None, SMOKE_LIMIT)
        knows = recommender.knows_client(SMOKE_CLIENT)
        segment = recommender.segment(SMOKE_CLIENT)
    except Exception as error:
        raise ModelRejected(f"smoke check failed: {type(error).__name__}: {error}") from error
    for kind, answer in answers.items():
        _check_suggestions(f"suggest({kind})", answer, SMOKE_LIMIT)
    if not answers["cross_sell"]:
        raise ModelRejected("suggest(cross_sell) answered nothing for an unknown client (no cold start)")
    if bool(knows) or not isinstance(segment, dict):
        raise ModelRejected("knows_client() or segment() answered wrongly for an unknown client")
    if not isinstance(cart, dict) or not {"complete", "upsell", "bundles"} <= set(cart):
        raise ModelRejected("cart() did not answer complete, upsell and bundles")
    for part, id_field in (("complete", "item_id"), ("upsell", "item_id"), ("bundles", "bundle_id")):
        _check_suggestions(f"cart().{part}", cart[part], SMOKE_LIMIT, id_field)
