"""docs/audit.md: the counts per rule, examples of each failure, and ten answers quoted verbatim.

Every figure on the page comes from the run that writes it; nothing here is typed by hand.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit.checks import EXTRA_RULES, RULES, Audited, Facts, Finding, examples, shape, tally

#: What the ten quotes should show, in this order: (answer, section, shape of the entry); None: any.
QUOTE_SLOTS: tuple[tuple[str | None, str | None, str], ...] = (
    ("client", "cross_sell", "item"), ("client", "cross_sell", "item"), ("client", "upsell", "item"),
    ("client", "replenishment", "item"), ("client", "service_package", "item"),
    ("client", "service_package", "package"), ("cart", "complete", "item"), ("cart", "complete", "item"),
    ("cart", "upsell", "item"), (None, None, "bundle"))

#: How each rule is checked, for the page.
RULE_NOTES: dict[str, str] = {
    "same_group": "two items of one product group (features.products.product_groups) in one list, or one group "
                  "in two sections of a kind=all answer",
    "self_naming": "the reason holds the suggested item's own name as whole words (case and spacing ignored), "
                   "other than as the start of another catalogue name (\"Paper Towels\" in \"Paper Towels 107 SQ FT\")",
    "non_merchandise": "the item is flagged by features.merchandise.non_merchandise, or by the audit's own "
                       "keywords (fuel, coupons, gift cards, misc sales, fees, postage, deposits) and categories",
    "price": "price (and a bundle's bundle_price) zero or below, or null without a field saying why",
    "upsell_type": "an upsell whose product type (features.products.product_type_of) differs from the item it "
                   "upgrades (upgrade_from), or that names none",
    "regular_once": "a reason saying \"regularly\" about an item the client bought in fewer than 3 baskets of "
                    "the training data (or said to an anonymous cart)",
    "bad_bundle": "a mined bundle with a non-merchandise member, two members of one group, a lift above the "
                  "ceiling, fewer baskets holding all its members than the minimum, or basket counts in its "
                  "reason the data does not bear out",
    "owned_group": "beyond the issue's seven counts, from its rule 1: a cross-sell of a group the client bought "
                   "before or of a product type it bought in 3 baskets or more, or a cart completion of a group "
                   "the cart holds",
}


@dataclass
class Quotable:
    """A suggestion as answered, with who asked and what a reader needs beside it."""

    answer: str          # "client" or "cart"
    source: str          # "client 1667", "cart 12"
    asked: str           # what was asked, in words
    section: str
    entry: Mapping[str, Any]


@dataclass
class Run:
    """What the page reports: how it was run, and what it found."""

    command: str
    date: str
    data: str
    code: str
    model: str
    version: str
    asked: list[str]
    took: str
    audited: Audited
    by_answer: dict[str, Audited]
    quotable: list[Quotable] = field(default_factory=list)


def choose_quotes(quotable: Sequence[Quotable], seed: int, n: int = 10) -> list[Quotable]:
    """One suggestion per slot of `QUOTE_SLOTS`, drawn (seeded) from different answers; slots
    nothing fills are filled from the rest, so the page always quotes `n` when it can."""
    rng = np.random.default_rng(seed)
    order = [quotable[i] for i in rng.permutation(len(quotable))]
    used: set[str] = set()
    chosen: list[Quotable] = []

    def take(match) -> None:
        for q in order:
            if q.source not in used and match(q):
                used.add(q.source)
                chosen.append(q)
                return

    for answer, section, kind in QUOTE_SLOTS:
        take(lambda q, a=answer, s=section, k=kind: (a is None or q.answer == a) and (s is None or q.section == s)
             and shape(q.entry) == k)
    for _ in range(n - len(chosen)):
        take(lambda q: True)
    return chosen[:n]


def _money(value: Any) -> str:
    return "null" if value is None else f"{value}"


def quote(q: Quotable, facts: Facts, findings: Sequence[Finding]) -> list[str]:
    entry = q.entry
    lines = [f"**{q.section}** for {q.asked}", ""]
    lines.append(f"- item: {entry.get('name')} (`{entry.get('item_id')}`), price {_money(entry.get('price'))}"
                 + (f", bundle price {_money(entry.get('bundle_price'))}" if "bundle_price" in entry else ""))
    if entry.get("upgrade_from"):
        source = str(entry["upgrade_from"])
        lines.append(f"- upgrades: {facts.names.get(source, source)} (`{source}`)")
    if entry.get("items"):
        lines.append("- members: " + "; ".join(f"{facts.names.get(str(i), i)} (`{i}`)" for i in entry["items"]))
    lines.append(f"- reason: \"{entry.get('reason')}\"")
    broken = [f.rule for f in findings if f.source == q.source and f.section == q.section
              and f.item_id == str(entry.get("item_id") or entry.get("bundle_id"))]
    lines.append("- audit: " + ("breaks " + ", ".join(RULES[r] for r in broken) if broken else "passes every rule"))
    lines += ["", "```json", json.dumps(entry, ensure_ascii=False), "```", ""]
    return lines


def page(run: Run, facts: Facts, seed: int) -> str:
    """The whole of docs/audit.md."""
    table = tally(run.audited)
    lines = [
        "# Audit: what a salesperson reads",
        "",
        f"Written by `{run.command}` on {run.date}. Do not edit: run `make audit` again "
        "(tests/audit/run.py; the rules are tests/audit/checks.py, unit-tested in tests/unit/test_audit_checks.py).",
        "",
        "The trained model is served as in production (redis-server and gunicorn with the repository's config) and "
        "asked through the HTTP API; every answer is then checked against facts read off the data files with the "
        "`features` functions, never against the model's own labels.",
        "",
        f"- Data: {run.data}",
        f"- Code: {run.code}",
        f"- Model: `{run.model}` version {run.version}",
        *[f"- Asked: {text}" for text in run.asked],
        f"- Suggestions audited: {run.audited.suggestions:,} "
        f"({', '.join(f'{name}: {a.suggestions:,}' for name, a in run.by_answer.items())})",
        f"- Time: {run.took} (2 gunicorn workers, shared machine)",
        "",
        "## Findings per 1,000 suggestions (target: 0 of each)",
        "",
        "| rule | findings | per 1,000 suggestions | suggestions the rule applied to | checked as |",
        "|---|---:|---:|---:|---|",
    ]
    for rule, title in RULES.items():
        row = table[rule]
        title = f"{title} (extra)" if rule in EXTRA_RULES else title
        lines.append(f"| {title} | {row['findings']:,} | {row['per_1000']:g} | {row['applicable']:,} | "
                     f"{RULE_NOTES[rule]} |")
    total = len(run.audited.findings)
    lines += ["", f"All rules, the extra included: {total:,} findings in {run.audited.suggestions:,} suggestions "
              f"({1000 * total / max(run.audited.suggestions, 1):.2f} per 1,000).", ""]
    failing = {rule: found for rule, found in examples(run.audited.findings).items() if found}
    if failing:
        lines += ["### Examples of each failure", ""]
        for rule, found in failing.items():
            lines.append(f"{RULES[rule]}:")
            lines += [f"- {f.source}, {f.section}: {facts.names.get(f.item_id, f.item_id)} (`{f.item_id}`): {f.detail}"
                      for f in found]
            lines.append("")
    lines += ["## Ten answers, verbatim", "",
              "Drawn (seeded) from different answers of this run: cross-sell, upsell, replenishment, a service, "
              "a service package, cart completion, cart upsell and a bundle. The JSON is the suggestion as the API "
              "returned it.", ""]
    for k, q in enumerate(choose_quotes(run.quotable, seed), start=1):
        body = quote(q, facts, run.audited.findings)
        lines += [f"{k}. {body[0]}", *[f"   {line}" if line else "" for line in body[1:]]]
    return "\n".join(lines).rstrip() + "\n"
