"""Builders for small hand-made frames in the canonical shape of `features.schema`."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from features.schema import CLIENT, ITEM, ORDER, PRICE, QUANTITY, TIMESTAMP
from training.config import TrainConfig

#: Settings that fit the small shop of `make_shop` in a second and still find its patterns.
SHOP_CONFIG = TrainConfig(als_factors=(8,), als_iterations=10, bundle_min_baskets=5, bundle_min_lift=1.5,
                          threads=1)


def make_transactions(rows: Iterable[tuple]) -> pd.DataFrame:
    """Transactions from tuples (client, item, 'YYYY-MM-DD'[, order=None, quantity=1.0, price=NaN]).

    The order defaults to "<client>|<date>", as the loader does; dtypes are the canonical ones
    (str ids, datetime64[ns] timestamp, float64 quantity and price).
    """
    records = []
    for row in rows:
        client, item, date, order, quantity, price = (*row, *(None, 1.0, np.nan)[len(row) - 3 :])
        records.append(
            (str(client), str(item), date, f"{client}|{date[:10]}" if order is None else str(order), quantity, price)
        )
    frame = pd.DataFrame(records, columns=[CLIENT, ITEM, TIMESTAMP, ORDER, QUANTITY, PRICE])
    return frame.astype(
        {
            CLIENT: "str",
            ITEM: "str",
            TIMESTAMP: "datetime64[ns]",
            ORDER: "str",
            QUANTITY: np.float64,
            PRICE: np.float64,
        }
    )


def make_shop(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A small synthetic shop whose right answers are known (transactions, items, packages).

    - chips and salsa are always bought in the same basket (a bundle pattern);
    - 30 clients buy the 3.00 coffee (250 G, private label) first and move to the 5.00 coffee later
      (its 500 G pack: a trade-up); the 8.00 coffee is the national brand's 500 G, bread_plus the
      national brand of the bread (better-brand upsells);
    - everyone buys milk weekly; client "due" stopped 20 days before the end (due for milk);
    - clients "basic1".."basic5" hold the basic care package; the premium tier exists.
    """
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01")
    rows: list[tuple] = []

    def buy(client: str, item: str, day: int, price: float) -> None:
        date = (start + pd.Timedelta(days=int(day))).strftime("%Y-%m-%d")
        rows.append((client, item, date, None, 1.0, price))

    prices = {"milk": 1.0, "bread": 1.5, "bread_plus": 3.0, "coffee": 3.0, "coffee_plus": 5.0, "coffee_top": 8.0,
              "chips": 2.0, "salsa": 3.0, "printer": 100.0, "cartridge": 20.0, "soap": 2.5, "tea": 2.0,
              "care_basic": 10.0, "care_premium": 30.0, "discontinued": 4.0}
    clients = [f"c{i:02d}" for i in range(60)] + ["due"] + [f"basic{i}" for i in range(1, 6)]
    for n, client in enumerate(clients):
        last_milk = 100 if client == "due" else 119
        for day in range(n % 7, last_milk + 1, 7):
            buy(client, "milk", day, 1.0)
            if rng.random() < 0.4:
                buy(client, "bread", day, 1.5)
        if n < 40:
            for day in rng.choice(np.arange(1, 119), size=3, replace=False):
                buy(client, "chips", day, 2.0)
                buy(client, "salsa", day, 3.0)
        if n < 30:
            buy(client, "coffee", 5 + n, 3.0)
            buy(client, "coffee_plus", 70 + n, 5.0)
        elif n < 45:
            buy(client, "coffee", 10 + n, 3.0)
        if n % 3 == 0:
            buy(client, "tea", 30 + n, 2.0)
        if n % 4 == 0:
            buy(client, "soap", 20 + n, 2.5)
            buy(client, "discontinued", 21 + n, 4.0)
        if n % 10 == 0:
            buy(client, "printer", 15, 100.0)
            buy(client, "cartridge", 40, 20.0)
        if client.startswith("basic") or n % 6 == 0:
            buy(client, "care_basic", 3, 10.0)
        if n % 12 == 0 and not client.startswith("basic"):
            buy(client, "care_premium", 50, 30.0)
    transactions = make_transactions(rows)
    sub = {"milk": "dairy", "bread": "bakery", "bread_plus": "bakery", "coffee": "coffee", "coffee_plus": "coffee",
           "coffee_top": "coffee", "chips": "snacks", "salsa": "dips", "printer": "printers", "cartridge": "ink",
           "soap": "hygiene", "tea": "tea", "care_basic": "care", "care_premium": "care", "discontinued": "hygiene"}
    sizes = {"coffee": "250 G", "coffee_plus": "500 G", "coffee_top": "500 G", "bread": "500 G",
             "bread_plus": "500 G", "milk": "1 L", "chips": "150 G", "salsa": "300 G"}
    items = pd.DataFrame({
        ITEM: list(prices),
        "name": [name.replace("_", " ").title() for name in prices],
        "category": ["services" if sub[n] == "care" else "goods" for n in prices],
        "subcategory": [sub[n] for n in prices],
        "price": list(prices.values()),
        "brand": ["Private" if n in ("coffee", "coffee_plus", "bread") else "National" for n in prices],
        "package_size": [sizes.get(n) for n in prices],
        "kind": ["service" if sub[n] == "care" else "product" for n in prices],
        "tier": ["basic" if n == "care_basic" else "premium" if n == "care_premium" else None for n in prices],
        "in_stock": [n != "discontinued" for n in prices],
    })
    packages = pd.DataFrame({"package_id": ["pkg_basic", "pkg_premium"], "name": ["Care Basic", "Care Premium"],
                             "items": [["care_basic"], ["care_premium"]], "tier": ["basic", "premium"],
                             "price": [10.0, 30.0]})
    return transactions, items, packages


