"""The loop's pure pieces: reading a subject's reaction state, tracing an answer's text, exposure rows."""
from __future__ import annotations

import json

from service.loop import exposures
from service.loop.exposures import Audience
from service.redis.loop_state import parse_state


def test_only_live_suppressions_count() -> None:
    state = {"x:mug": "200", "x:old": "50", "g:coffee-group": "300", "k:upsell": "150", "k:gone": "99",
             "f:milk": "90 2", "fk:cross_sell": "90 1", "x:bad": "not-a-number"}
    live = parse_state(state, now=100.0)
    assert live.items == {"mug"} and live.groups == {"coffee-group"} and live.kinds == {"upsell": 150.0}
    assert parse_state(state, now=1000.0).empty  # everything ended; fatigue counts are never suppressions
    assert parse_state(None).empty and parse_state({}).empty


def test_a_traced_answer_is_the_body_with_its_own_fields_first() -> None:
    body = json.dumps({"client_id": "c1", "suggestions": [{"item_id": "a"}]})
    one, two = (exposures.traced(body, {"recommendation_id": rid, "variant": "champion"}) for rid in ("r1", "r2"))
    assert json.loads(one) == {"recommendation_id": "r1", "variant": "champion", **json.loads(body)}
    assert list(json.loads(two))[:2] == ["recommendation_id", "variant"] and json.loads(two)["recommendation_id"] == "r2"
    assert json.loads(exposures.traced("{}", {"recommendation_id": "r3"})) == {"recommendation_id": "r3"}


def test_an_exposure_row_lists_each_shown_item_with_group_kind_and_position() -> None:
    sections = {"cross_sell": exposures.with_positions([{"item_id": "a", "kind": "cross_sell", "product_group": "g1"},
                                                        {"item_id": "b", "kind": "cross_sell"}]),
                "bundles": [{"bundle_id": "bun-1", "position": 1}]}
    items = exposures.shown_items(sections)
    assert items == [{"item_id": "a", "group": "g1", "kind": "cross_sell", "position": 1},
                     {"item_id": "b", "group": None, "kind": "cross_sell", "position": 2},
                     {"item_id": "bun-1", "group": None, "kind": "bundles", "position": 1}]
    row = exposures.exposure_row("r1", Audience(None, "v-1"), variant="control", model_version="3",
                                 endpoint="cart", kind=None, channel="cart", items=items)
    assert row["visitor_id"] == "v-1" and row["client_id"] is None and row["shown_at"].endswith("+00:00")
    assert exposures.stored_row(row)["shown_at"].tzinfo is not None
    assert Audience(None, "v-1").subject == "visitor:v-1" and Audience("c", "v").subject == "c"
    assert Audience().subject is None


def test_an_exposure_is_stamped_as_isoformat_writes_now() -> None:
    from datetime import datetime, timedelta, timezone

    from service.loop.exposures import now_text

    for _ in range(3):
        before = datetime.now(timezone.utc)
        text = now_text()
        after = datetime.now(timezone.utc)
        stamped = datetime.fromisoformat(text)
        assert before - timedelta(milliseconds=1) <= stamped <= after
        assert text == stamped.isoformat(timespec="milliseconds")


def test_recommendation_ids_are_uuid7_in_time_order_and_unguessable() -> None:
    """32 hex digits as before (the column and every client take them), but a UUIDv7: its first 48
    bits the millisecond it was made, so the exposures' primary key grows at its end."""
    import time
    import uuid

    before = time.time_ns() // 1_000_000
    made = [exposures.new_recommendation_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert len(set(made)) == len(made)
    for text in made[:50]:
        parsed = uuid.UUID(text)
        assert len(text) == 32 and parsed.hex == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= parsed.int >> 80 <= after
    stamps = [int(text[:12], 16) for text in made]
    assert stamps == sorted(stamps)  # ordered by their millisecond; within one, by chance
    # 74 random bits: ids made in one millisecond share nothing but their stamp and fixed bits
    same_ms = [uuid.UUID(text).int & ~(((1 << 48) - 1) << 80) for text in made if text[:12] == made[-1][:12]]
    assert len(set(same_ms)) == len(same_ms)


def test_a_buffered_row_is_read_back_with_its_items_as_the_text_buffered() -> None:
    """The writer's reading of a row (`parse_row`) gives what parsing it whole gives, its items kept
    as their JSON text; ids that hold the very keys it looks for do not fool it."""
    import orjson

    from service.encoding import compact
    from service.redis.exposures import parse_row

    items = [{"item_id": "a", "group": "g1", "kind": "cross_sell", "position": 1},
             {"item_id": 'x","shown_at":"y', "group": None, "kind": "cross_sell", "position": 2}]
    for audience in (Audience("c1"), Audience(None, 'v",\"items\":[1],"shown_at":"z'), Audience('"items":', None)):
        parts = exposures.exposure_parts(exposures.new_recommendation_id(), audience, variant="champion",
                                         model_version="3", endpoint="client", kind="cross_sell", channel="crm")
        text = parts.row(compact(items))
        read = parse_row(text)
        assert isinstance(read["items"], orjson.Fragment)
        assert orjson.loads(orjson.dumps(read)) == orjson.loads(text)
        assert parse_row(text.encode()).keys() == read.keys()
    other = {"shown_at": "2026-12-07T20:39:20.123+00:00", "items": [], "recommendation_id": "r"}  # another order
    assert parse_row(orjson.dumps(other)) == other
