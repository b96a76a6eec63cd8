"""What the persistent control group gets: the business-as-usual answer, or nothing.

`popular` is what everyone bought lately, the list a shop shows when it personalises nothing:
the model's own cold-start answer, asked for a client it cannot know (ids are validated, so no
real id holds a NUL). It goes through the same presentability rules as every answer. `none` is an
empty list: the control clients see no suggestion block at all.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scoring.contract import SuggestionModel

#: A client id no request can carry: the model answers it as an unknown client (cold start).
NOBODY = "\x00control"


def control_suggestions(recommender: SuggestionModel, kind: str, limit: int, mode: str,
                        exclude: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The control answer for one kind."""
    if mode == "none":
        return []
    return list(recommender.suggest(NOBODY, kind, limit, exclude=exclude))


def control_cart(recommender: SuggestionModel, limit: int, mode: str) -> dict[str, list[Any]]:
    """The control answer for a cart: popular items to complete it, no upsell, no bundle."""
    return {"complete": control_suggestions(recommender, "cross_sell", limit, mode), "upsell": [], "bundles": [],
            "unknown_items": []}
