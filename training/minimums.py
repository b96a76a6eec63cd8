"""The smallest data training can work with, checked up front so a small shop gets a sentence, not a crash.

Each check names what is too small and the minimum, and raises `TooSmall`, which the command line
turns into exit 2 (like a data folder it cannot read). Smaller parts that are still usable are not
errors: a task the test window cannot support is skipped with its reason, and tuning on a too
short inner window falls back to a per-client random hold-out (`training.split.inner_split`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from features.schema import CLIENT, ITEM, QUANTITY

#: Clients the history must hold: a recommender learns from what other clients bought.
MIN_CLIENTS = 2
#: Items the history must hold: a cart suggestion is another item than the one in the cart.
MIN_ITEMS = 2


class TooSmall(ValueError):
    """The data is valid but too small to train on; the message says what and the minimum."""


def require_trainable(tx: pd.DataFrame) -> None:
    """Enough clients and items among the purchases (positive lines) to fit a model."""
    bought = tx[tx[QUANTITY] > 0]
    clients, items = bought[CLIENT].nunique(), bought[ITEM].nunique()
    if clients < MIN_CLIENTS:
        raise TooSmall(f"the data holds purchases by {clients} client(s); training needs at least {MIN_CLIENTS}")
    if items < MIN_ITEMS:
        raise TooSmall(f"the data holds purchases of {items} item(s); training needs at least {MIN_ITEMS}")


def require_scored(result: Mapping[str, Any], test_days: float) -> None:
    """At least one task scored on the test window: a model evaluated on nothing is not registered."""
    tasks = result["tasks"]
    if tasks and all("skipped" in entry for entry in tasks.values()):
        why = "; ".join(f"{name}: {entry['skipped']}" for name, entry in tasks.items())
        raise TooSmall(f"the {test_days:g}-day test window gives no task anything to score ({why}); training "
                       "needs at least one purchase there by a client of the training part: use a longer "
                       "history or a shorter --test-days")
