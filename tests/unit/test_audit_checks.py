"""The audit's rules (tests/audit/checks.py) on hand-made answers: a clean answer passes, and each
answer below breaks exactly one rule exactly once, which the audit must name and count once."""
from __future__ import annotations

import copy
from typing import Any

import pytest
from audit.checks import (
    RULES,
    Facts,
    audit_cart_answer,
    audit_client_answer,
    lifts,
    tally,
)
from audit.facts import names_beginning_with

NAMES = {"milk": "Milk 1 GAL", "milk_b": "Milk 1 GAL", "milk_2": "Milk 2 GAL", "bread": "Bread White 20 OZ",
         "cheese": "Cheddar 8 OZ", "gas": "Gasoline-Reg Unleaded", "eggs": "Eggs Large 12 CT",
         "jam": "Jam Strawberry 18 OZ", "cheese_b": "Cheddar 8 OZ", "milk_oat": "Oat Milk 1 GAL",
         "cheese_sliced": "Cheddar 8 OZ Sliced"}
#: milk and milk_b (cheese and cheese_b) are one product under two codes; milk_2 is the larger pack of milk
GROUPS = {"milk": 1, "milk_b": 1, "milk_2": 2, "bread": 3, "cheese": 4, "gas": 5, "eggs": 6, "jam": 7, "cheese_b": 4, "milk_oat": 8,
          "cheese_sliced": 9}
TYPES = {"milk": "MILK", "milk_b": "MILK", "milk_2": "MILK", "bread": "BREAD", "cheese": "CHEESE",
         "gas": "FUEL", "eggs": "EGGS", "jam": "JAM", "cheese_b": "CHEESE",
         "milk_oat": "MILK", "cheese_sliced": "CHEESE"}
BOUGHT = {("c1", "milk"): 5, ("c1", "bread"): 1, ("c1", "eggs"): 3}
BASKETS = {frozenset({"bread", "jam"}): 41, frozenset({"cheese", "eggs"}): 2, frozenset({"bread"}): 1203}


@pytest.fixture
def facts() -> Facts:
    return Facts(names=NAMES, groups=GROUPS, types=TYPES, non_merchandise={"gas": "fuel"},
                 purchases=lambda client, item: BOUGHT.get((client, item), 0),
                 baskets_with=lambda items: BASKETS.get(frozenset(items), 0), min_bundle_baskets=5,
                 client_groups=lambda client: frozenset(GROUPS[i] for c, i in BOUGHT if c == client),
                 client_types=lambda client: frozenset(TYPES[i] for (c, i), n in BOUGHT.items() if c == client and n >= 3),
                 extending_names=names_beginning_with(NAMES.values()))


def item(item_id: str, reason: str, price: float | None = 2.5, **extra: Any) -> dict[str, Any]:
    return {"item_id": item_id, "name": NAMES[item_id], "kind": extra.pop("kind", "cross_sell"), "score": 0.5,
            "price": price, "reason": reason, **extra}


def bundle(members: list[str], reason: str = "in 41 of 1,203 baskets with Bread White 20 OZ; 10 % off",
           price: float = 5.0) -> dict[str, Any]:
    return {"bundle_id": "b1", "item_id": "b1", "name": " + ".join(NAMES[m] for m in members),
            "kind": "bundle", "items": members, "score": 1.0, "price": price, "bundle_price": price * 0.9,
            "reason": reason}


def clean_client() -> dict[str, Any]:
    return {"client_id": "c1", "model_version": "1", "kind": "all", "segment": {}, "cold_start": False,
            "suggestions": {
                "cross_sell": [item("cheese", "bought together with Milk 1 GAL in 41 of 900 baskets"),
                               item("jam", "clients like you who buy Bread White 20 OZ also buy this")],
                "upsell": [item("milk_2", "the 2 GAL pack of what you buy, +1.30", kind="upsell",
                                upgrade_from="milk")],
                "service_package": [],
                "replenishment": [item("milk", "bought regularly (5 times), last 6 days ago", kind="replenishment"),
                                  item("eggs", "due: usually every 7 days, last 8 days ago", kind="replenishment")],
            }}


