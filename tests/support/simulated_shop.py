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
    """One synthetic period of the shop, reproducible from `seed` (vectorised: ~0.1 s for 2,000 clients)."""
    p = params or ShopParams()
    rng = np.random.default_rng(seed)
    n, k = p.clients, p.suggested
    start, end = START, START + timedelta(days=p.days)
    prices = np.round(rng.lognormal(mean=2.0, sigma=0.7, size=p.items), 2)
    arms, weights = list(p.arms), np.array(list(p.arms.values()), dtype=float)
    control = rng.random(n) < p.control_share
    variant = np.where(control, "control", np.array(arms, dtype=object)[rng.choice(len(arms), n, p=weights / weights.sum())])
    clients = np.array([f"client{c:06d}" for c in range(n)], dtype=object)
    # baseline: gamma propensities, Poisson counts, items uniform, quantities 1-3, uniform times
    counts = rng.poisson(rng.gamma(p.propensity_shape, p.propensity_mean / p.propensity_shape, size=n))
    buyer = np.repeat(np.arange(n), counts)
    bought = rng.integers(p.items, size=len(buyer))
    quantity = rng.integers(1, 4, size=len(buyer)).astype(float)
    at = rng.random(len(buyer)) * p.days * 86_400.0
    # one email answer per client in the first week: control the popular items, the rest k random ones
    shown_s = rng.random(n) * 7 * 86_400.0
    kinds = np.array(KINDS, dtype=object)[rng.integers(len(KINDS), size=n)]
    chosen = np.argsort(rng.random((n, p.items)), axis=1)[:, :k]
    chosen[control] = np.arange(k)
    clicked = rng.random((n, k)) < p.click_rate
    uplift = np.array([0.0 if v == "control" else p.uplift.get(v, 0.0) for v in variant])
    extra = rng.random((n, k)) < uplift[:, None]
    extra_at = shown_s[:, None] + rng.random((n, k)) * 10 * 86_400.0
    # the planted purchases join the baseline ones
    ec, ep = np.nonzero(extra)
    buyer = np.concatenate([buyer, ec])
    bought = np.concatenate([bought, chosen[ec, ep]])
    quantity = np.concatenate([quantity, np.ones(len(ec))])
    at = np.concatenate([at, extra_at[ec, ep]])

    def when(seconds: float) -> datetime:
        return start + timedelta(seconds=float(seconds))

    events = [{"event_id": f"s{seed}-e{e}", "type": "purchase", "client_id": clients[c], "visitor_id": None,
               "item_id": _item(int(i)), "quantity": float(q), "price": float(prices[i]), "order_id": None,
               "occurred_at": when(t), "received_at": when(t), "source": "api"}
              for e, (c, i, q, t) in enumerate(zip(buyer, bought, quantity, at, strict=True))]
    rec_ids = [f"{seed:04d}{c:06d}" + "0" * 22 for c in range(n)]
    exposures = [{"recommendation_id": rec_ids[c], "client_id": clients[c], "visitor_id": None,
                  "variant": variant[c], "model_version": None if control[c] else "1", "endpoint": "client",
                  "kind": kinds[c], "channel": "email", "shown_at": when(shown_s[c]),
                  "items": [{"item_id": _item(int(i)), "group": f"g{int(i) // 2}", "kind": kinds[c], "position": pos}
                            for pos, i in enumerate(chosen[c])]}
                 for c in range(n)]
    reactions = [{"recommendation_id": rec_ids[c], "item_id": _item(int(chosen[c, pos])), "reaction": reaction,
                  "channel": "email", "client_id": clients[c], "visitor_id": None,
                  "reacted_at": when(shown_s[c] + offset)}
                 for mask, reaction, offset in ((clicked, "clicked", 3600.0), (extra, "accepted", 7200.0))
                 for c, pos in zip(*np.nonzero(mask), strict=True)]
    truth = {arm: p.uplift.get(arm, 0.0) * k * float(prices.mean()) for arm in arms}
    return Shop(seed, p, start, end, prices, events, exposures, reactions, truth)


def fill_store(store: Any, tenant: str, shop: Shop, *, through_writers: bool = False) -> None:
    """Write the shop into a real `EventStore`.

    By default as one executemany INSERT per table in one transaction (tens of milliseconds a
    seed, so 40 seeds fit a unit test). `through_writers=True` goes through the store's own
    `add_events` / `add_exposures` (seconds a seed: `add_events` compiles a multi-row VALUES statement
    per 500 rows), for the one seed that checks both paths agree. Reactions always go in bulk: the
    store's `add_reaction` commits each one, right for the API and thousands of fsyncs here."""
    from sqlalchemy import insert

    from eventstore.schema import events, exposures, reactions

    if through_writers:
        store.add_events(tenant, shop.events)
        store.add_exposures(tenant, shop.exposures)
    with store.engine.begin() as conn:
        if not through_writers:
            conn.execute(insert(events), [{"tenant": tenant, **row} for row in shop.events])
            conn.execute(insert(exposures), [{"tenant": tenant, **row} for row in shop.exposures])
        if shop.reactions:
            conn.execute(insert(reactions), [{"tenant": tenant, "reason": None, "snooze_days": None, **row}
                                             for row in shop.reactions])


def write_docs_plot(path: str) -> None:
    """docs/effect-report.png: one report of an experiment in the synthetic shop, through a real
    SQLite store (`PYTHONPATH=. python tests/support/simulated_shop.py docs/effect-report.png`)."""
    import tempfile
    from pathlib import Path

    from eventstore import EventStore
    from service.effect.plot import plot_report
    from service.effect.report import effect_report

    shop = simulate(42, ShopParams(clients=6000, arms={"champion": 0.8, "candidate": 0.2},
                                   uplift={"champion": 0.3, "candidate": 0.4}))
    with tempfile.TemporaryDirectory() as folder, EventStore(f"sqlite:///{Path(folder) / 'events.db'}") as store:
        store.create_all()
        fill_store(store, "default", shop)
        report = effect_report(store, "default", shop.start, shop.end, item_group=shop.group_of)
    truth = ", ".join(f"{arm} {value:+.2f}" for arm, value in shop.true_incremental.items())
    plot_report(report, path, title=f"SYNTHETIC shop (tests/support/simulated_shop.py), planted effect per client: {truth}")


if __name__ == "__main__":
    import sys

    write_docs_plot(sys.argv[1] if len(sys.argv) > 1 else "docs/effect-report.png")
