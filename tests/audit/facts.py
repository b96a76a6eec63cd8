"""What the audit knows without asking the model: facts from the data files, and the clients and
carts it sends.

Groups, product types and non-merchandise come from the `features` functions the trainer also
uses (features.products, features.merchandise): the audit reads them off the data, not off the
answers, so a label the model gets wrong is caught. Non-merchandise has a second, independent
opinion here (`KEYWORDS`: fuel, coupons, gift cards, misc sales... by name and category), so a
line the features rules miss is still counted, with the signal that caught it.
"""
from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from audit.checks import REGULAR_MIN_PURCHASES, Facts
from features.loader import Dataset
from features.schema import CLIENT, ITEM, ORDER, QUANTITY, TIMESTAMP

#: Names of lines that are not goods a salesperson may offer (word-bounded: "Coffee" holds no "fee").
KEYWORDS = re.compile(r"\b(gasoline|fuel|coupons?|misc\.? sales?|gift ?cards?|postage|stamps|deposits?|fees?"
                      r"|lottery|lotto|money orders?|service charges?)\b", re.IGNORECASE)
#: Categories that hold only such lines in Complete Journey.
CATEGORIES = {"FUEL", "COUPON"}


def keyword_flags(items: pd.DataFrame) -> dict[str, str]:
    """item id -> why, by name or category: the audit's own opinion, beside the features rules."""
    name = items["name"].fillna("") if "name" in items else pd.Series("", index=items.index)
    category = items["category"].fillna("") if "category" in items else pd.Series("", index=items.index)
    out = {}
    for item_id, text, cat in zip(items[ITEM], name, category, strict=True):
        match = KEYWORDS.search(str(text))
        if match or str(cat).upper() in CATEGORIES:
            out[str(item_id)] = f"audit keyword {match.group(0)!r}" if match else f"audit category {cat!r}"
    return out


def _config_tuple(config: object, *names: str) -> tuple[str, ...]:
    """The first of `names` the trainer's config has (the declared/allowed lists), else ()."""
    for name in names:
        value = getattr(config, name, None)
        if value:
            return tuple(value)
    return ()


def merchandise_flags(dataset: Dataset, config: object) -> dict[str, str]:
    """item id -> why, from features.merchandise.non_merchandise (with the configured declared
    and allowed lists), then the audit's keywords for what it left."""
    from features.merchandise import non_merchandise

    items = dataset.items
    declared = _config_tuple(config, "non_merchandise")
    allowed = _config_tuple(config, "merchandise_allow")
    flagged = non_merchandise(items, dataset.transactions, declared=declared, allowed=allowed)
    out = {str(i): f"features: {why}" for i, why in zip(flagged[ITEM], flagged["reason"], strict=True)}
    for item_id, why in keyword_flags(items).items():
        if item_id not in allowed:
            out.setdefault(item_id, why)
    return out


def build_facts(dataset: Dataset, clients: Sequence[str], config: object, *, min_bundle_baskets: int,
                max_lift: float = 100.0) -> Facts:
    """Facts over the whole catalogue; purchase counts for `clients` only (all the audit asks about)."""
    from features.products import product_groups, product_type_of

    items = dataset.items
    if items is None:
        raise SystemExit("the audit needs an items table (names, categories, product types)")
    ids = items[ITEM].astype(str).tolist()
    names = dict(zip(ids, items["name"].fillna(items[ITEM]).astype(str), strict=True))
    groups = dict(zip(ids, np.asarray(product_groups(items)).tolist(), strict=True))
    types = {i: str(t) for i, t in zip(ids, product_type_of(items).tolist(), strict=True) if pd.notna(t)}
    lines = dataset.transactions
    lines = lines[lines[QUANTITY] > 0]
    mine = lines[lines[CLIENT].isin(set(clients))]
    bought = mine.groupby([CLIENT, ITEM])[ORDER].nunique()
    counts = {(str(c), str(i)): int(n) for (c, i), n in bought.items()}
    owned: dict[str, set[int]] = {}
    for client, item in counts:
        if item in groups:
            owned.setdefault(client, set()).add(groups[item])
    frozen = {client: frozenset(found) for client, found in owned.items()}
    typed = mine.assign(product_type=mine[ITEM].astype(str).map(types)).dropna(subset=["product_type"])
    per_type = typed.groupby([CLIENT, "product_type"])[ORDER].nunique()
    regular: dict[str, set[str]] = {}
    for (client, kind), n in per_type.items():
        if n >= REGULAR_MIN_PURCHASES:
            regular.setdefault(str(client), set()).add(str(kind))
    regular_types = {client: frozenset(found) for client, found in regular.items()}
    return Facts(names=names, groups=groups, types=types, non_merchandise=merchandise_flags(dataset, config),
                 purchases=lambda client, item: counts.get((client, item), 0),
                 baskets_with=BasketIndex(lines), min_bundle_baskets=min_bundle_baskets, max_lift=max_lift,
                 client_groups=lambda client: frozen.get(client, frozenset()),
                 client_types=lambda client: regular_types.get(client, frozenset()),
                 extending_names=names_beginning_with(names.values()))


