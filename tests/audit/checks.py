"""The audit's rules: what a salesperson must never read in an answer, checked one answer at a time.

Pure functions over answers as the HTTP API returns them (decoded JSON) and `Facts` derived from
the data files, never from the model's own labels: a rule the model gets wrong must not pass
because the model also tells the audit what is right. Each rule yields at most one `Finding` per
suggestion, so "findings per 1,000 suggestions" means what it says.

Rules (the issue's list, in its order):
    same_group       two items of one product group in one list, or in two sections of one
                     `kind=all` answer
    self_naming      the reason names the suggested item itself
    non_merchandise  a fee, coupon, fuel, gift card, misc sales line... offered as an item
    price            price missing (null without a field saying why) or zero or below
    upsell_type      an upsell of another product type than what it upgrades (or naming none)
    regular_once     "regularly" said of an item the client bought in fewer than 3 baskets
    bad_bundle       a member that is not merchandise, two members of one group, a lift above
                     `max_lift`, fewer baskets holding all the members than the minimum, or
                     basket counts in its reason that the data does not bear out
One more, beyond the issue's list of counts but from its rule 1:
    owned_group      a cross-sell of a group the client already bought or of a product type it
                     buys regularly, or a cart completion of a group the cart already holds
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: rule -> what the audit page calls it
RULES: dict[str, str] = {
    "same_group": "same-group duplicates",
    "self_naming": "self-naming reasons",
    "non_merchandise": "non-merchandise",
    "price": "missing or zero prices",
    "upsell_type": "upsells of another product type",
    "regular_once": '"regular" items bought fewer than 3 times',
    "bad_bundle": "bad bundles",
    "owned_group": "cross-sells of what the client buys or the cart holds",
}
#: Rules counted beside the issue's seven (reported, but not among its targets).
EXTRA_RULES = ("owned_group",)
#: What a reason must count before it may say "regularly" (the issue: "from three purchases up").
REGULAR_MIN_PURCHASES = 3
#: A reason claiming a habit. Only "regularly": product names hold "Regular" (cola, coffee), not "regularly".
REGULAR = re.compile(r"\bregularly\b", re.IGNORECASE)
#: "2161.3x more than chance", "12 × the usual": a number, then x or ×, then a break (not "24x16.9 OZ").
LIFT = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s?[x×](?=$|[\s;,.)])", re.IGNORECASE)
#: The counts a bundle's reason quotes: "bought together in 32 baskets (32 of 227 with Cucumbers 36 CT); ..."
#: or "in 41 of 1,203 baskets with Milk; ...": baskets holding all of it, baskets holding the anchor, the anchor.
BUNDLE_COUNTS = (re.compile(r"bought together in (?P<together>[\d,]+) baskets \((?:[\d,]+) of (?P<anchor_baskets>[\d,]+) "
                            r"with (?P<anchor>.+)\)(?:;|$)"),
                 re.compile(r"\bin (?P<together>[\d,]+) of (?P<anchor_baskets>[\d,]+) baskets with (?P<anchor>.+?)(?:;|$)"))
#: Sections of a client answer whose items upgrade another item.
UPSELL_SECTIONS = ("upsell",)


@dataclass(frozen=True)
class Finding:
    """One suggestion breaking one rule, with where it was and why."""

    rule: str
    source: str       # "client 1667", "cart 12"
    section: str      # the kind, or complete / upsell / bundles of a cart answer
    item_id: str
    detail: str


@dataclass
class Facts:
    """What the data files say, looked up by item id (and client for purchase counts).

    `groups`, `types` and `non_merchandise` come from the `features` functions run over the
    items and transactions; `purchases(client, item)` counts the distinct baskets the client
    bought the item in; `baskets_with(items)` the baskets holding every one of them;
    `client_groups(client)` the product groups of everything the client bought, `client_types`
    the product types it bought in `REGULAR_MIN_PURCHASES` baskets or more; `extending_names(name)`
    the catalogue's other names that begin with `name` (lower case, single spaces)."""

    names: Mapping[str, str]
    groups: Mapping[str, int]
    types: Mapping[str, str]
    non_merchandise: Mapping[str, str]
    purchases: Callable[[str, str], int]
    baskets_with: Callable[[Sequence[str]], int]
    min_bundle_baskets: int
    max_lift: float = 100.0
    client_groups: Callable[[str], frozenset] = lambda client: frozenset()
    client_types: Callable[[str], frozenset] = lambda client: frozenset()
    extending_names: Callable[[str], Sequence[str]] = lambda name: ()


