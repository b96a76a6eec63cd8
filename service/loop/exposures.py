"""Every answer traceable: its recommendation id, variant, model version and positions, recorded.

The answer's JSON text (cached or fresh) is the same for every caller; what makes one answer
this answer (its `recommendation_id`, who it was for, when) is put in front of that text, so a
cache hit still gets its own id without re-encoding the body. The exposure row names each
suggestion shown with its product group (attribution credits a purchase of any item of the
group), its kind and its position.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from service.encoding import compact
from service.loop.assignment import subject_of
from service.redis.trips import Exposure


@dataclass(frozen=True)
class Audience:
    """Whom an answer is for: a client, or an anonymous visitor of the shop's widget."""

    client_id: str | None = None
    visitor_id: str | None = None

    @property
    def subject(self) -> str | None:
        """What assignment, fatigue and attribution key on (see `service.loop.assignment.subject_of`)."""
        return subject_of(self.client_id, self.visitor_id)


#: UUIDv7's fixed bits (RFC 9562): version 7 in bits 76-79, variant 0b10 in bits 62-63.
_V7 = (0x7 << 76) | (0b10 << 62)
_RAND_A = 0xFFF << 64
_RAND_B = (1 << 62) - 1


def new_recommendation_id() -> str:
    """A UUIDv7 (RFC 9562) as 32 hex digits: Unix milliseconds, then 74 random bits.

    Why time-ordered, not uuid4: the id is the exposures table's primary key, and every answer adds
    a row. Random keys land all over the index, so a batch of 500 rows dirtied about 500 of its
    pages, each written whole at the commit; ids in time order fill its last pages. 74 random bits
    still make an id impossible to guess, which reactions rely on."""
    rand = int.from_bytes(os.urandom(10), "big")
    return f"{(time.time_ns() // 1_000_000) << 80 | _V7 | (rand << 64) & _RAND_A | rand & _RAND_B:032x}"


def with_positions(suggestions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each suggestion with its 1-based place in its list."""
    return [{**s, "position": n} for n, s in enumerate(suggestions, start=1)]


def traced(body: str, fields: Mapping[str, Any]) -> str:
    """The answer's JSON text with `fields` first: `{"recommendation_id": ..., <the body's keys>}`."""
    head = json.dumps(dict(fields), separators=(", ", ": "))
    return head[:-1] + ", " + body[1:] if body != "{}" else head


def shown_items(sections: Mapping[str, Iterable[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """What an exposure row lists: per suggestion its id, group, kind (its section) and position."""
    return [{"item_id": s.get("item_id") or s["bundle_id"], "group": s.get("product_group"),
             "kind": s.get("kind") or section,
             "position": s.get("position", n)}
            for section, suggestions in sections.items() for n, s in enumerate(suggestions, start=1)]


_second: list[tuple[int, str]] = [(-1, "")]  # the last whole second formatted, with its text (one tuple,
# replaced whole, so that a thread never reads one second's number with another's text)


def now_text() -> str:
    """Now in UTC as ISO text to the millisecond (as `datetime.isoformat` writes it), formatting
    each second once: every answer is stamped, and isoformat was a tenth of an exposure's cost."""
    now = time.time()
    second, millis = divmod(int(now * 1000), 1000)
    cached_second, text = _second[0]
    if cached_second != second:
        text = datetime.fromtimestamp(second, timezone.utc).isoformat()[:19]
        _second[0] = (second, text)
    return f"{text}.{millis:03d}+00:00"


def exposure_row(recommendation_id: str, audience: Audience, *, variant: str, model_version: str | None,
                 endpoint: str, kind: str | None, channel: str | None,
                 items: list[dict[str, Any]], shown_at: datetime | None = None) -> dict[str, Any]:
    """One row of `eventstore.schema.exposures`, JSON-ready (`shown_at` as ISO text)."""
    at = shown_at.isoformat(timespec="milliseconds") if shown_at is not None else now_text()
    return {"recommendation_id": recommendation_id, "client_id": audience.client_id,
            "visitor_id": audience.visitor_id, "variant": variant, "model_version": model_version,
            "endpoint": endpoint, "kind": kind, "channel": channel, "items": items, "shown_at": at}


def stored_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-ready exposure row as the event store takes it (`shown_at` a datetime)."""
    return {**row, "shown_at": datetime.fromisoformat(row["shown_at"])}


#: Stands for the items in a row's text, which is cut there into the head and tail around them.
_ITEMS = "\x00items\x00"


def exposure_parts(recommendation_id: str, audience: Audience, *, variant: str, model_version: str | None,
                   endpoint: str, kind: str | None, channel: str | None) -> Exposure:
    """An answer's exposure row as text around its items, made before the answer is known: Redis
    completes it with the items cached beside a cached answer (`service.redis.trips`)."""
    row = exposure_row(recommendation_id, audience, variant=variant, model_version=model_version, endpoint=endpoint,
                       kind=kind, channel=channel, items=_ITEMS)  # type: ignore[arg-type]
    head, _, tail = compact(row).partition(compact(_ITEMS))
    return Exposure(recommendation_id, head, tail)


def row_of(exposure: Exposure, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON-ready row of `exposure` with its items (for the paths that write it from Python)."""
    return json.loads(exposure.row(compact(items)))
