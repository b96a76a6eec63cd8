"""Reasons a CRM user can read aloud: every suggestion says why it is there, truly.

Rules every text here follows (issue 11, and the audit checks them):
- it never names the suggested item itself (callers pass another group's item as the anchor);
- counts a person can check, not percentages of tiny bases ("in 41 of 1,203 baskets with Milk");
- "regularly" only from three purchases up;
- a cold-start reason says what it really is (popular with whom, over which period);
- money is written with the model's currency (`CURRENCY` when it was trained).
"""
from __future__ import annotations

import math

#: Purchases from which an item is "bought regularly".
REGULAR_FROM = 3
#: Shared baskets below which "bought together" is no evidence worth quoting.
MIN_TOGETHER = 3


def money(amount: float, currency: str = "") -> str:
    """1.3 -> "1.30"; with a symbol ("$") before the number, with a code ("EUR") after it."""
    text = f"{abs(amount):,.2f}"
    sign = "-" if amount < 0 else ""
    if not currency:
        return sign + text
    if currency.isalpha() and len(currency) > 1:
        return f"{sign}{text} {currency}"
    return f"{sign}{currency}{text}"


def bought_together(anchor: str, together: int, anchor_baskets: int) -> str:
    return f"in {together:,} of {anchor_baskets:,} baskets with {anchor}"


def clients_like_you(anchor: str | None) -> str:
    if anchor:
        return f"clients who buy {anchor}, as you do, also buy this"
    return "bought by clients whose purchases resemble yours"


def popular_recently(days: int) -> str:
    return f"popular with all clients over the last {days} days"


def popular_in_segment(segment: str) -> str:
    return f"among the most bought by {segment}-class clients, your segment"


def bought_by(clients: int) -> str:
    """A product offered for its popularity alone (the next basket's last resort)."""
    return f"bought by {clients:,} clients" if clients != 1 else "bought by 1 client"


def due(interval_days: float, days_since: float) -> str:
    return f"due: usually every {interval_days:.0f} days, last {days_since:.0f} days ago"


def bought_before(times: float, days_since: float) -> str:
    """Regular from `REGULAR_FROM` purchases; below that, the plain count."""
    n = int(round(times))
    if n >= REGULAR_FROM:
        return f"bought regularly ({n} times), last {days_since:.0f} days ago"
    count = "once" if n <= 1 else "twice"
    return f"bought {count} before, last {days_since:.0f} days ago"


def upgrade(step: str, current: str, detail: str, difference: float, currency: str = "", moves: int = 0) -> str:
    """An upsell's reason: which step, over what the client buys, for how much more, and how many
    clients took that step (from two)."""
    extra = "" if math.isnan(difference) else f", +{money(difference, currency)}"
    if moves >= 2:
        extra += f"; {moves:,} clients moved up to it"
    if step == "larger_pack":
        return f"the {detail} pack of {current} you buy{extra}"
    if step == "better_brand":
        return f"the national brand of {current} you buy{extra}"
    if step == "higher_tier":
        return f"the next tier up from {current} you buy{extra}"
    return f"a step up from {current} you buy{extra}"


def next_tier(current: str) -> str:
    return f"next tier of your current plan {current}"


def above_tier(current: str) -> str:
    return f"a tier above the next one of your current plan {current}"


def premium_first(segment: str, why: str) -> str:
    return f"premium tier for {segment}-class clients; {why}"


def service_with(anchor: str, together: int, anchor_baskets: int) -> str:
    return f"taken in {together:,} of {anchor_baskets:,} baskets with {anchor}, which you buy"


def service_users(clients: int, segment: str | None) -> str:
    whose = f"; popular with {segment}-class clients" if segment else ""
    return f"used by {clients:,} client{'' if clients == 1 else 's'}{whose}"


def package_fit(anchor: str) -> str:
    return f"builds on {anchor}, which you use"


def package_member(member: str, why: str) -> str:
    """A package the client holds nothing of: why its best member fits them."""
    return f"its {member} is {why}" if why.startswith(("taken", "used")) else f"its {member}: {why}"


def bundle(n_items: int, together: int, anchor: str, anchor_baskets: int, discount: float) -> str:
    return (f"these {n_items} were bought together in {together:,} baskets ({together:,} of {anchor_baskets:,} "
            f"with {anchor}); {100 * discount:.0f} % off as a bundle")


def category_popular(category: str) -> str:
    return f"popular in {category}"