def clean_cart() -> dict[str, Any]:
    return {"client_id": None, "model_version": "1",
            "complete": [item("jam", "in 41 of 1,203 baskets with Bread White 20 OZ", kind="cart"),
                         item("cheese", "popular right now", kind="cart")],
            "upsell": [item("milk_2", "the 2 GAL pack, +1.30", kind="upsell", upgrade_from="milk")],
            "bundles": [bundle(["bread", "jam"])], "unknown_items": []}


def rules_found(audited) -> list[str]:
    return [finding.rule for finding in audited.findings]


def test_clean_answers_have_no_findings(facts) -> None:
    client, cart = audit_client_answer(clean_client(), facts), audit_cart_answer(clean_cart(), "cart 1", facts)
    assert rules_found(client) == rules_found(cart) == []
    assert (client.suggestions, cart.suggestions) == (5, 4)
    assert client.applicable["upsell_type"] == 1 and client.applicable["regular_once"] == 1
    assert cart.applicable["bad_bundle"] == 1


def broken_client(change) -> dict[str, Any]:
    answer = clean_client()
    change(answer["suggestions"])
    return answer


CLIENT_BREAKS = {
    "same_group in one list": ("same_group", lambda s: s["cross_sell"].append(
        item("cheese_b", "clients like you buy this"))),
    "same_group across sections": ("same_group", lambda s: s["replenishment"].append(
        item("cheese", "due: usually every 9 days, last 10 days ago", kind="replenishment"))),
    "self_naming": ("self_naming", lambda s: s["cross_sell"].__setitem__(0, item(
        "cheese", "bought together with cheddar 8 oz in 9 % of baskets"))),
    "non_merchandise": ("non_merchandise", lambda s: s["replenishment"].append(
        item("gas", "due: usually every 7 days, last 9 days ago", kind="replenishment"))),
    "price zero": ("price", lambda s: s["cross_sell"][0].__setitem__("price", 0.0)),
    "price null unexplained": ("price", lambda s: s["cross_sell"][0].__setitem__("price", None)),
    "upsell of another type": ("upsell_type", lambda s: s["upsell"].__setitem__(0, item(
        "bread", "premium alternative to Milk 1 GAL (+1.00)", kind="upsell", upgrade_from="milk"))),
    "upsell naming nothing": ("upsell_type", lambda s: s["upsell"][0].pop("upgrade_from")),
    "regular bought once": ("regular_once", lambda s: s["replenishment"].append(
        item("bread", "bought regularly (1 times), last 158 days ago", kind="replenishment"))),
    "cross-sell of a group bought before": ("owned_group", lambda s: s["cross_sell"].append(
        item("bread", "clients like you buy this"))),
    "cross-sell of another brand of a type bought regularly": ("owned_group", lambda s: s["cross_sell"].append(
        item("milk_oat", "clients like you buy this"))),
    "bad bundle in service_package": ("bad_bundle", lambda s: s["service_package"].append(
        bundle(["cheese", "eggs"], "2 items bought together 3.1x more than chance"))),
}


@pytest.mark.parametrize("case", CLIENT_BREAKS)
def test_each_broken_client_answer_breaks_its_rule_once(facts, case: str) -> None:
    rule, change = CLIENT_BREAKS[case]
    assert rules_found(audit_client_answer(broken_client(change), facts)) == [rule]


def test_a_name_inside_another_items_longer_name_is_not_self_naming(facts) -> None:
    answer = clean_client()
    answer["suggestions"]["cross_sell"][0]["reason"] = "in 12 of 40 baskets with Cheddar 8 OZ Sliced"
    assert rules_found(audit_client_answer(answer, facts)) == []
    answer["suggestions"]["cross_sell"][0]["reason"] = "in 12 of 40 baskets with Cheddar 8 OZ Sliced or Cheddar 8 OZ"
    assert rules_found(audit_client_answer(answer, facts)) == ["self_naming"]


def test_a_name_inside_a_word_is_not_self_naming(facts) -> None:
    answer = clean_client()
    answer["suggestions"]["cross_sell"][1].update(name="Jam", reason="in 6 of 54 baskets with Pajamas 2 CT")
    assert rules_found(audit_client_answer(answer, facts)) == []
    answer["suggestions"]["cross_sell"][1]["reason"] = "in 6 of 54 baskets with Jam, and Pajamas"
    assert rules_found(audit_client_answer(answer, facts)) == ["self_naming"]


