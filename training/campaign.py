"""Campaign audiences for email and push: `python -m training campaign --trigger T --channel C ...`.

Who: the clients of a trigger as of a date (the `clients` table: segments, transitions, value figures), less
those a campaign must not reach, each exclusion counted with its reason:
- `erased`: erased on request (the service's erasure log, its Redis set, and the event store's erasures);
- `suppressed`: in the `--suppress` file (one client id a line, or a CSV with a client_id column);
- `control`: the persistent control group, by the service's own hash (`eventstore.assignment`), so the
  effect report compares like with like;
- `no_consent`: a `consent_email` / `consent_push` client attribute that is false (when the clients file has it);
- `inactive`: the inactive base (`INACTIVE_DAYS` without a purchase), unless the trigger is `win_back`;
- `fatigued`: sent `FATIGUE_MAX_SHOWS` email or push answers within `FATIGUE_WINDOW_DAYS` (the event store);
- `no_offers`: the model has nothing to offer them for this trigger.
What: up to N offers per client from the registered champion (or `--model`), of the kind that fits the trigger,
with a `recommendation_id` per client; each is stored as an exposure on the channel, so purchases are
attributed to it and the effect report measures the campaign (`GET /v1/reports/effect?channel=email`).
"""
from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from eventstore import EventStore
from eventstore.assignment import in_control
from features.schema import CLIENT
from training.config import TrainConfig

log = logging.getLogger(__name__)

#: trigger -> the kind of offer that fits it (keep what they buy, bring the basket back, step up a tier...)
OFFER_KIND = {"lapsing": "replenishment", "win_back": "next_basket", "won_back": "cross_sell",
              "moved_down": "replenishment", "due_replenishment": "replenishment", "next_tier": "service_package",
              "high_value_at_risk": "next_basket"}
TRIGGERS = tuple(OFFER_KIND)
CHANNELS = ("email", "push")
EXCLUSIONS = ("erased", "suppressed", "control", "no_consent", "inactive", "fatigued", "no_offers")
OFFER_FIELDS = ("item_id", "name", "price", "image_url", "reason")
#: high_value_at_risk: A and B clients whose value at risk (clv × (1 - p_alive)) is in the top tenth
AT_RISK_QUANTILE = 0.9


def candidates(trigger: str, table: pd.DataFrame, moves: pd.DataFrame, model: Any) -> pd.DataFrame:
    """The clients the trigger names, before exclusions (rows of the `clients` table)."""
    by_move = set(moves.loc[moves["trigger"] == trigger, "client_id"]) if trigger in ("won_back", "moved_down") else None
    if by_move is not None:
        return table[table[CLIENT].isin(by_move)]
    if trigger == "lapsing":
        return table[table["activity"] == "lapsing"]
    if trigger == "win_back":
        return table[table["activity"] == "inactive"]
    if trigger == "next_tier":
        holds = getattr(model, "holdings", None)
        return table[[bool(holds(c)) for c in table[CLIENT]]] if holds else table.iloc[:0]
    if trigger == "high_value_at_risk":
        risk = table["clv"] * (1.0 - table["p_alive"])
        return table[table["abc"].isin(["A", "B"]) & (risk >= risk.quantile(AT_RISK_QUANTILE)) & (risk > 0)]
    if trigger == "due_replenishment":
        return table  # those with something due: decided with the offers
    raise ValueError(f"unknown trigger {trigger!r}; one of {', '.join(TRIGGERS)}")


def read_suppressions(path: str | Path | None) -> set[str]:
    """Client ids from a suppression file: a CSV with a client_id column, or one id a line."""
    if path is None:
        return set()
    text = Path(path).read_text(encoding="utf-8").splitlines()
    if text and text[0].strip().lower().split(",")[0] == CLIENT:
        return set(pd.read_csv(path, dtype=str)[CLIENT].dropna().str.strip())
    return {line.strip() for line in text if line.strip()}


def no_consent(clients: pd.DataFrame | None, channel: str) -> set[str]:
    """Clients whose `consent_<channel>` attribute is false (none when the column is absent)."""
    column = f"consent_{channel}"
    if clients is None or column not in clients:
        return set()
    said = clients[column].astype(str).str.strip().str.lower()
    return set(clients.loc[said.isin(["false", "0", "no", "n", "f"]), CLIENT].astype(str))


def fatigued(store: EventStore, tenant: str, config: TrainConfig, now: datetime) -> set[str]:
    """Clients sent FATIGUE_MAX_SHOWS email or push answers within FATIGUE_WINDOW_DAYS."""
    sent = store.exposures_between(tenant, now - timedelta(days=config.fatigue_window_days), now + timedelta(1))
    if sent.empty:
        return set()
    counts = sent[sent["channel"].isin(CHANNELS)].groupby("client_id").size()
    return set(counts[counts >= config.fatigue_max_shows].index.astype(str))


