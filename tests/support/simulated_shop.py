"""A SYNTHETIC shop whose true incremental revenue is known: used only to test the effect estimator.

Nothing here is real data. Each client has a purchase propensity (gamma-distributed: most buy a
little, a few a lot, so revenue per client is heavy-tailed as in a real shop) and buys catalogue
items at their prices, in quantities of 1 to 3, uniformly over the period, whatever group it is in.
Every client is answered once early in the period (an email exposure of `suggested` items of one
kind): control clients get the most popular items (business as usual), the others the suggestions
of their arm. A client of an arm with `uplift` p buys each item suggested to it once more with
probability p, within 10 days of the exposure. So the expected extra revenue of a client of that
arm is exactly p x suggested x (the mean price of the catalogue, from which suggestions are drawn
uniformly): `Shop.true_incremental[arm]`, known analytically, against which the report's
interval is checked. With uplift 0 the truth is zero.

`Shop.events`, `exposures` and `reactions` are rows for `EventStore.add_events`,
`add_exposures` and `add_reaction`; `Shop.frames()` are the same as the store's readers return them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

START = datetime(2024, 3, 1, tzinfo=timezone.utc)
KINDS = ("cross_sell", "upsell")


@dataclass(frozen=True)
class ShopParams:
    clients: int = 2000
    items: int = 200
    control_share: float = 0.3                       # drawn first, as service.loop.assignment does
    arms: dict[str, float] = field(default_factory=lambda: {"champion": 1.0})   # share of the rest
    uplift: dict[str, float] = field(default_factory=lambda: {"champion": 0.15})  # extra buy probability
    suggested: int = 3
    days: int = 28
    propensity_mean: float = 3.0                     # baseline purchases per client in the period
    propensity_shape: float = 1.2                    # gamma shape: smaller is more heavy-tailed
    click_rate: float = 0.1


@dataclass
class Shop:
    seed: int
    params: ShopParams
    start: datetime
    end: datetime
    prices: np.ndarray
    events: list[dict[str, Any]]
    exposures: list[dict[str, Any]]
    reactions: list[dict[str, Any]]
    true_incremental: dict[str, float]               # arm -> expected extra revenue per client

    @staticmethod
    def group_of(item_ids: list[str]) -> list[str | None]:
        """Two items (two pack sizes) per product group; unknown ids have none."""
        return [f"g{int(i[4:]) // 2}" if i.startswith("item") and i[4:].isdigit() else None for i in item_ids]

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """(exposures, purchases, reactions) as the store's readers return them."""
        exposures = pd.DataFrame(self.exposures)
        purchases = pd.DataFrame([e for e in self.events if e["type"] == "purchase"])
        reactions = pd.DataFrame(self.reactions)
        for frame, column in ((exposures, "shown_at"), (purchases, "occurred_at"), (reactions, "reacted_at")):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return exposures, purchases, reactions


def _item(i: int) -> str:
    return f"item{i:04d}"


def simulate(seed: int, params: ShopParams | None = None) -> Shop:
    """One synthetic period of the shop, reproducible from `seed`."""
    p = params or ShopParams()
    rng = np.random.default_rng(seed)
    start, end = START, START + timedelta(days=p.days)
    prices = np.round(rng.lognormal(mean=2.0, sigma=0.7, size=p.items), 2)
    popular = [_item(i) for i in range(p.suggested)]
    arms, weights = list(p.arms), np.array(list(p.arms.values()), dtype=float)
    period = p.days * 86_400.0
    events: list[dict[str, Any]] = []
    exposures: list[dict[str, Any]] = []
    reactions: list[dict[str, Any]] = []

    def purchase(client: str, item: int, quantity: float, at: datetime) -> None:
        events.append({"event_id": f"s{seed}-e{len(events)}", "type": "purchase", "client_id": client,
                       "visitor_id": None, "item_id": _item(item), "quantity": quantity,
                       "price": float(prices[item]), "order_id": None, "occurred_at": at, "received_at": at,
                       "source": "api"})

    propensities = rng.gamma(p.propensity_shape, p.propensity_mean / p.propensity_shape, size=p.clients)
    for c in range(p.clients):
        client = f"client{c:06d}"
        control = rng.random() < p.control_share
        arm = "control" if control else arms[int(rng.choice(len(arms), p=weights / weights.sum()))]
        for _ in range(rng.poisson(propensities[c])):
            purchase(client, int(rng.integers(p.items)), float(rng.integers(1, 4)),
                     start + timedelta(seconds=float(rng.random() * period)))
        shown_at = start + timedelta(seconds=float(rng.random() * 7 * 86_400))
        kind = KINDS[int(rng.integers(len(KINDS)))]
        chosen = popular if control else [_item(i) for i in rng.choice(p.items, p.suggested, replace=False)]
        recommendation_id = f"{seed:04d}{c:06d}" + "0" * 22
        exposures.append({"recommendation_id": recommendation_id, "client_id": client, "visitor_id": None,
                          "variant": arm, "model_version": None if control else "1", "endpoint": "client",
                          "kind": kind, "channel": "email", "shown_at": shown_at,
                          "items": [{"item_id": item, "group": Shop.group_of([item])[0], "kind": kind,
                                     "position": pos} for pos, item in enumerate(chosen)]})
        for item in chosen:
            if rng.random() < p.click_rate:
                reactions.append({"recommendation_id": recommendation_id, "item_id": item, "reaction": "clicked",
                                  "channel": "email", "client_id": client, "visitor_id": None,
                                  "reacted_at": shown_at + timedelta(hours=1)})
            if not control and rng.random() < p.uplift.get(arm, 0.0):
                purchase(client, int(item[4:]), 1.0, shown_at + timedelta(seconds=float(rng.random() * 10 * 86_400)))
                reactions.append({"recommendation_id": recommendation_id, "item_id": item, "reaction": "accepted",
                                  "channel": "email", "client_id": client, "visitor_id": None,
                                  "reacted_at": shown_at + timedelta(hours=2)})
    truth = {arm: p.uplift.get(arm, 0.0) * p.suggested * float(prices.mean()) for arm in arms}
    return Shop(seed, p, start, end, prices, events, exposures, reactions, truth)