def names_beginning_with(names: Iterable[str]) -> Callable[[str], list[str]]:
    """name -> the catalogue's names (lower case, single spaces) that begin with it, found by
    bisection in the sorted list."""
    ordered = sorted({" ".join(str(n).lower().split()) for n in names})

    def beginning_with(prefix: str) -> list[str]:
        lo = bisect.bisect_left(ordered, prefix)
        hi = bisect.bisect_left(ordered, prefix + "\uffff")
        return ordered[lo:hi]

    return beginning_with


class BasketIndex:
    """How many baskets hold every one of some items: the orders of each item, intersected."""

    def __init__(self, lines: pd.DataFrame) -> None:
        self.orders, _ = pd.factorize(lines[ORDER])
        self.positions = lines.groupby(lines[ITEM].astype(str)).indices

    @lru_cache(maxsize=100_000)  # noqa: B019 - one index per audit run, dropped with it
    def _orders_of(self, item_id: str) -> np.ndarray:
        at = self.positions.get(item_id)
        return np.empty(0, np.int64) if at is None else np.unique(self.orders[at])

    def __call__(self, items: Sequence[str]) -> int:
        common: np.ndarray | None = None
        for item_id in items:
            orders = self._orders_of(str(item_id))
            common = orders if common is None else np.intersect1d(common, orders, assume_unique=True)
        return 0 if common is None else int(common.size)


def sample_clients(dataset: Dataset, n: int, seed: int) -> list[str]:
    """`n` clients the model knows (it was refitted on every client of the data), seeded."""
    known = np.sort(dataset.transactions[CLIENT].astype(str).unique())
    rng = np.random.default_rng(seed)
    return rng.choice(known, size=min(n, known.size), replace=False).tolist()


@dataclass(frozen=True)
class Cart:
    """A real basket's first items, sent as a cart (anonymous or with its client)."""

    order_id: str
    client_id: str | None
    items: tuple[str, ...]


def sample_carts(dataset: Dataset, n: int, seed: int, test_days: float = 60) -> list[Cart]:
    """`n` baskets of the last `test_days` with at least two items, each cut to its first 2-5
    distinct items in the order they were rung up; every other cart is sent anonymous."""
    lines = dataset.transactions
    recent = lines[(lines[TIMESTAMP] > lines[TIMESTAMP].max() - pd.Timedelta(days=test_days)) & (lines[QUANTITY] > 0)]
    recent = recent.reset_index(drop=True).sort_values([ORDER, TIMESTAMP], kind="stable")
    recent = recent.drop_duplicates([ORDER, ITEM])
    sizes = recent.groupby(ORDER).size()
    orders = np.sort(sizes.index[sizes >= 2].astype(str).to_numpy())
    rng = np.random.default_rng(seed)
    chosen = rng.choice(orders, size=min(n, orders.size), replace=False)
    by_order = recent[recent[ORDER].isin(set(chosen))].groupby(ORDER)
    carts = []
    for k, order in enumerate(chosen.tolist()):
        basket = by_order.get_group(order)
        size = int(rng.integers(2, 6))
        client = str(basket[CLIENT].iloc[0])
        carts.append(Cart(order, client if k % 2 == 0 else None, tuple(basket[ITEM].astype(str).head(size))))
    return carts