def offers(model: Any, client_id: str, trigger: str, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` offers of the trigger's kind (`due_replenishment`: only the items due)."""
    kind = OFFER_KIND[trigger]
    fetched = model.suggest(client_id, kind, limit if trigger != "due_replenishment" else 3 * limit)
    if trigger == "due_replenishment":
        fetched = [s for s in fetched if s.get("due")]
    return [{**{f: s.get(f) for f in OFFER_FIELDS}, "kind": s.get("kind", kind),
             "item_id": s.get("item_id") or s.get("package_id") or s.get("bundle_id"),
             "product_group": s.get("product_group")} for s in fetched[:limit]]


def select(table: pd.DataFrame, moves: pd.DataFrame, model: Any, *, trigger: str, channel: str, config: TrainConfig,
           clients: pd.DataFrame | None, erased: set[str], suppressed: set[str],
           tired: set[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """(the audience before offers, exclusion counts by reason), in `EXCLUSIONS` order: a client is counted
    under the first reason that excludes them."""
    pool = candidates(trigger, table, moves, model)
    counts = dict.fromkeys(EXCLUSIONS, 0)
    consent = no_consent(clients, channel)
    rules = {"erased": lambda c: c in erased, "suppressed": lambda c: c in suppressed,
             "control": lambda c: in_control(config.tenant, config.assignment_salt, c, config.control_share),
             "no_consent": lambda c: c in consent, "fatigued": lambda c: c in tired}
    keep = []
    for client, activity in zip(pool[CLIENT], pool["activity"], strict=True):
        reason = next((r for r in ("erased", "suppressed", "control", "no_consent") if rules[r](client)), None)
        if reason is None and activity == "inactive" and trigger != "win_back":
            reason = "inactive"
        if reason is None and rules["fatigued"](client):
            reason = "fatigued"
        if reason:
            counts[reason] += 1
        keep.append(reason is None)
    return pool[np.asarray(keep, bool)], counts


def build_rows(audience: pd.DataFrame, model: Any, *, trigger: str, channel: str, limit: int, campaign_id: str,
               counts: dict[str, int], progress: bool = True) -> list[dict[str, Any]]:
    """One row per client with offers (a progress bar on large audiences); clients without offers counted."""
    rows = []
    for client in tqdm(audience[CLIENT], desc=f"{trigger} {channel}", unit="client", disable=not progress,
                       mininterval=1.0):
        found = offers(model, client, trigger, limit)
        if not found:
            counts["no_offers"] += 1
            continue
        rows.append({CLIENT: client, "campaign_id": campaign_id, "recommendation_id": uuid.uuid4().hex,
                     "channel": channel, "trigger": trigger, "offers": found})
    return rows


def exposure_rows(rows: list[dict[str, Any]], *, variant: str, model_version: str | None,
                  sent_at: datetime) -> list[dict[str, Any]]:
    """The event store's exposure rows of a sent campaign (endpoint `campaign`)."""
    return [{"recommendation_id": r["recommendation_id"], "client_id": r[CLIENT], "visitor_id": None,
             "variant": variant, "model_version": model_version, "endpoint": "campaign",
             "kind": OFFER_KIND[r["trigger"]], "channel": r["channel"], "shown_at": sent_at,
             "items": [{"item_id": o["item_id"], "group": o["product_group"], "kind": o["kind"], "position": n}
                       for n, o in enumerate(r["offers"], start=1)]}
            for r in rows]


def write_audience(rows: list[dict[str, Any]], table: pd.DataFrame, out: str | Path, limit: int) -> Path:
    """JSON lines (offers as a list) or CSV (offer_1_name, offer_1_price... columns), with each client's
    segment and value figures beside them."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    facts = table.set_index(CLIENT)[["abc", "activity", "p_purchase", "clv"]]
    enriched = [{**r, **{k: (v.item() if hasattr(v, "item") else v) for k, v in facts.loc[r[CLIENT]].items()}}
                for r in rows]
    if out.suffix in (".jsonl", ".ndjson"):
        with out.open("w", encoding="utf-8") as fh:
            for row in enriched:
                fh.write(json.dumps({**row, "offers": [{f: o[f] for f in OFFER_FIELDS} for o in row["offers"]]},
                                    ensure_ascii=False) + "\n")
    elif out.suffix == ".csv":
        flat = []
        for row in enriched:
            base = {k: v for k, v in row.items() if k != "offers"}
            for n in range(1, limit + 1):
                offer = row["offers"][n - 1] if n <= len(row["offers"]) else {}
                base.update({f"offer_{n}_{f}": offer.get(f) for f in OFFER_FIELDS})
            flat.append(base)
        pd.DataFrame(flat).to_csv(out, index=False)
    else:
        raise ValueError(f"--out {out}: write .csv or .jsonl")
    return out


def send_time() -> datetime:
    return datetime.now(timezone.utc)
