"""Reasons a CRM user can read: every suggestion says why it is there, in the business's words."""
from __future__ import annotations

import math


def _pct(share: float) -> str:
    return f"{100 * share:.0f} %"


def bought_together(anchor: str, confidence: float) -> str:
    return f"bought together with {anchor} in {_pct(confidence)} of baskets"


def clients_like_you(anchor: str | None) -> str:
    if anchor:
        return f"clients like you who buy {anchor} also buy this"
    return "clients like you buy this"


def popular(segment: str | None) -> str:
    return f"popular with {segment} clients" if segment else "popular right now"


def due(interval_days: float, days_since: float) -> str:
    return f"due: usually every {interval_days:.0f} days, last {days_since:.0f} days ago"


def regular(times: float, days_since: float) -> str:
    return f"bought regularly ({times:.0f} times), last {days_since:.0f} days ago"


def bought_before(times: float, days_since: float) -> str:
    """An own item bought too few times to call it regular."""
    if times < 1.5:
        return f"you bought this once, {days_since:.0f} days ago"
    return f"you bought this {times:.0f} times, last {days_since:.0f} days ago"


def upgrade(current: str, difference: float) -> str:
    diff = "" if math.isnan(difference) else f" (+{difference:.2f})"
    return f"premium alternative to {current}{diff}"


def traded_up(count: int, current: str) -> str:
    return f"{count} clients moved up to this from {current}"


def next_tier(current: str) -> str:
    return f"next tier of your current plan {current}"


def premium_first(segment: str) -> str:
    return f"premium tier for {segment}-class clients"


def service_affinity(anchor: str | None) -> str:
    if anchor:
        return f"fits what you buy: often taken with {anchor}"
    return "clients like you use this service"


def bundle(n_items: int, lift: float, discount: float) -> str:
    return f"{n_items} items bought together {lift:.1f}x more than chance; {100 * discount:.0f} % off as a bundle"


def category_popular(category: str) -> str:
    return f"popular in {category}"
