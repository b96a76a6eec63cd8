"""A client's state as one compact binary value, and a model's one-client view of it (`CLIENT_STATE=redis`).

Why: with every client in the model's arrays, each service worker's memory grows with the clients (factors,
histories, 50-deep candidate lists: about 4 KB a client). With `CLIENT_STATE=redis` the trainer writes what
the model knows about each client into Redis (`training.client_state`), the registered model keeps the item
side only, and a request reads its one client's value in the Redis round trip it already makes. Scoring then
answers from a one-client view (`one_client_view`): the item arrays shared, the client arrays one row long,
the client at position 0, so every kind, fallback and candidate list runs unchanged.

One value per client (no pickle, no JSON per client): `MAGIC`, the history's length as uint32, then the
fixed-size rows in the order of the model's layout, then the history's arrays (`RAGGED`), each as raw
little-endian numpy bytes starting on a multiple of 8 bytes (so the arrays read from it are aligned). The
layout (names, dtypes, row shapes) travels once, in `meta["client_state"]`.
"""
from __future__ import annotations

import copy
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scoring.contract import client_state_key
from scoring.crm import BEFORE_ARRAYS
from scoring.state import ModelState

if TYPE_CHECKING:
    from scoring.recommender import Recommender

#: First bytes of every value; the last one is the value format.
MAGIC = b"CS\x01"
_HEAD = struct.Struct("<xI")  # a pad byte, then the history's length: the header is 8 bytes
_ALIGN = 8
#: The client's slice of the history CSR arrays.
RAGGED = ("hist_indices", "hist_count", "hist_recency", "hist_recent", "hist_last_age", "hist_interval")
#: One row per client of these arrays.
CLIENT_ROWS = ("client_factors", "client_abc")
#: Columns of the clients table, as fixed-width strings ("" for none).
SEGMENT_COLUMNS = ("abc", "activity", "rfm")
#: Extras with one row per client: candidate lists, value summaries, segments a period ago.
CLIENT_EXTRA_PREFIXES = ("cand_", "value_")
#: Where the stored state lives, in `meta["client_state"]["store"]`.
REDIS = "redis"


def client_extras(state: ModelState) -> list[str]:
    """The extras that have one row per client."""
    n = len(state.clients)
    return sorted(k for k, v in state.extras.items()
                  if (k.startswith(CLIENT_EXTRA_PREFIXES) or k in BEFORE_ARRAYS.values()) and len(v) == n)


def _segment_strings(state: ModelState, column: str) -> np.ndarray:
    values = state.clients[column] if column in state.clients else pd.Series([""] * len(state.clients))
    return values.astype(object).where(values.notna(), "").astype(str).to_numpy(dtype=str)


def _row_arrays(state: ModelState) -> dict[str, np.ndarray]:
    """Every array with one row per client, by its name in the layout."""
    rows = {name: np.asarray(getattr(state, name)) for name in CLIENT_ROWS}
    rows.update({f"segment.{c}": _segment_strings(state, c) for c in SEGMENT_COLUMNS})
    rows.update({f"extra.{k}": np.asarray(state.extras[k]) for k in client_extras(state)})
    return rows


def layout(state: ModelState) -> dict[str, Any]:
    """What a value holds and in which order: {"rows": [[name, dtype, row shape]], "ragged": [[name, dtype]]}."""
    rows = _row_arrays(state)
    return {"format": MAGIC[-1], "rows": [[name, a.dtype.str, list(a.shape[1:])] for name, a in rows.items()],
            "ragged": [[name, np.asarray(getattr(state, name)).dtype.str] for name in RAGGED]}


class Encoder:
    """Encodes the clients of one fitted state (the row arrays gathered once, not per client)."""

    def __init__(self, state: ModelState) -> None:
        self.state = state
        self.layout = layout(state)
        rows = _row_arrays(state)
        self._rows = [np.ascontiguousarray(rows[name]) for name, _, _ in self.layout["rows"]]
        self._ragged = [np.ascontiguousarray(getattr(state, name)) for name in RAGGED]

    def encode(self, ci: int) -> bytes:
        lo, hi = int(self.state.hist_indptr[ci]), int(self.state.hist_indptr[ci + 1])
        parts = [a[ci:ci + 1].tobytes() for a in self._rows] + [a[lo:hi].tobytes() for a in self._ragged]
        return b"".join([MAGIC, _HEAD.pack(hi - lo), *(part + _padding(len(part)) for part in parts)])


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _ALIGN)


Part = tuple[str, np.dtype, int, tuple[int, ...]]


