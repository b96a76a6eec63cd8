"""The item facts of a training context (product group, type, pack, brand, tier, merchandise), once.

The evaluation reads the same facts the model is fitted with (`training.fit.catalogue` and
`training.fit.item_facts`), so that its tasks and its presentability rules mean what the service
means: a non-merchandise line is no positive, an upsell is `scoring.upgrades.step_up`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.products import product_groups
from training.context import TrainContext


@dataclass(frozen=True)
class ItemFacts:
    """Arrays over `ctx.items`, with the attribute names `scoring.upgrades.step_up` reads."""

    item_group: np.ndarray
    item_type: np.ndarray
    item_price: np.ndarray
    item_tier: np.ndarray
    item_size: np.ndarray
    item_size_unit: np.ndarray
    item_brand_level: np.ndarray
    item_merch: np.ndarray


def item_facts(ctx: TrainContext) -> ItemFacts:
    """The context's item facts (computed on first use, then kept with the context)."""
    cached = ctx.cache.get("item_facts")
    if cached is None:
        from training.fit import catalogue  # fit imports the whole model
        from training.fit import item_facts as fit_facts

        cat = catalogue(ctx)
        facts = fit_facts(cat, None, product_groups(cat))
        cached = ItemFacts(facts["item_group"], facts["item_type"], cat["price"].to_numpy(np.float32),
                           cat["tier"].to_numpy(np.float32), facts["item_size"], facts["item_size_unit"],
                           facts["item_brand_level"], facts["item_merch"])
        ctx.cache["item_facts"] = cached
    return cached
