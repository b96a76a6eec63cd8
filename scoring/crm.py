"""What the analytical CRM reads from a model: each client's segments a period ago and the transitions the
trainer found as of its data's end (`training/crm_state.py` writes them; `features/changes.py` finds them).

They travel as plain arrays in `ModelState.extras` (fixed-width strings, no pickle):
`crm_abc_before`, `crm_activity_before`, `crm_rfm_before` per client, and one row per transition in
`crm_t_client` (the client's position; `crm_t_client_id`, its id, when clients live in Redis),
`crm_t_trigger`, `crm_t_action`, `crm_t_severity`, `crm_t_change`,
`crm_t_detail`. `meta["crm"]` holds the date they are as of and the period.

A task is a transition: its id hashes (client, trigger, period), where the period is the number of whole
`period_days` since 1970-01-01 at the date the trainer saw the change. Retrained on the same data or a day
later, the same change keeps its id, so an outcome a manager recorded still applies to it.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

TRANSITION_ARRAYS = ("crm_t_client", "crm_t_trigger", "crm_t_action", "crm_t_severity", "crm_t_change",
                     "crm_t_detail")
BEFORE_ARRAYS = {"abc": "crm_abc_before", "activity": "crm_activity_before", "rfm": "crm_rfm_before"}


def period_of(as_of_days: float, period_days: int) -> int:
    """The period a date falls in: whole `period_days` since the epoch."""
    return int(as_of_days // period_days)


def task_id(client_id: str, trigger: str, period: int) -> str:
    """A task's stable id (20 hex characters: an id the API accepts in a path)."""
    return hashlib.sha256(f"{client_id}|{trigger}|{period}".encode()).hexdigest()[:20]


def segments_before(meta: Mapping[str, Any] | None, extras: Mapping[str, np.ndarray], ci: int | None) -> dict:
    """The client's segments a period before the model's data end ({} without them; None values for a client
    who had not bought yet then)."""
    if not meta or ci is None or BEFORE_ARRAYS["abc"] not in extras:
        return {}
    return {name: (str(extras[key][ci]) or None) for name, key in BEFORE_ARRAYS.items()}


def transitions(meta: Mapping[str, Any] | None, extras: Mapping[str, np.ndarray], client_ids: np.ndarray,
                ci: int | None = None) -> list[dict[str, Any]]:
    """Every transition (or the client at position `ci`'s), each with its stable `task_id`."""
    if not meta or not {"crm_t_client", "crm_t_client_id"} & set(extras):
        return []
    if "crm_t_client_id" in extras:  # clients in Redis (`scoring.client_state`): rows name their client
        names = np.asarray(extras["crm_t_client_id"])
    else:
        names = np.asarray(client_ids, dtype=object)[np.asarray(extras["crm_t_client"])]
    picked = np.flatnonzero(names == client_ids[ci]) if ci is not None else np.arange(len(names))
    period, as_of = int(meta["period"]), str(meta["as_of"])[:10]
    out = []
    for r in picked:
        client = str(names[r])
        trigger = str(extras["crm_t_trigger"][r])
        change = float(extras["crm_t_change"][r])
        out.append({"task_id": task_id(client, trigger, period), "client_id": client, "trigger": trigger,
                    "action": str(extras["crm_t_action"][r]), "severity": round(float(extras["crm_t_severity"][r]), 4),
                    "change": None if not np.isfinite(change) else round(change, 4),
                    "detail": str(extras["crm_t_detail"][r]), "as_of": as_of, "period": period})
    return out


def held_packages(package_items: np.ndarray, package_tier: np.ndarray, package_ids: np.ndarray,
                  package_names: np.ndarray, history: np.ndarray) -> list[dict[str, Any]]:
    """The service packages a client holds: every member item bought (the rule `scoring.kinds.service_package`
    offers the next tier by). `history` is the positions of the items the client bought."""
    valid = package_items >= 0
    owned = np.isin(np.where(valid, package_items, -1), history) & valid
    held = valid.any(1) & (owned.sum(1) == valid.sum(1))
    return [{"package_id": str(package_ids[p]), "name": str(package_names[p]),
             "tier": None if not np.isfinite(package_tier[p]) else float(package_tier[p])}
            for p in np.flatnonzero(held)]
