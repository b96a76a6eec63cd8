"""The time split and each task's ground truth, on tiny histories whose answers are known."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.factories import make_transactions

from training.context import TrainContext
from training.split import SplitError, time_split
from training.tasks import (
    Skipped,
    TaskQueries,
    basket_completion,
    build_tasks,
    cross_sell,
    next_basket,
    service_package,
    upsell,
    upsell_price,
)

# Latest line 2024-03-31, so a 10-day test starts at 2024-03-21 00:00.
SHOP = [
    ("a", "milk", "2024-01-05", None, 1.0, 1.0),
    ("a", "milk", "2024-02-05", None, 1.0, 1.0),
    ("a", "coffee", "2024-02-05", None, 1.0, 3.0),
    ("b", "milk", "2024-01-10", None, 1.0, 1.0),
    ("c", "bread", "2024-01-10", None, 1.0, 2.0),
    ("c", "coffee_plus", "2024-01-20", None, 1.0, 5.0),
    ("e", "coffee", "2024-01-15", None, 1.0, 3.0),
    # test
    ("a", "milk", "2024-03-25", None, 1.0, 1.0),
    ("a", "coffee_plus", "2024-03-25", None, 1.0, 5.0),
    ("a", "bread", "2024-03-25", None, 1.0, 2.0),
    ("b", "eggs", "2024-03-26", None, 1.0, 2.0),  # eggs were never sold in training
    ("d", "milk", "2024-03-27", None, 1.0, 1.0),  # a new client: not scored
    ("e", "bread", "2024-03-31", None, -1.0, 2.0),  # a return is not a purchase
]
ITEMS = pd.DataFrame({
    "item_id": ["milk", "eggs", "coffee", "coffee_plus", "bread"],
    "subcategory": ["dairy", "dairy", "coffee", "coffee", "bakery"],
    "price": [1.0, 2.0, 3.0, 5.0, 2.0],
    "kind": ["product"] * 5,
})


def build(rows: list[tuple], items: pd.DataFrame | None = None, packages: pd.DataFrame | None = None,
          test_days: float = 10) -> tuple[TrainContext, pd.DataFrame]:
    train, test, _ = time_split(make_transactions(rows), test_days)
    return TrainContext.build(train, items, packages), test


def answers(ctx: TrainContext, queries: TaskQueries) -> dict[str, set[str]]:
    """client id -> relevant item ids; items unseen in training show as "?<code>"."""
    return {
        ctx.clients.id_of(c): {ctx.items.id_of(i) if i >= 0 else f"?{i}" for i in rel}
        for c, rel in zip(queries.clients, queries.relevant, strict=True)
    }


def ids(ctx: TrainContext, row: object) -> set[str]:
    return {ctx.items.id_of(i) for i in row.indices}  # type: ignore[attr-defined]


# --- split ----------------------------------------------------------------------------------

def test_time_split_cutoff_and_info() -> None:
    train, test, info = time_split(make_transactions(SHOP), 10)
    assert info["cutoff"] == "2024-03-21T00:00:00"
    assert train["timestamp"].max() < pd.Timestamp("2024-03-21") <= test["timestamp"].min()
    assert info["train"]["rows"] == 7 and info["test"]["rows"] == 6
    assert info["train"]["start"] == "2024-01-05T00:00:00" and info["test"]["end"] == "2024-03-31T00:00:00"
    assert info["test"]["clients"] == 4 and info["test_days"] == 10


def test_time_split_keeps_an_order_whole() -> None:
    rows = [("a", "x", "2024-01-01"), ("a", "y", "2024-03-20 23:00", "o1"), ("a", "z", "2024-03-21 01:00", "o1"),
            ("a", "w", "2024-03-31")]
    train, test, _ = time_split(make_transactions(rows), 10)
    assert set(train["item_id"]) == {"x", "y", "z"}  # the order started before the cutoff
    assert set(test["item_id"]) == {"w"}


def test_time_split_rejects_a_window_longer_than_the_history() -> None:
    with pytest.raises(SplitError, match="nothing left to train on"):
        time_split(make_transactions(SHOP), 365)
    with pytest.raises(ValueError):
        time_split(make_transactions(SHOP), 0)


# --- client tasks ---------------------------------------------------------------------------

def test_cross_sell_is_new_items_of_clients_in_both_parts() -> None:
    ctx, test = build(SHOP, ITEMS)
    queries = cross_sell(ctx, test)
    assert queries.metric == "ndcg" and queries.kind == "client"
    # milk is a repeat for a; d is new, e only returned something; eggs are unknown to training
    assert answers(ctx, queries) == {"a": {"bread", "coffee_plus"}, "b": {"?-2"}}
    assert ids(ctx, queries.exclude[0]) == {"milk", "coffee"}  # never offer what a already buys


def test_cross_sell_skipped_when_nobody_tries_anything_new() -> None:
    rows = [("a", "milk", "2024-01-01"), ("a", "milk", "2024-03-31")]
    result = cross_sell(*build(rows))
    assert isinstance(result, Skipped) and "not bought before" in result.reason


def test_a_test_window_without_a_known_pair_is_skipped_not_a_crash() -> None:
    """Issue 10, item 2: no test purchase of a (training client, training item) pair gave an
    empty sparse selection, and scipy's empty matrix is no boolean mask."""
    returns_only = [row for row in SHOP if row[2] < "2024-03-21"] + [("a", "milk", "2024-03-25", None, -1.0, 1.0)]
    ctx, test = build(returns_only, ITEMS)
    assert isinstance(cross_sell(ctx, test), Skipped)
    assert isinstance(upsell(ctx, test), Skipped)  # no purchase at all: was a str-to-price comparison
    only_new_items = [row for row in SHOP if row[2] < "2024-03-21"] + [("b", "eggs", "2024-03-26", None, 1.0, 2.0)]
    ctx, test = build(only_new_items, ITEMS)
    assert answers(ctx, cross_sell(ctx, test)) == {"b": {"?-2"}}  # eggs: in the catalogue, never sold before


