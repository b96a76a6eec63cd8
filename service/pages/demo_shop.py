"""/app/demo-shop: the cart widget, embedded as a shop embeds it, on the serving model's real items."""
from __future__ import annotations

from typing import Any

from flask import render_template

from service.pages.blueprint import page_context, screens
from service.pages.widget import WIDGET_VERSION, integrity
from service.runtime import runtime

#: How many catalogue items the demo shop lists (the most popular for an unknown visitor).
SHOP_ITEMS = 8


def catalogue_items(limit: int) -> list[dict[str, Any]]:
    """Real items of the model serving: what it offers a visitor it does not know (popular ones)."""
    model = runtime().models.current
    if model is None:
        return []
    items = model.recommender.suggest("demo-shop-visitor", "cross_sell", limit=limit)
    return [item for item in items if item.get("price") is not None]


@screens.get("/demo-shop")
def demo_shop() -> str:
    settings = runtime().settings
    items = catalogue_items(SHOP_ITEMS)
    key = settings.publishable_keys[0] if settings.publishable_keys else ""
    return render_template("demo_shop.html", items=items, cart=[item["item_id"] for item in items[:1]],
                           key=key, key_missing=not key and not settings.auth_disabled,
                           widget_url=f"/widget/{WIDGET_VERSION}/widget.js", integrity=integrity(),
                           **page_context())