@dataclass
class Audited:
    """One answer's (or several answers') suggestions, findings and, per rule, how many
    suggestions the rule applied to."""

    suggestions: int = 0
    findings: list[Finding] = field(default_factory=list)
    applicable: Counter = field(default_factory=Counter)

    def add(self, other: Audited) -> Audited:
        self.suggestions += other.suggestions
        self.findings += other.findings
        self.applicable.update(other.applicable)
        return self


def shape(entry: Mapping[str, Any]) -> str:
    """"bundle" (mined, has a bundle_id), "package" (other entries with members) or "item"."""
    if "bundle_id" in entry:
        return "bundle"
    return "package" if "items" in entry else "item"


def _plain(text: str) -> str:
    return " ".join(text.lower().split())


def self_naming(entry: Mapping[str, Any], facts: Facts) -> str | None:
    """The reason holds the item's own name as words of its own (as the data spells it, or as
    the answer does), not inside a word ("Lean" in "Cleaners") nor as the start of another
    catalogue name: "Paper Towels" is not named by "the national brand of Paper Towels 107 SQ FT
    you buy", but "Choice Beef" is by "moved up from Choice Beef"."""
    reason = _plain(str(entry.get("reason") or ""))
    for name in {facts.names.get(str(entry["item_id"])), entry.get("name")}:
        if not name:
            continue
        plain = _plain(str(name))
        longer = [other for other in facts.extending_names(plain) if other != plain and other in reason]
        for match in re.finditer(rf"(?<!\w){re.escape(plain)}(?!\w)", reason):
            if not any(reason.startswith(other, match.start()) for other in longer):
                return f"reason {entry.get('reason')!r} names the item {name!r}"
    return None


def price_problem(entry: Mapping[str, Any]) -> str | None:
    """Zero or negative is always wrong; null only without a field saying why (price_reason...)."""
    for key in ("price", "bundle_price") if shape(entry) == "bundle" else ("price",):
        value = entry.get(key)
        if value is None:
            if not explains_missing_price(entry):
                return f"{key} is missing and no field says why"
        elif not isinstance(value, int | float) or isinstance(value, bool):
            return f"{key} is not a number: {value!r}"
        elif value <= 0:
            return f"{key} is {value}"
    return None


def explains_missing_price(entry: Mapping[str, Any]) -> bool:
    """A field such as `price_reason` or `price_note` with some text in it."""
    return any("price" in key and key != "price" and any(word in key for word in ("reason", "note", "why", "missing"))
               and isinstance(value, str) and value.strip() for key, value in entry.items())


def upsell_type(entry: Mapping[str, Any], facts: Facts) -> str | None:
    """An upsell must share its product type with the item it upgrades, and name that item."""
    source = entry.get("upgrade_from")
    if not source:
        return "names no item it upgrades (upgrade_from missing)"
    mine, theirs = facts.types.get(str(entry["item_id"])), facts.types.get(str(source))
    if mine is None or theirs is None:
        return f"product type unknown ({mine!r} from {theirs!r})"
    if mine != theirs:
        return f"{mine!r} offered as an upgrade of {theirs!r} ({facts.names.get(str(source), source)})"
    return None