def parse(spec: Mapping[str, Any]) -> tuple[list[Part], list[tuple[str, np.dtype]]]:
    """The layout of `meta["client_state"]` as decoding walks it: (rows as (name, dtype, count, shape), ragged
    as (name, dtype)). Parsed once per model: decoding a value then costs a few microseconds."""
    rows = [(name, np.dtype(dtype), int(np.prod(shape)) if shape else 1, tuple(shape))
            for name, dtype, shape in spec["rows"]]
    return rows, [(name, np.dtype(dtype)) for name, dtype in spec["ragged"]]


def decode(layout: tuple[list[Part], list[tuple[str, np.dtype]]], blob: bytes) -> dict[str, np.ndarray]:
    """The arrays of one value (`layout` from `parse`), by layout name (row arrays without their client
    dimension). ValueError when the value is not of this layout (another format, truncated, too long)."""
    if blob[:len(MAGIC)] != MAGIC:
        raise ValueError("not a client state value of this format")
    offset = len(MAGIC)
    (n,) = _HEAD.unpack_from(blob, offset)
    offset += _HEAD.size
    rows, ragged = layout
    out: dict[str, np.ndarray] = {}
    for name, dt, count, shape in [*rows, *((name, dt, n, (n,)) for name, dt in ragged)]:
        end = offset + count * dt.itemsize
        if end > len(blob):
            raise ValueError("client state value is truncated")
        out[name] = np.frombuffer(blob, dt, count, offset).reshape(shape)
        offset = end + (-end % _ALIGN)
    if offset != len(blob):
        raise ValueError("client state value does not end where its layout does")
    return out


def one_client_view(rec: Recommender, client_id: str, arrays: Mapping[str, np.ndarray]) -> Recommender:
    """`rec` answering for one client at position 0: the item side shared, the client arrays one row
    long. Shallow copies only, so building it costs microseconds."""
    n = len(arrays["hist_indices"])
    state = copy.copy(rec.state)
    for name in CLIENT_ROWS:
        setattr(state, name, arrays[name][None])
    state.hist_indptr = np.array([0, n], dtype=np.int64)
    for name in RAGGED:
        setattr(state, name, arrays[name])
    state.extras = {**rec.state.extras, **{name.removeprefix("extra."): a[None] for name, a in arrays.items()
                                           if name.startswith("extra.")}}
    catalogue = copy.copy(rec.catalogue)
    catalogue.state = state
    catalogue.client_ids = np.array([client_id], dtype=object)
    catalogue.client_pos = {client_id: 0}
    catalogue.segments = {c: np.array([str(arrays[f"segment.{c}"]) or None], dtype=object) for c in SEGMENT_COLUMNS}
    return rec.viewing(state, catalogue)


def item_side(rec: Recommender, model_id: str, clients: int, sample: int) -> ModelState:
    """The state the registered model keeps in `CLIENT_STATE=redis`: the item side, no client rows, the
    transitions naming their clients, and one client's value (`sample`) for the load-time smoke check."""
    st = rec.state
    encoder = Encoder(st)
    extras = {k: v for k, v in st.extras.items() if k not in set(client_extras(st))}
    if "crm_t_client" in extras:
        extras["crm_t_client_id"] = np.asarray(rec.client_ids[np.asarray(extras.pop("crm_t_client"))], dtype=str)
    extras["client_state_sample"] = np.frombuffer(encoder.encode(sample), dtype=np.uint8)
    f = st.client_factors.shape[1]
    empty = {name: np.empty(0, np.asarray(getattr(st, name)).dtype) for name in RAGGED}
    meta = {**st.meta, "client_state": {"store": REDIS, "id": model_id, "clients": clients,
                                        "sample_client": str(rec.client_ids[sample]), **encoder.layout}}
    kept = {name: getattr(st, name) for name in st.__dataclass_fields__}
    kept.update(clients=st.clients.iloc[:0], meta=meta, extras=extras, client_factors=np.empty((0, f), np.float32),
                client_abc=np.empty(0, np.asarray(st.client_abc).dtype), hist_indptr=np.zeros(1, np.int64), **empty)
    return ModelState(**kept)


def stored_in_redis(meta: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """`meta["client_state"]` when the model's clients live in Redis, else None."""
    spec = meta.get("client_state")
    return spec if isinstance(spec, Mapping) and spec.get("store") == REDIS else None


def key_of(meta: Mapping[str, Any], client_id: str) -> str | None:
    """The Redis key of a client's state for this model, or None when the model holds its clients."""
    spec = stored_in_redis(meta)
    return None if spec is None else client_state_key(str(spec["id"]), client_id)
