"""Attribution (service/effect/attribution.py): which exposure a purchase is owed to.

A purchase of a suggested item, or of an item of its product group, by the same client within
ATTRIBUTION_DAYS after an exposure is owed to the last such exposure before it; anything else is
owed to nothing.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from service.effect.attribution import attribute

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2024-05-01T10:00:00Z")
GROUPS = {"milk-1l": "milk", "milk-2l": "milk", "coffee": "coffee", "tea": None}


def group_of(ids: list[str]) -> list[str | None]:
    return [GROUPS.get(i) for i in ids]


def exposure(rid: str, at: pd.Timestamp, items: list[str], *, client: str | None = "c1", visitor: str | None = None,
             variant: str = "champion", kind: str = "cross_sell", channel: str = "crm") -> dict[str, Any]:
    return {"recommendation_id": rid, "client_id": client, "visitor_id": visitor, "variant": variant, "kind": kind,
            "channel": channel, "shown_at": at,
            "items": [{"item_id": i, "group": GROUPS.get(i), "kind": kind, "position": n} for n, i in enumerate(items)]}


def purchases(*rows: tuple[str | None, str, pd.Timestamp], visitor: str | None = None) -> pd.DataFrame:
    return pd.DataFrame([{"client_id": c, "visitor_id": visitor, "item_id": i, "occurred_at": t, "price": 2.0,
                          "quantity": 1.0} for c, i, t in rows])


def test_the_last_exposure_before_the_purchase_wins() -> None:
    shown = pd.DataFrame([exposure("r1", T0, ["coffee"], kind="cross_sell", channel="email"),
                          exposure("r2", T0 + 2 * DAY, ["coffee"], kind="upsell", channel="push"),
                          exposure("r3", T0 + 5 * DAY, ["coffee"], kind="replenishment")])
    out = attribute(shown, purchases(("c1", "coffee", T0 + 3 * DAY)), group_of=group_of)
    assert out.loc[0, ["recommendation_id", "kind", "channel", "variant", "match"]].tolist() == [
        "r2", "upsell", "push", "champion", "item"]
    assert out.loc[0, "shown_at"] == T0 + 2 * DAY


def test_an_item_of_the_suggested_group_is_attributed_and_the_exact_item_wins_a_tie() -> None:
    shown = pd.DataFrame([exposure("r1", T0, ["milk-1l"]), exposure("r2", T0, ["milk-2l", "coffee"])])
    out = attribute(shown, purchases(("c1", "milk-2l", T0 + DAY), ("c1", "coffee", T0 + DAY)), group_of=group_of)
    assert out["recommendation_id"].tolist() == ["r2", "r2"] and out["match"].tolist() == ["item", "item"]
    later = pd.DataFrame([exposure("r1", T0, ["milk-2l"]), exposure("r2", T0 + DAY, ["milk-1l"])])
    out = attribute(later, purchases(("c1", "milk-2l", T0 + 2 * DAY)), group_of=group_of)
    assert (out.loc[0, "recommendation_id"], out.loc[0, "match"]) == ("r2", "group")


def test_without_groups_only_the_exact_item_counts() -> None:
    shown = pd.DataFrame([exposure("r1", T0, ["milk-1l"])])
    out = attribute(shown, purchases(("c1", "milk-2l", T0 + DAY), ("c1", "milk-1l", T0 + DAY)))
    assert out["recommendation_id"].tolist() == [None, "r1"]


def test_outside_the_window_or_before_the_exposure_nothing_is_attributed() -> None:
    shown = pd.DataFrame([exposure("r1", T0, ["coffee"])])
    out = attribute(shown, purchases(("c1", "coffee", T0 + 14 * DAY), ("c1", "coffee", T0 + 14 * DAY + pd.Timedelta(seconds=1)),
                                     ("c1", "coffee", T0 - pd.Timedelta(seconds=1))), days=14, group_of=group_of)
    assert out["recommendation_id"].tolist() == ["r1", None, None]
    assert out["shown_at"].isna().tolist() == [False, True, True]


def test_another_clients_purchase_or_an_unrelated_item_is_not_attributed() -> None:
    shown = pd.DataFrame([exposure("r1", T0, ["coffee", "tea"])])
    out = attribute(shown, purchases(("c2", "coffee", T0 + DAY), ("c1", "milk-1l", T0 + DAY),
                                     ("c1", "tea", T0 + DAY)), group_of=group_of)
    assert out["recommendation_id"].tolist() == [None, None, "r1"]  # tea has no group: the item itself matches


def test_a_visitors_cart_answer_is_owed_the_visitors_purchase() -> None:
    shown = pd.DataFrame([exposure("r1", T0, ["coffee"], client=None, visitor="w9", kind="cart", channel="cart")])
    out = attribute(shown, pd.concat([purchases((None, "coffee", T0 + DAY), visitor="w9"),
                                      purchases(("c5", "coffee", T0 + DAY), visitor="w9"),
                                      purchases((None, "coffee", T0 + DAY), visitor="w8")], ignore_index=True))
    assert out["recommendation_id"].tolist() == ["r1", "r1", None]


def test_items_as_json_text_and_empty_inputs() -> None:
    row = exposure("r1", T0, ["coffee"])
    row["items"] = '[{"item_id": "coffee", "group": "coffee", "kind": "cross_sell", "position": 0}]'
    assert attribute(pd.DataFrame([row]), purchases(("c1", "coffee", T0 + DAY)))["recommendation_id"].tolist() == ["r1"]
    empty = attribute(pd.DataFrame([row]).iloc[:0], purchases(("c1", "coffee", T0 + DAY)))
    assert empty["recommendation_id"].tolist() == [None]


def test_100k_exposures_attribute_in_seconds() -> None:
    rng = np.random.default_rng(3)
    n, m = 100_000, 100_000
    shown = pd.DataFrame({
        "recommendation_id": [f"r{i}" for i in range(n)], "client_id": [f"c{i}" for i in rng.integers(0, 20_000, n)],
        "visitor_id": None, "variant": "champion", "kind": "cross_sell", "channel": "crm",
        "shown_at": T0 + pd.to_timedelta(rng.integers(0, 30 * 86_400, n), unit="s"),
        "items": [[{"item_id": f"i{j}", "group": f"g{j // 3}", "kind": "cross_sell", "position": k}
                   for k, j in enumerate(rng.integers(0, 3000, 5))] for _ in range(n)]})
    bought = pd.DataFrame({"client_id": [f"c{i}" for i in rng.integers(0, 20_000, m)], "visitor_id": None,
                           "item_id": [f"i{j}" for j in rng.integers(0, 3000, m)],
                           "occurred_at": T0 + pd.to_timedelta(rng.integers(0, 30 * 86_400, m), unit="s")})
    started = time.perf_counter()
    out = attribute(shown, bought, group_of=lambda ids: [f"g{int(i[1:]) // 3}" for i in ids])
    elapsed = time.perf_counter() - started
    assert len(out) == m and out["recommendation_id"].notna().sum() > 0
    assert elapsed < 15, f"{elapsed:.1f} s"  # about 2 s on an idle core