def regular_once(entry: Mapping[str, Any], client: str | None, facts: Facts) -> str | None:
    """"Regularly" about an item (or, for an upsell, what it upgrades) bought in fewer than 3 baskets."""
    subject = str(entry.get("upgrade_from") or entry["item_id"])
    if client is None:
        return "says 'regularly' to an anonymous cart"
    times = facts.purchases(client, subject)
    if times < REGULAR_MIN_PURCHASES:
        return f"client {client} bought {facts.names.get(subject, subject)!r} in {times} basket(s)"
    return None


def lifts(reason: str) -> list[float]:
    """Every "N x" figure in a reason."""
    return [float(match.replace(",", "")) for match in LIFT.findall(reason)]


def bundle_problems(entry: Mapping[str, Any], facts: Facts) -> str | None:
    """Non-merchandise members, two members of one group, an incredible lift, too few baskets."""
    members = [str(item) for item in entry.get("items") or []]
    problems = [f"member {facts.names.get(m, m)!r} is not merchandise ({facts.non_merchandise[m]})"
                for m in members if m in facts.non_merchandise]
    groups = Counter(facts.groups.get(m, m) for m in members)
    problems += [f"{n} members of one group ({', '.join(repr(facts.names.get(m, m)) for m in members if facts.groups.get(m, m) == g)})"
                 for g, n in groups.items() if n > 1]
    if len(members) < 2:
        problems.append(f"{len(members)} member(s)")
    problems += [f"lift {lift:g}x above {facts.max_lift:g}x" for lift in lifts(str(entry.get("reason") or ""))
                 if lift > facts.max_lift]
    if members:
        baskets = facts.baskets_with(members)
        if baskets < facts.min_bundle_baskets:
            problems.append(f"{baskets} basket(s) hold all members (minimum {facts.min_bundle_baskets})")
        problems += quoted_counts(str(entry.get("reason") or ""), members, baskets, facts)
    return "; ".join(problems) or None


def quoted_counts(reason: str, members: Sequence[str], baskets: int, facts: Facts) -> list[str]:
    """The counts a bundle's reason quotes against the data: the baskets holding every member,
    and the baskets holding the member it names (when exactly one member has that name)."""
    match = next((m for m in (pattern.search(reason) for pattern in BUNDLE_COUNTS) if m), None)
    if match is None:
        return []
    problems = []
    together = int(match["together"].replace(",", ""))
    if together != baskets:
        problems.append(f"the reason says {together:,} baskets hold them all, the data {baskets:,}")
    named = [m for m in members if _plain(facts.names.get(m, m)) == _plain(match["anchor"])]
    if len(named) == 1:
        anchor_baskets, actual = int(match["anchor_baskets"].replace(",", "")), facts.baskets_with(named)
        if anchor_baskets != actual:
            problems.append(f"the reason says {anchor_baskets:,} baskets hold {match['anchor']!r}, the data {actual:,}")
    return problems


def duplicate_of(first: dict[Any, tuple[str, str]], entry: Mapping[str, Any], section: str,
                 facts: Facts) -> str | None:
    """The suggestion's group was already offered (in this list, or in `first`'s other sections);
    else it is remembered in `first`."""
    item_id = str(entry["item_id"])
    group = facts.groups.get(item_id, f"item {item_id}")
    if group not in first:
        first[group] = (section, item_id)
        return None
    where, other = first[group]
    place = "in the same list" if where == section else f"already in {where}"
    return f"same group as {facts.names.get(other, other)!r} ({other}), {place}"


def owned_group(entry: Mapping[str, Any], owned: frozenset, regular_types: frozenset, facts: Facts) -> str | None:
    """A new item must be new: not a group the client bought (cross-sell) or the cart holds
    (completion), nor, in a cross-sell, another brand or size of a product type the client buys
    regularly (that is an upsell or a switch)."""
    item_id = str(entry["item_id"])
    if facts.groups.get(item_id) in owned:
        return "its product group is already bought (or in the cart)"
    kind = facts.types.get(item_id)
    if kind is not None and kind in regular_types:
        return f"another brand or size of {kind!r}, which the client buys regularly"
    return None


#: The sections that offer something new: their items' groups must not be owned already.
NEW_ITEM_SECTIONS = ("cross_sell", "complete")


