"""SYNTHETIC clients of the real service, for the one end-to-end seed of issue 12.

Nothing here is real data. The clients are made up; they shop from the service double's
catalogue (tests/support/service_model_double.py ITEMS: its items, its prices, its popularity).
The service, not this module, decides who is in control (it hashes the client id); this module
only reads each answer's `variant` and decides what the client does afterwards:

- History: a share of the clients bought one item *before* the period (posted with a timestamp
  the day before), which the service keeps as a recent purchase, so the double's cross-sell answers
  differ between clients (a machine owner is offered coffee, filters and a mug; a newcomer the
  popular filters, mug and milk). It lies outside the report's period, so it is no revenue there.
- Baseline: every client, whatever its group, buys Poisson(lambda) items in the period, lambda
  gamma-distributed (most buy little, a few a lot: heavy-tailed revenue, as in a shop), each item
  drawn by the catalogue's popularity, one unit at the catalogue price.
- Planted effect: a treatment client (any variant but `control`) also buys each item suggested to
  it with probability `uplift`, one unit at its catalogue price. A control client buys the popular
  items it was shown with the baseline only.
- Reactions: a share of the answers is reported `shown` item by item, and each shown item is
  `clicked` with probability `click_rate`.
Every purchase of the period is stamped between the client's answer and `until` (the moment the
simulation is asked: nothing is stamped in the future).

The estimand (`Plan.truth`): the expected extra revenue per treatment client that the planted
purchases add, given the answers the service gave:
    truth = uplift x mean over treatment clients c of (sum of the catalogue prices of c's suggestions).
The report's intention-to-treat estimate (mean revenue of treatment clients minus that of control
clients, all revenue of the period) estimates it without bias: the baseline is the same for both
groups, and the history (which shapes the suggestions) is drawn independently of the group.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from support.service_model_double import ITEMS

CONTROL = "control"
#: item -> catalogue price (what every purchase is charged)
PRICES = {item: price for item, (_, _, price, _) in ITEMS.items()}
_CATALOGUE = list(ITEMS)
_POPULARITY = np.array([ITEMS[item][3] for item in _CATALOGUE]) / sum(ITEMS[item][3] for item in _CATALOGUE)
#: What a client may have bought before the period (items the double's cross-sell builds on).
HISTORY_ITEMS = ("coffee", "milk", "mug", "machine", "filters")


@dataclass(frozen=True)
class Behaviour:
    uplift: float = 0.5               # planted extra purchase probability of each suggested item
    propensity_mean: float = 1.5      # baseline purchases per client in the period
    propensity_shape: float = 1.5     # gamma shape: smaller is more heavy-tailed
    history_share: float = 0.6        # clients with one purchase before the period
    reacting_share: float = 0.05      # answers whose items are reported shown
    click_rate: float = 0.3           # shown items then clicked


@dataclass(frozen=True)
class Answer:
    """What the service answered one client, as the client saw it."""

    client_id: str
    recommendation_id: str
    variant: str
    items: tuple[str, ...]
    answered_at: datetime             # when the answer arrived (the service stamped its exposure before)


@dataclass
class Plan:
    """What the simulated clients do after their answers, and what the report must then find."""

    purchases: list[dict[str, Any]]                  # POST /v1/events bodies' events
    reactions: list[dict[str, Any]]                  # POST /v1/reactions bodies
    truth: float                                     # the estimand (module docstring)
    revenue: dict[str, float]                        # client -> its revenue in the period
    variant_of: dict[str, str]
    attributed: Counter = field(default_factory=Counter)  # variant -> purchases of an item it was shown
    shown: Counter = field(default_factory=Counter)       # variant -> shown (answer, item) pairs
    clicked: Counter = field(default_factory=Counter)

    def itt(self, variant: str) -> float:
        """Mean revenue of `variant`'s clients minus that of control's: what the report estimates."""
        by: dict[str, list[float]] = defaultdict(list)
        for client, value in self.revenue.items():
            by[self.variant_of[client]].append(value)
        return float(np.mean(by[variant]) - np.mean(by[CONTROL]))


def stamp(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def histories(seed: int, clients: list[str], behaviour: Behaviour, before: datetime) -> list[dict[str, Any]]:
    """One purchase before the period for a share of the clients (events for POST /v1/events)."""
    rng = np.random.default_rng([seed, 0])
    having = rng.random(len(clients)) < behaviour.history_share
    picks = rng.integers(len(HISTORY_ITEMS), size=len(clients))
    return [{"event_id": f"e2e-{seed}-h{n}", "type": "purchase", "client_id": client, "item_id": HISTORY_ITEMS[pick],
             "quantity": 1.0, "price": PRICES[HISTORY_ITEMS[pick]], "timestamp": stamp(before)}
            for n, (client, has, pick) in enumerate(zip(clients, having, picks, strict=True)) if has]


def plan(seed: int, answers: list[Answer], behaviour: Behaviour, until: datetime) -> Plan:
    """The clients' purchases and reactions after `answers` (order-independent: by client id)."""
    rng = np.random.default_rng([seed, 1])
    answers = sorted(answers, key=lambda a: a.client_id)
    scale = behaviour.propensity_mean / behaviour.propensity_shape
    purchases: list[dict[str, Any]] = []
    reactions: list[dict[str, Any]] = []
    result = Plan(purchases, reactions, 0.0, {}, {a.client_id: a.variant for a in answers})
    suggested_value: list[float] = []
    for answer in answers:
        span = (until - answer.answered_at).total_seconds()
        bought = list(rng.choice(_CATALOGUE, size=rng.poisson(rng.gamma(behaviour.propensity_shape, scale)),
                                 p=_POPULARITY))
        planted = rng.random(len(answer.items)) < behaviour.uplift
        if answer.variant != CONTROL:
            bought += [item for item, extra in zip(answer.items, planted, strict=True) if extra]
            suggested_value.append(sum(PRICES[item] for item in answer.items))
        for item in bought:
            at = answer.answered_at + timedelta(seconds=span * float(rng.uniform(0.05, 0.95)))
            purchases.append({"event_id": f"e2e-{seed}-p{len(purchases)}", "type": "purchase",
                              "client_id": answer.client_id, "item_id": str(item), "quantity": 1.0,
                              "price": PRICES[str(item)], "timestamp": stamp(at)})
            result.attributed[answer.variant] += item in answer.items
        result.revenue[answer.client_id] = float(sum(PRICES[str(item)] for item in bought))
        reacting = rng.random() < behaviour.reacting_share
        clicks = rng.random(len(answer.items)) < behaviour.click_rate
        if reacting:
            for item, click in zip(answer.items, clicks, strict=True):
                reactions.append({"recommendation_id": answer.recommendation_id, "item_id": item, "reaction": "shown"})
                result.shown[answer.variant] += 1
                if click:
                    reactions.append({"recommendation_id": answer.recommendation_id, "item_id": item,
                                      "reaction": "clicked"})
                    result.clicked[answer.variant] += 1
    result.truth = behaviour.uplift * float(np.mean(suggested_value)) if suggested_value else 0.0
    return result