def test_a_null_price_with_a_reason_for_it_passes(facts) -> None:
    answer = clean_client()
    answer["suggestions"]["cross_sell"][0].update(price=None, price_reason="no sale in the last 90 days")
    assert rules_found(audit_client_answer(answer, facts)) == []


CART_BREAKS = {  # members, reason (None: a plain one), what the finding says
    "non-merchandise member": (["bread", "gas"], None, "is not merchandise (fuel)"),
    "two members of one group": (["milk", "milk_b"], None, "2 members of one group"),
    "incredible lift": (["bread", "jam"], "3 items bought together 2161.3x more than chance", "lift 2161.3x"),
    "too few baskets": (["cheese", "eggs"], None, "2 basket(s) hold all members (minimum 5)"),
    "a count the data does not bear out": (["bread", "jam"], "in 52 of 1,203 baskets with Bread White 20 OZ",
                                           "the reason says 52 baskets hold them all, the data 41"),
    "an anchor count the data does not bear out": (
        ["bread", "jam"], "these 2 were bought together in 41 baskets (41 of 999 with Bread White 20 OZ); 10 % off",
        "the reason says 999 baskets hold 'Bread White 20 OZ', the data 1,203"),
}


@pytest.mark.parametrize("case", CART_BREAKS)
def test_each_bad_bundle_is_one_finding(facts, case: str) -> None:
    members, reason, says = CART_BREAKS[case]
    answer = clean_cart()
    answer["bundles"] = [bundle(members, reason) if reason else bundle(members)]
    audited = audit_cart_answer(answer, "cart 1", facts)
    assert rules_found(audited) == ["bad_bundle"]
    assert says in audited.findings[0].detail


def test_the_services_bundle_reason_is_read_for_its_counts(facts) -> None:
    answer = clean_cart()
    answer["bundles"] = [bundle(["bread", "jam"], "these 2 were bought together in 41 baskets (41 of 1,203 with "
                                                  "Bread White 20 OZ); 10 % off as a bundle")]
    assert rules_found(audit_cart_answer(answer, "cart 1", facts)) == []


def test_a_cart_checks_each_list_on_its_own(facts) -> None:
    answer = clean_cart()
    answer["complete"].append(item("milk_2", "clients like you buy this", kind="cart"))  # also the upsell: fine
    assert rules_found(audit_cart_answer(answer, "cart 1", facts)) == []
    answer["complete"].append(item("milk_2", "clients like you buy this", kind="cart"))  # twice in one list
    assert rules_found(audit_cart_answer(answer, "cart 1", facts)) == ["same_group"]


def test_a_completion_of_a_group_in_the_cart_is_a_finding(facts) -> None:
    answer = clean_cart()
    assert rules_found(audit_cart_answer(answer, "cart 1", facts, cart=["bread", "milk"])) == []
    assert rules_found(audit_cart_answer(answer, "cart 1", facts, cart=["bread", "jam"])) == ["owned_group"]


def test_regularly_to_an_anonymous_cart_is_a_finding(facts) -> None:
    answer = clean_cart()
    answer["complete"][1]["reason"] = "you buy this regularly"
    assert rules_found(audit_cart_answer(answer, "cart 1", facts)) == ["regular_once"]


def test_regularly_counts_the_known_clients_baskets(facts) -> None:
    answer = clean_cart()
    answer["client_id"] = "c1"
    answer["complete"].append(item("eggs", "you buy this regularly", kind="cart"))  # 3 baskets: true
    assert rules_found(audit_cart_answer(answer, "cart 1", facts)) == []


def test_lift_figures_are_read_but_not_pack_sizes() -> None:
    assert lifts("3 items bought together 2161.3x more than chance") == [2161.3]
    assert lifts("1,204x the usual; Water 24x16.9 OZ") == [1204.0]


def test_tally_counts_per_thousand_suggestions(facts) -> None:
    audited = audit_client_answer(broken_client(CLIENT_BREAKS["price zero"][1]), facts)
    table = tally(audited)
    assert set(table) == set(RULES)
    assert table["price"] == {"findings": 1, "per_1000": 200.0, "applicable": 5}
    assert all(row["findings"] == 0 for rule, row in table.items() if rule != "price")


def test_the_rules_do_not_change_the_answer(facts) -> None:
    answer = clean_client()
    before = copy.deepcopy(answer)
    audit_client_answer(answer, facts)
    assert answer == before