def audit_sections(sections: Mapping[str, Sequence[Mapping[str, Any]]], source: str, client: str | None,
                   facts: Facts, *, across_sections: bool, owned: frozenset = frozenset(),
                   regular_types: frozenset = frozenset()) -> Audited:
    """Every rule over every suggestion of one answer. `across_sections`: a group may appear in
    one section only (kind=all); otherwise only within each list (a cart's lists). `owned`: the
    groups a new item may not come from (the client's, or the cart's); `regular_types`: the
    product types a cross-sell may not come from (the client's regular ones)."""
    out = Audited()
    first: dict[Any, tuple[str, str]] = {}
    for section, entries in sections.items():
        if not across_sections:
            first = {}
        for entry in entries:
            out.suggestions += 1
            item_id = str(entry.get("item_id") or entry.get("bundle_id") or "")
            checks: list[tuple[str, str | None]] = [("price", price_problem(entry))]
            kind = shape(entry)
            if kind == "item":
                checks += [("same_group", duplicate_of(first, entry, section, facts)),
                           ("self_naming", self_naming(entry, facts)),
                           ("non_merchandise", facts.non_merchandise.get(item_id))]
                if section in UPSELL_SECTIONS or entry.get("kind") == "upsell":
                    checks.append(("upsell_type", upsell_type(entry, facts)))
                if section in NEW_ITEM_SECTIONS:
                    checks.append(("owned_group", owned_group(entry, owned, regular_types, facts)))
                if REGULAR.search(str(entry.get("reason") or "")):
                    checks.append(("regular_once", regular_once(entry, client, facts)))
            elif kind == "bundle":
                checks.append(("bad_bundle", bundle_problems(entry, facts)))
            for rule, problem in checks:
                out.applicable[rule] += 1
                if problem:
                    out.findings.append(Finding(rule, source, section, item_id, problem))
    return out


def audit_client_answer(answer: Mapping[str, Any], facts: Facts) -> Audited:
    """GET /v1/clients/{id}/suggestions: kind=all (sections by kind) or one kind (one list)."""
    suggestions = answer["suggestions"]
    sections = suggestions if isinstance(suggestions, Mapping) else {answer.get("kind", "list"): suggestions}
    client = str(answer["client_id"])
    return audit_sections(sections, f"client {client}", client, facts, across_sections=True,
                          owned=facts.client_groups(client), regular_types=facts.client_types(client))


#: The lists of a cart answer, in the order the widget shows them.
CART_SECTIONS = ("complete", "upsell", "bundles")


def audit_cart_answer(answer: Mapping[str, Any], source: str, facts: Facts,
                      cart: Sequence[str] = ()) -> Audited:
    """POST /v1/cart/suggestions for the items `cart`: each list checked on its own (the lists
    answer different questions); a completion must not repeat a group the cart holds."""
    sections = {name: answer.get(name) or [] for name in CART_SECTIONS}
    client = answer.get("client_id")
    held = frozenset(facts.groups[i] for i in cart if i in facts.groups)
    return audit_sections(sections, source, None if client is None else str(client), facts,
                          across_sections=False, owned=held)


def tally(audited: Audited) -> dict[str, dict[str, float]]:
    """Per rule: findings, findings per 1,000 suggestions, and the suggestions it applied to."""
    found = Counter(f.rule for f in audited.findings)
    per = 1000 / audited.suggestions if audited.suggestions else 0.0
    return {rule: {"findings": found[rule], "per_1000": round(found[rule] * per, 2),
                   "applicable": audited.applicable[rule]} for rule in RULES}


def examples(findings: Iterable[Finding], per_rule: int = 3) -> dict[str, list[Finding]]:
    """The first few findings of each rule (the page quotes them)."""
    out: dict[str, list[Finding]] = {rule: [] for rule in RULES}
    for finding in findings:
        if len(out[finding.rule]) < per_rule:
            out[finding.rule].append(finding)
    return out
