"""The business questions we score rankers on, each turned into queries with a known answer.

A task is built from the time split: what the training part shows a ranker (`TrainContext`) and
what the test part says really happened (`TaskQueries.relevant`). Five tasks, one per widget:

- cross_sell:        items a client buys in the test and never bought before (ndcg)
- next_basket:       every item a client buys in the test, repeats included (ndcg)
- basket_completion: a test order with one item hidden; find it from the rest of the cart (hr)
- upsell:            items a client buys in the test that are an upsell (`scoring.upgrades`: same
                     product type, dearer, a higher tier, a larger pack or a better brand) of an
                     item they bought in training, and new to them (hr)
- upsell_price:      the definition before issue 11, reported beside for one release: pricier
                     items a client buys in a subcategory they already buy in (hr)
- service_package:   one of a client's services hidden; find it from the rest of their history (hr)

Non-merchandise lines (fees, coupons, fuel: `TrainContext.fees`) are never positives. Every task
is scored on clients present in both parts. A task the data cannot support comes
back as `Skipped(reason)`, never as a zero that would read like a bad ranker.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.schema import CLIENT, ITEM, ORDER, QUANTITY
from scoring.upgrades import step_up
from training.context import TrainContext, csr
from training.item_facts import item_facts

TASKS = ("cross_sell", "next_basket", "basket_completion", "upsell", "upsell_price", "service_package")
CLIENT_TASKS = frozenset({"cross_sell", "next_basket", "upsell", "upsell_price", "service_package"})
PRIMARY_METRIC = {
    "cross_sell": "ndcg",
    "next_basket": "ndcg",
    "basket_completion": "hr",
    "upsell": "hr",
    "upsell_price": "hr",
    "service_package": "hr",
}
#: Paid prices are compared with this tolerance, so 2.99 against 2.99 read back from a float is not "pricier".
PRICE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class TaskQueries:
    """One task's questions and answers, row-aligned; what every ranker receives.

    kind       "client": a row is a client (history = their training purchases, maybe minus a
               hidden item); "basket": a row is a cart (history = its visible items).
    clients    client index per row (for baskets: the basket's owner; rankers may ignore it)
    history    rows x items, what the row shows the ranker: order counts for clients, 1 per
               visible item for baskets. A ranker must not look at the client's full training
               row instead: for service_package that would reveal the hidden service.
    relevant   per row, item indices to find; negative values are items unseen in training
    exclude    rows x items that must not be returned (already bought, already in the cart)
    candidates bool per item: only these may be returned (None: any item)
    """

    task: str
    kind: Literal["client", "basket"]
    metric: str
    clients: np.ndarray
    history: sp.csr_matrix
    relevant: list[np.ndarray]
    exclude: sp.csr_matrix | None = None
    candidates: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.relevant)


def without_held_out(ctx: TrainContext, queries: TaskQueries) -> TrainContext:
    """The training context less every line of the (client, item) pairs the queries hide.

    A held-out item must be unknown to every ranker, not just hidden from its query row: counts,
    co-occurrences and factors learnt from the client's own purchases of it would leak the answer.
    """
    hidden = pd.DataFrame({
        CLIENT: np.repeat(ctx.clients.ids[queries.clients], [len(r) for r in queries.relevant]),
        ITEM: ctx.items.ids[np.concatenate([np.asarray(r) for r in queries.relevant]).clip(0)]
        if queries.relevant else np.empty(0, dtype=object),
    })
    tx = ctx.transactions
    keep = ~pd.MultiIndex.from_frame(tx[[CLIENT, ITEM]]).isin(pd.MultiIndex.from_frame(hidden))
    return TrainContext.build(tx[keep], ctx.items_df, ctx.packages, like=ctx)


#: Tasks whose answers are hidden from the training part: rankers are refitted without them.
HOLDOUT_TASKS = frozenset({"service_package"})


@dataclass(frozen=True)
class Skipped:
    """A task this data cannot support, and why."""

    reason: str


def build_tasks(
    ctx: TrainContext, test_tx: pd.DataFrame, seed: int = 0, max_baskets: int = 20_000
) -> dict[str, TaskQueries | Skipped]:
    """Every task in `TASKS` order; each draws from its own default_rng(seed), so adding or
    skipping one never changes another's sample."""
    return {
        "cross_sell": cross_sell(ctx, test_tx),
        "next_basket": next_basket(ctx, test_tx),
        "basket_completion": basket_completion(ctx, test_tx, seed=seed, max_baskets=max_baskets),
        "upsell": upsell(ctx, test_tx),
        "upsell_price": upsell_price(ctx, test_tx),
        "service_package": service_package(ctx, test_tx, seed=seed),
    }


def cross_sell(ctx: TrainContext, test_tx: pd.DataFrame) -> TaskQueries | Skipped:
    """Relevant: items a client bought in the test but never (no positive line) in training.
    Already-bought items are excluded for every ranker: the widget asks for something new."""
    bought = _test_purchases(ctx, test_tx)
    codes = ctx.seen_item_codes(bought[ITEM])
    already = np.zeros(len(bought), dtype=bool)
    known = codes >= 0
    already[known] = entries(ctx.purchases, bought["row"].to_numpy()[known], codes[known]) > 0
    new = bought[~already]
    if new.empty:
        return Skipped("no client bought an item in the test that they had not bought before")
    return _client_queries("cross_sell", ctx, new, exclude_history=True)


def next_basket(ctx: TrainContext, test_tx: pd.DataFrame) -> TaskQueries | Skipped:
    """Relevant: every distinct item a client bought in the test; nothing is excluded."""
    bought = _test_purchases(ctx, test_tx)
    if bought.empty:
        return Skipped("no client of the training period bought anything in the test")
    return _client_queries("next_basket", ctx, bought, exclude_history=False)


def basket_completion(
    ctx: TrainContext, test_tx: pd.DataFrame, seed: int = 0, max_baskets: int = 20_000
) -> TaskQueries | Skipped:
    """Test orders with >= 2 distinct items, one hidden (seeded); up to `max_baskets`, sampled.

    A hidden item never seen in training cannot be found by any ranker; the basket still counts,
    as a miss, because a shopper's cart does not skip them either.
    """
    if max_baskets < 1:
        raise ValueError("max_baskets must be at least 1")
    lines = _test_purchases(ctx, test_tx, by_order=True)
    lines = lines.sort_values([ORDER, ITEM], kind="stable").reset_index(drop=True)
    sizes = lines.groupby(ORDER, sort=True).size()
    eligible = sizes.index[sizes.to_numpy() >= 2]
    if len(eligible) == 0:
        return Skipped("no test order holds two or more distinct items")
    rng = np.random.default_rng(seed)
    if len(eligible) > max_baskets:
        eligible = eligible[np.sort(rng.choice(len(eligible), size=max_baskets, replace=False))]
    lines = lines[lines[ORDER].isin(eligible)].reset_index(drop=True)
    query = pd.factorize(lines[ORDER], sort=True)[0]
    starts = np.flatnonzero(np.r_[True, query[1:] != query[:-1]])
    counts = np.diff(np.r_[starts, len(lines)])
    hidden_line = starts + rng.integers(0, counts)
    is_hidden = np.zeros(len(lines), dtype=bool)
    is_hidden[hidden_line] = True

    codes = ctx.seen_item_codes(lines[ITEM])
    visible = ~is_hidden & (codes >= 0)
    history = csr(query[visible], codes[visible], np.ones(int(visible.sum())), len(starts), len(ctx.items))
    relevant = [np.array([c if c >= 0 else -2], dtype=np.int64) for c in codes[hidden_line]]
    return TaskQueries(
        task="basket_completion",
        kind="basket",
        metric=PRIMARY_METRIC["basket_completion"],
        clients=lines["row"].to_numpy()[starts].astype(np.int64),
        history=history,
        relevant=relevant,
        exclude=history,
    )


def upsell(ctx: TrainContext, test_tx: pd.DataFrame) -> TaskQueries | Skipped:
    """Relevant: items bought in the test, new to the client, that are an upsell of an item they
    bought in training (`scoring.upgrades.step_up`, the service's own definition)."""
    facts = item_facts(ctx)
    if not (facts.item_type >= 0).any():
        return Skipped("items have no product type or subcategory, so there is no 'same need' to measure")
    bought = _test_purchases(ctx, test_tx)
    codes = ctx.seen_item_codes(bought[ITEM])
    bought = bought.assign(b=codes)[codes >= 0]
    bought = bought[entries(ctx.purchases, bought["row"].to_numpy(), bought["b"].to_numpy()) == 0]
    owned = ctx.purchases.tocoo()
    had = pd.DataFrame({"row": owned.row.astype(np.int64), "a": owned.col.astype(np.int64)})
    had["type"] = facts.item_type[had["a"].to_numpy()]
    bought = bought.assign(type=facts.item_type[bought["b"].to_numpy()])
    pairs = bought[bought["type"] >= 0].merge(had[had["type"] >= 0], on=["row", "type"])
    if pairs.empty:
        return Skipped("no client bought, in the test, another item of a product type they bought before")
    steps = step_up(facts, pairs["a"].to_numpy(), pairs["b"].to_numpy())
    ups = pairs[steps > 0]
    if ups.empty:
        return Skipped("no client bought an upsell (a higher tier, larger pack or better brand) of their items")
    return _client_queries("upsell", ctx, ups[[CLIENT, ITEM, "row"]], exclude_history=True)


def upsell_price(ctx: TrainContext, test_tx: pd.DataFrame) -> TaskQueries | Skipped:
    """The definition before issue 11, for one release beside the new one.
    Relevant: items bought in the test, in a subcategory the client bought in during training,
    never bought by the client before, whose unit price is above the unit price of everything the
    client bought in that subcategory in training."""
    if ctx.subcategory_of.empty:
        return Skipped("items have no subcategory, so there is no 'same kind, pricier' to measure")
    if ctx.unit_prices.dropna().empty:
        return Skipped("no item prices (neither a price column in items nor prices on transactions)")
    ceilings = max_paid(ctx.transactions, ctx.unit_prices, ctx.subcategory_of)
    bought = _test_purchases(ctx, test_tx)
    if bought.empty:  # (an empty column of ids maps to strings, which cannot be compared with prices)
        return Skipped("no client of the training period bought anything in the test")
    bought = bought.assign(
        subcategory=bought[ITEM].map(ctx.subcategory_of),
        unit_price=bought[ITEM].map(ctx.unit_prices).astype(np.float64),
    ).merge(ceilings, on=[CLIENT, "subcategory"], how="inner")
    pricier = bought[bought["unit_price"] > bought["max_paid"] + PRICE_TOLERANCE]
    if pricier.empty:
        return Skipped("no client bought a pricier item in a subcategory they already bought in")
    # an upsell is another, pricier item: one the client already bought is not a trade-up
    return _client_queries("upsell_price", ctx, pricier[[CLIENT, ITEM, "row"]], exclude_history=True)


def service_package(ctx: TrainContext, test_tx: pd.DataFrame, seed: int = 0) -> TaskQueries | Skipped:
    """Clients with >= 2 distinct services in training: one hidden (seeded), predicted from the
    rest of their history. Only services may be returned, and none the client already has.

    Leave-one-out inside the training part: rankers were fitted on the hidden purchase too, so
    the figures flatter everyone alike; compare rankers with each other, not with other tasks.
    """
    if not ctx.services:
        return Skipped("no items of kind service and no packages file")
    active = np.unique(ctx.clients.index_of(test_tx[CLIENT]))
    active = active[active >= 0]
    services = sp.csr_matrix(ctx.purchases[active][:, np.flatnonzero(ctx.service_mask)])
    per_client = np.diff(services.indptr)
    eligible = per_client >= 2
    if not eligible.any():
        return Skipped("no client bought two or more distinct services in the training period")
    rng = np.random.default_rng(seed)
    rows = active[eligible]
    service_columns = np.flatnonzero(ctx.service_mask)
    picks = services.indptr[:-1][eligible] + rng.integers(0, per_client[eligible])
    held_out = service_columns[services.indices[picks]]

    history = sp.csr_matrix(ctx.purchases[rows], copy=True)
    entry_rows = np.repeat(np.arange(len(rows)), np.diff(history.indptr))
    history.data[history.indices == held_out[entry_rows]] = 0.0
    history.eliminate_zeros()
    return TaskQueries(
        task="service_package",
        kind="client",
        metric=PRIMARY_METRIC["service_package"],
        clients=rows.astype(np.int64),
        history=history,
        relevant=[np.array([h], dtype=np.int64) for h in held_out],
        exclude=history,
        candidates=ctx.service_mask,
    )


def max_paid(tx: pd.DataFrame, unit_prices: pd.Series, subcategory_of: pd.Series) -> pd.DataFrame:
    """client_id, subcategory, max_paid: the highest item price among what a client bought in each subcategory.

    Item prices are the typical unit prices (`unit_prices`), not the price paid on the line: with
    paid prices a client who once bought strawberries on promotion would "trade up" by buying the
    same strawberries at the regular price. Shared by the upsell task and the pricier_popular
    baseline, so both use the same ceiling.
    """
    bought = tx[tx[QUANTITY] > 0]
    paid = bought[ITEM].map(unit_prices)
    frame = pd.DataFrame(
        {CLIENT: bought[CLIENT].to_numpy(), "subcategory": bought[ITEM].map(subcategory_of).to_numpy(),
         "paid": paid.to_numpy(dtype=np.float64, na_value=np.nan)}
    ).dropna()
    return frame.groupby([CLIENT, "subcategory"], sort=True)["paid"].max().rename("max_paid").reset_index()


def entries(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """matrix[rows[i], cols[i]] for each i, as a flat float array.

    scipy answers an empty selection with an empty sparse matrix rather than an empty array,
    whose comparison is no boolean mask: a small test window with no known pair crashed on it."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.float64)
    return np.asarray(matrix[rows, cols], dtype=np.float64).ravel()


def _test_purchases(ctx: TrainContext, test_tx: pd.DataFrame, by_order: bool = False) -> pd.DataFrame:
    """Distinct (client, item) — or (order, item) — positive test lines of training clients."""
    bought = test_tx[test_tx[QUANTITY] > 0]
    row = ctx.clients.index_of(bought[CLIENT])
    keys = [ORDER, ITEM] if by_order else [CLIENT, ITEM]
    frame = pd.DataFrame({CLIENT: bought[CLIENT].to_numpy(), ITEM: bought[ITEM].to_numpy(),
                          ORDER: bought[ORDER].to_numpy(), "row": row})
    keep = (row >= 0) & ~frame[ITEM].astype(str).isin(ctx.fees).to_numpy()  # a fee is never a positive
    return frame[keep].drop_duplicates(keys).reset_index(drop=True)


def _client_queries(task: str, ctx: TrainContext, answers: pd.DataFrame, exclude_history: bool) -> TaskQueries:
    """One query per client in `answers` (client_id, item_id, row), ordered by client index."""
    answers = answers.drop_duplicates(["row", ITEM]).sort_values(["row", ITEM], kind="stable")
    rows = answers["row"].to_numpy(dtype=np.int64)
    codes = ctx.seen_item_codes(answers[ITEM])
    unseen = codes < 0
    codes[unseen] = -2 - np.arange(int(unseen.sum()))  # distinct, so each unseen item counts in |rel|
    clients, starts = np.unique(rows, return_index=True)
    history = sp.csr_matrix(ctx.purchases[clients])
    return TaskQueries(
        task=task,
        kind="client",
        metric=PRIMARY_METRIC[task],
        clients=clients,
        history=history,
        relevant=np.split(codes, starts[1:]),
        exclude=history if exclude_history else None,
    )
