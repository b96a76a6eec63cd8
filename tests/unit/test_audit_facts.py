"""What the audit reads off the data (tests/audit/facts.py): its own non-merchandise keywords, basket
counts, and the clients and carts it sends."""
from __future__ import annotations

import pandas as pd
from audit.facts import BasketIndex, keyword_flags, sample_carts, sample_clients

from features.loader import Dataset, LoadReport

ITEMS = pd.DataFrame({
    "item_id": ["coffee", "gas", "coupon", "gift", "misc", "milk", "feeder"],
    "name": ["Coffee Regular 12 OZ", "Gasoline-Reg Unleaded", "Coupons/Store & Mfg", "Mastercard Gift Card",
             "Misc Sales Trans", "Fluid Milk White Only 1 GA", "Bird Feeder"],
    "category": ["GROCERY", "FUEL", "COUPON", "MISCELLANEOUS", "MISCELLANEOUS", "GROCERY", "GARDEN CENTER"],
})


def lines(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """(client, item, order, day) -> transaction lines, one of each, in the given order."""
    frame = pd.DataFrame(rows, columns=["client_id", "item_id", "order_id", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    frame["quantity"], frame["price"] = 1.0, 1.0
    return frame


def test_keywords_flag_fuel_coupons_gift_cards_and_misc_sales_not_coffee_or_feeders() -> None:
    flagged = keyword_flags(ITEMS)
    assert set(flagged) == {"gas", "coupon", "gift", "misc"}
    assert flagged["gift"] == "audit keyword 'Gift Card'"


def test_basket_index_counts_baskets_holding_every_item() -> None:
    tx = lines([("a", "milk", "o1", "2024-01-01"), ("a", "coffee", "o1", "2024-01-01"),
                ("b", "milk", "o2", "2024-01-02"), ("b", "coffee", "o2", "2024-01-02"),
                ("b", "milk", "o2", "2024-01-02"), ("c", "milk", "o3", "2024-01-03")])
    count = BasketIndex(tx)
    assert count(["milk"]) == 3
    assert count(["milk", "coffee"]) == 2
    assert count(["milk", "coffee", "gas"]) == 0


def test_carts_are_recent_baskets_cut_to_their_first_items_every_other_anonymous() -> None:
    rows = [("old", f"i{k}", "o-old", "2024-01-01") for k in range(6)]
    rows += [(f"c{b}", f"i{k}", f"o{b}", "2024-06-01") for b in range(30) for k in range(6)]
    rows += [("single", "i0", "o-single", "2024-06-02")]
    dataset = Dataset(lines(rows), ITEMS, None, None, LoadReport(), {})
    carts = sample_carts(dataset, 20, seed=1, test_days=60)
    assert len(carts) == 20 and len({c.order_id for c in carts}) == 20
    assert {c.order_id for c in carts}.isdisjoint({"o-old", "o-single"})
    assert all(2 <= len(c.items) <= 5 and c.items == tuple(f"i{k}" for k in range(len(c.items))) for c in carts)
    assert [c.client_id is None for c in carts] == [k % 2 == 1 for k in range(20)]
    assert sample_carts(dataset, 20, seed=1, test_days=60) == carts


def test_clients_are_drawn_from_the_data_seeded() -> None:
    dataset = Dataset(lines([(f"c{k}", "milk", f"o{k}", "2024-01-01") for k in range(50)]), ITEMS, None, None,
                      LoadReport(), {})
    drawn = sample_clients(dataset, 10, seed=3)
    assert len(set(drawn)) == 10 and set(drawn) <= {f"c{k}" for k in range(50)}
    assert sample_clients(dataset, 10, seed=3) == drawn
    assert len(sample_clients(dataset, 500, seed=3)) == 50
