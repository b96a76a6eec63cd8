"""What the serving benchmark sends: the endpoints measured, the ids requests are drawn from, and
each request built twice, the same shape in Python (the open-loop generator) and in Lua (wrk).

Cache COLD requests each have their own cache key (a random known client and a random real item
in `exclude=`); WARM ones ask 50 fixed clients again and again; carts take 1, 5 or 20 of the 200
most bought items for a rotating known client; events are single purchases. The ingest script
(`ingest_script`, the loop's cost) posts batches of purchases, each with its own `event_id`.
"""
from __future__ import annotations

import json
import random
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

CART_SIZES = (1, 5, 20)
WARM_CLIENTS = 50
POPULAR_ITEMS = 200
EXCLUDE_ITEMS = 5000
LIMIT = 10


@dataclass(frozen=True)
class Endpoint:
    """One thing to measure: `group` says how its requests are made (floor, cold, warm, cart, events)."""

    group: str
    kind: str = ""
    cart_items: int = 0

    @property
    def name(self) -> str:
        return {"floor": "GET /healthz (floor)", "cart": f"cart {self.cart_items} item" + "s" * (self.cart_items > 1),
                "events": "POST /v1/events (1)"}.get(self.group, f"{self.kind} {self.group}")

    @property
    def method(self) -> str:
        return "POST" if self.group in ("cart", "events") else "GET"

    @property
    def is_suggestion(self) -> bool:
        return self.group in ("cold", "warm", "cart")


def endpoints() -> list[Endpoint]:
    """In this order on purpose: warm-ups come right before their warm run, events (which change
    clients' recent purchases and so their cache generation) come last."""
    from scoring.contract import KINDS

    found = [Endpoint("floor")]
    for kind in KINDS:
        found += [Endpoint("cold", kind), Endpoint("warm", kind)]
    found += [Endpoint("cart", cart_items=n) for n in CART_SIZES]
    return found + [Endpoint("events")]


@dataclass(frozen=True)
class Pools:
    """Ids the requests are drawn from, all taken from the data the model was trained on."""

    clients: list[str]   # every client, for cold requests, carts and events
    warm: list[str]      # the most active clients, asked again and again
    popular: list[str]   # most bought items, for carts and events
    exclude: list[str]   # many real items, to make each cold request's cache key unique


def load_pools(data: Path) -> Pools:
    from features.loader import as_id, find_table, read_table

    path = find_table(data, "transactions")
    if path is None:
        raise SystemExit(f"{data}: no transactions.parquet or transactions.csv")
    tx = read_table(path)
    clients = as_id(tx["client_id"]).dropna().value_counts()
    items = as_id(tx["item_id"]).dropna().value_counts()
    if len(items) < max(CART_SIZES) or len(clients) < 2:
        raise SystemExit(f"{data}: too few clients or items to benchmark")
    return Pools(clients=sorted(clients.index), warm=list(clients.index[:WARM_CLIENTS]),
                 popular=list(items.index[:POPULAR_ITEMS]), exclude=list(items.index[:EXCLUDE_ITEMS]))


