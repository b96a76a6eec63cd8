"""A client's profile for the CRM card: what the model knows of them besides suggestions."""
from __future__ import annotations

from typing import Any

from scoring.contract import ClientChanges, client_value_of
from service import client_state
from service.loop.assignment import CONTROL, assign
from service.runtime import Runtime

DUE_LIST = 10


def client_profile(rt: Runtime, client_id: str) -> dict[str, Any]:
    """Segments now and a period ago, transitions, value figures, replenishments due, service tiers held and
    the client's group. A client the model never saw is `known: false` with empty figures, not an error: the
    CRM may ask before the next training has their first purchases."""
    model = rt.serving_model()
    recommender = client_state.fetch(rt.redis.connection, model.recommender, client_id)
    known = recommender.knows_client(client_id)
    changes = isinstance(recommender, ClientChanges) and known
    value_of = client_value_of(recommender)
    settings = rt.settings
    variant = assign(settings.tenant, settings.assignment_salt, client_id, settings.control_share, settings.arms)
    due = [{"item_id": s["item_id"], "name": s.get("name"), "due_in_days": s.get("due_in_days"),
            "reason": s["reason"]}
           for s in (recommender.suggest(client_id, "replenishment", DUE_LIST) if known else []) if s.get("due")]
    return {"client_id": client_id, "model_version": model.version, "known": known,
            "segment": recommender.segment(client_id),
            "segment_before": recommender.segment_before(client_id) if changes else {},
            "transitions": recommender.transitions(client_id) if changes else [],
            "value": value_of(client_id) if value_of and known else None,
            "due_replenishments": due,
            "holdings": recommender.holdings(client_id) if changes else [],
            "group": "control" if variant == CONTROL else "treatment", "variant": variant}
