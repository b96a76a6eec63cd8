"""The data contract: canonical column names and the in-memory shape every part agrees on.

Everything downstream of `features.loader` sees purchase histories only in this shape, so the
trainer, the evaluation harness and the scoring code never care where the data came from.

In memory (after `features.loader.load_dataset`):

transactions  one row per purchase line
    client_id  str            who bought
    item_id    str            what
    timestamp  datetime64[ns] when (naive, UTC)
    order_id   str            the basket; defaults to "<client_id>|<YYYY-MM-DD>"
    quantity   float64        > 0 a purchase; <= 0 a return or cancellation (never a positive)
    price      float64        unit price paid, NaN when unknown
items         item_id str, and optionally name, category, subcategory, brand, price (float),
              kind ("product" | "service"), tier (ordered level), margin (float), in_stock (bool)
clients       client_id str, and any attributes
packages      package_id str, name str, items (list of item ids, parsed from "a|b|c"), tier, price
"""
from __future__ import annotations

CLIENT = "client_id"
ITEM = "item_id"
TIMESTAMP = "timestamp"
ORDER = "order_id"
QUANTITY = "quantity"
PRICE = "price"

TRANSACTION_REQUIRED = (CLIENT, ITEM, TIMESTAMP)
TRANSACTION_OPTIONAL = (ORDER, QUANTITY, PRICE)

ITEM_REQUIRED = (ITEM,)
ITEM_OPTIONAL = ("name", "category", "subcategory", "brand", "price", "kind", "tier", "margin", "in_stock")

CLIENT_REQUIRED = (CLIENT,)

PACKAGE = "package_id"
PACKAGE_REQUIRED = (PACKAGE, "name", "items")
PACKAGE_OPTIONAL = ("tier", "price")

KIND_PRODUCT = "product"
KIND_SERVICE = "service"

TABLES = ("transactions", "items", "clients", "packages")