def make_messy_shop(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A synthetic shop with every defect issue 11 quotes from real data (transactions, items):

    - three codes of one soda under one name (`soda_a`, `soda_b`, `soda_c`), and its 2 L pack;
    - non-merchandise: a bag fee in most baskets at a constant 0.10, a coupon line, gasoline, a
      `kind=fee` deposit; an item only ever sold at 0 (`freebie`);
    - two rare items bought together in three baskets only (`rare_x`, `rare_y`);
    - staples bought by everyone (`milk`, `bananas`), which must never be flagged;
    - a private-label 16 OZ cereal and the national brand's (`cereal`, `cereal_national`).
    Synthetic: for tests only.
    """
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01")
    rows: list[tuple] = []
    for n in range(80):
        client = f"m{n:02d}"
        for week in range(16):
            day = (start + pd.Timedelta(days=7 * week + n % 7)).strftime("%Y-%m-%d")
            order = f"{client}-{week}"
            basket = ["milk", "bananas", "bag_fee"]
            if n % 2 == 0:
                basket.append(["soda_a", "soda_b", "soda_c"][week % 3])
            if n % 3 == 0 and week % 2 == 0:
                basket.append("cereal")
            if n % 5 == 0 and week % 4 == 0:
                basket += ["chips", "salsa"]
            if n % 7 == 0 and week == 3:
                basket += ["coupon", "gasoline"]
            if n % 2 == 1 and week == 8:
                basket.append("soda_2l")
            if n < 3 and week == 5:
                basket += ["rare_x", "rare_y"]
            if n % 11 == 0 and week % 5 == 1:
                basket += ["cereal_national", "freebie", "deposit"]
            for item in basket:
                price = {"bag_fee": 0.10, "freebie": 0.0}.get(item, float(PRICES[item] * rng.uniform(0.9, 1.1)))
                rows.append((client, item, day, order, 1.0, round(price, 2)))
    items = pd.DataFrame({
        ITEM: list(PRICES),
        "name": ["Milk 1 L", "Bananas", "Carrier Bag", "Sft Drnk 1 L", "Sft Drnk 1 L", "Sft Drnk  1 L", "Sft Drnk 2 L",
                 "Cereal 16 OZ", "Cereal 16 OZ National", "Chips", "Salsa", "Coupons/Store & Mfg",
                 "Gasoline-Reg Unleaded", "Rare X", "Rare Y", "Freebie", "Bottle Return"],
        "category": ["DAIRY", "PRODUCE", "CHECKOUT", *["GROCERY"] * 8, "COUPON", "FUEL", "GROCERY", "GROCERY",
                     "GROCERY", "GROCERY"],
        "subcategory": ["MILK", "FRUIT", "CHECKOUT", *["SOFT DRINKS"] * 4, "CEREAL", "CEREAL", "SNACKS", "DIPS",
                        "COUPON/MISC ITEMS", "FUEL", "RARE", "RARE", "FREE", "RETURNS"],
        "product_type": ["MILK", "BANANAS", "CARRIER BAGS", *["SODA"] * 4, "CEREAL", "CEREAL", "CHIPS", "SALSA",
                         "COUPONS", "GASOLINE", "RARE X", "RARE Y", "FREE", "RETURNS"],
        "package_size": ["1 L", None, None, "1 L", "1 L", "1 L", "2 L", "16 OZ", "16 OZ", "200 G", "300 G",
                         None, None, None, None, None, None],
        "brand": ["National", None, None, "National", "National", "National", "National", "Private", "National",
                  "National", "National", None, None, None, None, None, None],
        "kind": ["product"] * 16 + ["fee"],
    })
    return make_transactions(rows), items


PRICES = {"milk": 1.0, "bananas": 0.6, "bag_fee": 0.1, "soda_a": 1.2, "soda_b": 1.3, "soda_c": 1.25, "soda_2l": 2.0,
          "cereal": 3.0, "cereal_national": 4.5, "chips": 2.0, "salsa": 3.0, "coupon": 1.0, "gasoline": 30.0,
          "rare_x": 9.0, "rare_y": 7.0, "freebie": 0.0, "deposit": 0.25}
