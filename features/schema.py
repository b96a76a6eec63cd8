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
items         item_id str, and optionally name, category, subcategory, product_type (the finest
              grouping: what an upsell stays within), brand, package_size ("32 OZ", "2 LB", "12 CT"),
              price (float), kind ("product" | "service" | "fee": a fee is never offered), tier
              (ordered level), margin (float, money per unit), in_stock (bool), image_url, url
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
ITEM_OPTIONAL = ("name", "category", "subcategory", "product_type", "brand", "package_size", "price", "kind",
                 "tier", "margin", "in_stock", "image_url", "url")
#: Item columns that are text, stripped by the loader and carried onto every suggestion.
ITEM_TEXT = ("name", "category", "subcategory", "product_type", "brand", "package_size", "image_url", "url")

CLIENT_REQUIRED = (CLIENT,)

PACKAGE = "package_id"
PACKAGE_REQUIRED = (PACKAGE, "name", "items")
PACKAGE_OPTIONAL = ("tier", "price")

KIND_PRODUCT = "product"
KIND_SERVICE = "service"
KIND_FEE = "fee"
KINDS = (KIND_PRODUCT, KIND_SERVICE, KIND_FEE)

TABLES = ("transactions", "items", "clients", "packages")