def test_the_context_indexes_the_catalogue_but_knows_what_training_saw() -> None:
    ctx, _ = build(SHOP, ITEMS)
    assert list(ctx.items.ids) == sorted(ITEMS["item_id"])  # eggs too: the model can suggest it
    assert dict(zip(ctx.items.ids, ctx.item_seen, strict=True))["eggs"] == False  # noqa: E712
    assert ctx.popularity[ctx.items.get("eggs")] == 0
    np.testing.assert_array_equal(ctx.seen_item_codes(pd.Series(["eggs", "milk"])), [-1, ctx.items.get("milk")])


def test_next_basket_is_every_test_item_repeats_included() -> None:
    ctx, test = build(SHOP, ITEMS)
    queries = next_basket(ctx, test)
    assert answers(ctx, queries) == {"a": {"milk", "bread", "coffee_plus"}, "b": {"?-2"}}
    assert queries.exclude is None
    assert ctx.items.id_of(queries.history[0].indices[np.argmax(queries.history[0].data)]) == "milk"
    assert queries.history[0].data.max() == 2.0  # two orders with milk


def test_the_former_upsell_is_a_pricier_item_in_a_known_subcategory() -> None:
    ctx, test = build(SHOP, ITEMS)
    queries = upsell_price(ctx, test)
    assert queries.metric == "hr"
    # a: coffee_plus (5.00) beats the 3.00 coffee; bread is a new subcategory for a, milk is no dearer.
    # b: eggs (2.00) beat the 1.00 milk in dairy, though training never saw eggs.
    assert answers(ctx, queries) == {"a": {"coffee_plus"}, "b": {"?-2"}}


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        (None, "no subcategory"),
        (ITEMS.drop(columns=["subcategory"]), "no subcategory"),
        (ITEMS.drop(columns=["price"]), "no item prices"),
    ],
)
def test_the_former_upsell_skipped_without_subcategories_or_prices(items: pd.DataFrame | None, reason: str) -> None:
    rows = [row[:5] for row in SHOP]  # no paid prices either
    result = upsell_price(*build(rows, items))
    assert isinstance(result, Skipped) and reason in result.reason


#: The same shop with pack sizes and brands: coffee_plus is the 500 G pack of the 250 G coffee.
SIZED = ITEMS.assign(package_size=["1 L", "12 CT", "250 G", "500 G", "500 G"],
                     brand=["National", "National", "Private", "Private", "Private"])


def test_upsell_is_a_larger_pack_better_brand_or_higher_tier_of_an_owned_item() -> None:
    ctx, test = build(SHOP, SIZED)
    # a: coffee_plus is the 500 G pack of their 250 G coffee; b's eggs are another product
    # (dairy, but no pack of milk), which the former definition counted
    assert answers(ctx, upsell(ctx, test)) == {"a": {"coffee_plus"}}
    same_size = SIZED.assign(package_size=["1 L", "12 CT", "500 G", "500 G", "500 G"])
    assert isinstance(upsell(*build(SHOP, same_size)), Skipped)  # dearer, same pack, same brand: no step
    national = same_size.assign(brand=["National", "National", "Private", "National", "Private"])
    assert answers(*_ctx_and(upsell, SHOP, national)) == {"a": {"coffee_plus"}}  # the national brand
    tiers = same_size.assign(tier=[None, None, "basic", "premium", None])
    assert answers(*_ctx_and(upsell, SHOP, tiers)) == {"a": {"coffee_plus"}}  # a higher tier


def _ctx_and(task, rows: list[tuple], items: pd.DataFrame) -> tuple[TrainContext, TaskQueries]:
    ctx, test = build(rows, items)
    return ctx, task(ctx, test)


def test_non_merchandise_is_never_a_positive() -> None:
    fee = ("a", "bag_fee", "2024-03-25", None, 1.0, 0.1)
    items = pd.concat([ITEMS, pd.DataFrame({"item_id": ["bag_fee"], "kind": ["fee"], "price": [0.1]})])
    ctx, test = build([*SHOP, fee], items)
    assert "bag_fee" not in answers(ctx, next_basket(ctx, test))["a"]