def _url_id(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def suggestions_path(client: str, kind: str) -> str:
    return f"/v1/clients/{_url_id(client)}/suggestions?kind={kind}&limit={LIMIT}"


def _event_time() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def build_request(ep: Endpoint, pools: Pools, rng: random.Random, n: int) -> tuple[str, bytes | None]:
    """(path, body) of the n-th request of `ep` (mirrors `lua_script`)."""
    if ep.group == "floor":
        return "/healthz", None
    if ep.group == "warm":
        return suggestions_path(pools.warm[n % len(pools.warm)], ep.kind), None
    if ep.group == "cold":
        return (suggestions_path(rng.choice(pools.clients), ep.kind)
                + f"&exclude={_url_id(rng.choice(pools.exclude))}"), None
    if ep.group == "cart":
        body = {"client_id": rng.choice(pools.clients), "items": rng.sample(pools.popular, ep.cart_items),
                "limit": LIMIT}
        return "/v1/cart/suggestions", json.dumps(body).encode()
    event = {"client_id": rng.choice(pools.clients), "item_id": rng.choice(pools.popular), "type": "purchase",
             "timestamp": _event_time()}
    return "/v1/events", json.dumps([event]).encode()


def _lua_str(text: str) -> str:
    out = []
    for byte in text.encode():
        char = chr(byte)
        out.append("\\" + char if char in '"\\' else char if 32 <= byte < 127 else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def _lua_list(values: list[str]) -> str:
    return "{" + ",".join(_lua_str(v) for v in values) + "}"


_LUA_COMMON = """
local n = 0
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function init(args) math.randomseed(%(seed)d + (tid or 0)) end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, "p99_us": %%d}\\n', summary.requests,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50),
    latency:percentile(99)))
end
"""

_LUA_REQUEST = {
    "floor": 'return wrk.format("GET", "/healthz")',
    "warm": 'n = n + 1\n  return wrk.format("GET", "/v1/clients/" .. warm[n %% #warm + 1] .. "/suggestions?kind=%(kind)s&limit=%(limit)d")',
    "cold": ('return wrk.format("GET", "/v1/clients/" .. clients[math.random(#clients)] .. '
             '"/suggestions?kind=%(kind)s&limit=%(limit)d&exclude=" .. exclude[math.random(#exclude)])'),
    "cart": """local chosen, seen = {}, {}
  while #chosen < %(cart_items)d do
    local j = math.random(#popular_json)
    if not seen[j] then seen[j] = true; chosen[#chosen + 1] = popular_json[j] end
  end
  return wrk.format("POST", "/v1/cart/suggestions", headers, '{"client_id":' ..
    clients_json[math.random(#clients_json)] .. ',"items":[' .. table.concat(chosen, ",") .. '],"limit":%(limit)d}')""",
    "events": """return wrk.format("POST", "/v1/events", headers, '[{"client_id":' ..
    clients_json[math.random(#clients_json)] .. ',"item_id":' .. popular_json[math.random(#popular_json)] ..
    ',"type":"purchase","timestamp":"%(timestamp)s"}]')""",
}


def lua_script(ep: Endpoint, pools: Pools, seed: int) -> str:
    """A wrk script whose `request()` makes the same kind of request as `build_request`."""
    tables = {
        "clients": [_url_id(c) for c in pools.clients], "warm": [_url_id(c) for c in pools.warm],
        "exclude": [_url_id(i) for i in pools.exclude], "clients_json": [json.dumps(c) for c in pools.clients],
        "popular_json": [json.dumps(i) for i in pools.popular],
    }
    lines = [f"local {name} = {_lua_list(values)}" for name, values in tables.items()]
    lines.append('local headers = {["Content-Type"] = "application/json"}')
    lines.append(_LUA_COMMON % {"seed": seed})
    body = _LUA_REQUEST[ep.group] % {"kind": ep.kind, "limit": LIMIT, "cart_items": ep.cart_items,
                                     "timestamp": _event_time()}
    lines.append(f"request = function()\n  {body}\nend\n")
    return "\n".join(lines)


_LUA_INGEST = """
local token = nil
request = function()
  -- the event ids: the run's prefix, the thread, a random token of this thread, a counter
  if token == nil then token = tostring(math.random(1, 999999999)) end
  n = n + 1
  local events = {}
  for i = 1, %(batch)d do
    events[i] = '{"event_id":"' .. %(prefix)s .. tid .. "-" .. token .. "-" .. n .. "-" .. i ..
      '","client_id":' .. clients_json[math.random(#clients_json)] .. ',"item_id":' ..
      popular_json[math.random(#popular_json)] .. ',"type":"purchase","quantity":1,"price":1.5,"timestamp":"%(timestamp)s"}'
  end
  return wrk.format("POST", "/v1/events", headers, "[" .. table.concat(events, ",") .. "]")
end
"""


def ingest_script(pools: Pools, prefix: str, batch: int, seed: int) -> str:
    """A wrk script posting `batch` purchases per request, each with a unique `event_id` that starts
    with `prefix` (so the rows of one run can be counted in the store)."""
    lines = [f"local {name} = {_lua_list(values)}" for name, values in
             {"clients_json": [json.dumps(c) for c in pools.clients],
              "popular_json": [json.dumps(i) for i in pools.popular]}.items()]
    lines.append('local headers = {["Content-Type"] = "application/json"}')
    lines.append(_LUA_COMMON % {"seed": seed})
    lines.append(_LUA_INGEST % {"batch": batch, "prefix": _lua_str(prefix), "timestamp": _event_time()})
    return "\n".join(lines)
