"""The /app screens: the demo shop that shows the cart widget on real catalogue items.

Pages are server-rendered Jinja templates with a little plain JS from /app/static; every answer
carries a strict Content-Security-Policy (no inline script or style), and with AUTH_DISABLED each
page says that it is open to anyone.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template

from service.pages.widget import WIDGET_VERSION, integrity
from service.runtime import runtime

#: The policy of every /app page: what works under it works on a shop with the same policy.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
#: How many catalogue items the demo shop lists (the most popular for an unknown visitor).
SHOP_ITEMS = 8

screens = Blueprint("screens", __name__, url_prefix="/app", template_folder="templates",
                    static_folder="static/app", static_url_path="/static")


@screens.after_request
def _policy(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def page_context() -> dict[str, Any]:
    """What every /app template needs: whether authentication is off (said on every page)."""
    return {"auth_disabled": runtime().settings.auth_disabled}


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