# --- basket completion ----------------------------------------------------------------------

def test_basket_completion_hides_one_item_of_each_multi_item_order() -> None:
    ctx, test = build(SHOP, ITEMS)
    queries = basket_completion(ctx, test, seed=3)
    assert queries.kind == "basket" and queries.metric == "hr"
    assert len(queries) == 1  # only a's test order has two or more items
    hidden = {ctx.items.id_of(i) for i in queries.relevant[0]}
    visible = ids(ctx, queries.history[0])
    assert len(hidden) == 1 and hidden | visible == {"milk", "coffee_plus", "bread"} and not hidden & visible
    assert ids(ctx, queries.exclude[0]) == visible
    assert ctx.clients.id_of(queries.clients[0]) == "a"


def many_baskets(n: int) -> list[tuple]:
    rows = [("a", item, "2024-01-01") for item in ("x", "y", "z")]
    for i in range(n):
        day = f"2024-03-{21 + i % 10:02d}"
        rows += [("a", "x", day, f"o{i}"), ("a", "y", day, f"o{i}"), ("a", "new", day, f"o{i}")]
    return rows


def test_basket_completion_samples_up_to_the_cap_reproducibly() -> None:
    ctx, test = build(many_baskets(30))
    first = basket_completion(ctx, test, seed=1, max_baskets=10)
    again = basket_completion(ctx, test, seed=1, max_baskets=10)
    assert len(first) == 10
    assert [r.tolist() for r in first.relevant] == [r.tolist() for r in again.relevant]
    assert (first.history != again.history).nnz == 0
    assert len(basket_completion(ctx, test, seed=1)) == 30


def test_basket_completion_counts_hidden_items_unseen_in_training() -> None:
    ctx, test = build(many_baskets(30))
    queries = basket_completion(ctx, test, seed=0)
    hidden = np.concatenate(queries.relevant)
    assert len(queries) == 30
    assert (hidden < 0).any() and (hidden >= 0).any()  # "new" hidden sometimes: still a query
    two_visible = np.diff(queries.history.indptr) == 2
    assert (two_visible == (hidden < 0)).all()  # an unseen item is never part of the visible cart


def test_basket_completion_skipped_without_multi_item_orders() -> None:
    rows = [("a", "x", "2024-01-01"), ("a", "y", "2024-03-31")]
    result = basket_completion(*build(rows))
    assert isinstance(result, Skipped) and "two or more" in result.reason


# --- service packages -----------------------------------------------------------------------

SERVICE_ROWS = [
    ("x", "s1", "2024-01-01"), ("x", "s2", "2024-01-02"), ("x", "p", "2024-01-03"),
    ("y", "s1", "2024-01-01"), ("y", "p", "2024-01-05"),
    ("x", "p", "2024-03-30"), ("y", "p", "2024-03-31"),
]
SERVICE_ITEMS = pd.DataFrame({"item_id": ["s1", "s2", "p"], "kind": ["service", "service", "product"]})


def test_service_package_hides_one_service_of_clients_with_two() -> None:
    ctx, test = build(SERVICE_ROWS, SERVICE_ITEMS)
    queries = service_package(ctx, test, seed=0)
    assert queries.metric == "hr" and len(queries) == 1  # y has only one service
    hidden = {ctx.items.id_of(i) for i in queries.relevant[0]}
    visible = ids(ctx, queries.history[0])
    assert hidden in ({"s1"}, {"s2"}) and visible == {"s1", "s2", "p"} - hidden
    assert ids(ctx, queries.exclude[0]) == visible
    assert set(ctx.items.ids[queries.candidates]) == {"s1", "s2"}


def test_service_package_finds_services_in_packages_alone() -> None:
    packages = pd.DataFrame({"package_id": ["k"], "name": ["Care"], "items": [["s1", "s2"]]})
    ctx, test = build(SERVICE_ROWS, None, packages)
    assert isinstance(service_package(ctx, test), TaskQueries)


def test_service_package_skipped_without_services() -> None:
    result = service_package(*build(SERVICE_ROWS))
    assert result == Skipped("no items of kind service and no packages file")
    only_one = [row for row in SERVICE_ROWS if row[1] != "s2"]
    result = service_package(*build(only_one, SERVICE_ITEMS))
    assert isinstance(result, Skipped) and "two or more distinct services" in result.reason


def test_build_tasks_returns_every_task_and_skips_what_the_data_cannot_support() -> None:
    ctx, test = build(SHOP)
    tasks = build_tasks(ctx, test)
    assert list(tasks) == ["cross_sell", "next_basket", "basket_completion", "upsell", "upsell_price",
                           "service_package"]
    assert isinstance(tasks["upsell"], Skipped) and isinstance(tasks["service_package"], Skipped)
    assert all(isinstance(tasks[t], TaskQueries) for t in ("cross_sell", "next_basket", "basket_completion"))
