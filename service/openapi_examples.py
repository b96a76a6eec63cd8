"""A request and a response example for every endpoint of the OpenAPI document (Swagger UI shows them).

Written once here, keyed by (method, path), and laid into the document by `add_examples`; the
answers are what the service returns for the catalogue of the test double (tests/support/
service_model_double.py), shortened. tests/integration/test_openapi_examples.py checks that every
operation has its examples and that each request example is accepted by the endpoint's own model.
"""
from __future__ import annotations

from typing import Any

_SUGGESTION = {"item_id": "filters", "name": "Paper filters x100", "kind": "cross_sell", "score": 1.0, "price": 3.0,
               "reason": "Often bought with coffee, milk", "category": "grocery", "position": 1}
_UPSELL = {"item_id": "coffee-premium", "name": "Single-origin coffee 500 g", "kind": "upsell", "score": 0.8,
           "price": 15.0, "reason": "A better choice for your cart", "category": "grocery", "upgrade_from": "coffee",
           "price_difference": 6.0, "position": 1}
_TRACE = {"recommendation_id": "4c2be207bda84fa593e9b6924ec736c9", "variant": "champion"}

#: (method, path) -> {"parameters": {name: value}, "request": body, "response": body}
_VALUE = {"p_alive": 0.93, "p_purchase": 0.81, "expected_purchases": 2.4, "expected_revenue": 96.0,
          "expected_value_per_purchase": 40.0, "clv": 1012.5, "horizon_days": 30.0, "clv_horizon_days": 365.0,
          "as_of": "2018-01-01", "data_end": "2018-01-01"}
_CHANGE = {"trigger": "spend_drop", "action": "retain", "severity": 0.62, "change": -0.62,
           "detail": "spend -62 % against their last 3 months (412.00 -> 156.60 a period)", "as_of": "2018-01-01",
           "period": 0}

EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/docs"): {"response": None},
    ("get", "/healthz"): {"response": {"status": "ok"}},
    ("get", "/metrics"): {"response": None},
    ("get", "/openapi.json"): {"response": None},
    ("get", "/readyz"): {"response": {
        "status": "ready", "model": {"name": "crm-recommender", "alias": "champion", "version": "7",
                                     "source": "registry", "loaded_at": "2026-12-07T15:00:00+00:00"},
        "arms": [{"alias": "champion", "weight": 1.0, "status": "serving", "version": "7", "source": "registry",
                  "loaded_at": "2026-12-07T15:00:00+00:00", "served_by": "champion"}],
        "redis": "up", "event_store": "up"}},
    ("post", "/v1/admin/reload"): {"response": {
        "changed": True, "previous_version": "6", "model_version": "7", "source": "registry",
        "arms": [{"alias": "champion", "changed": True, "previous_version": "6", "model_version": "7",
                  "source": "registry", "error": None}]}},
    ("post", "/v1/cart/suggestions"): {
        "request": {"items": ["coffee"], "limit": 3, "visitor_id": "v-9f2c"},
        "response": {**_TRACE, "visitor_id": "v-9f2c", "client_id": None, "model_version": "7",
                     "complete": [{**_SUGGESTION, "reason": "Completes your basket"}], "upsell": [_UPSELL],
                     "bundles": [{"bundle_id": "coffee-starter", "name": "Coffee starter kit",
                                  "items": ["coffee", "filters", "mug"], "price": 18.0, "bundle_price": 15.3,
                                  "score": 0.6, "reason": "Save 15% on coffee, filters and a mug together",
                                  "position": 1}],
                     "unknown_items": []}},
    ("delete", "/v1/clients/{client_id}"): {
        "parameters": {"client_id": "c3"},
        "response": {"client_id": "c3", "erased_at": "2026-12-07T15:00:00+00:00", "events_deleted": 12,
                     "cached_answers_deleted": 1, "recent_purchases_deleted": 3,
                     "client_state_deleted": 0,
                     "stored_deleted": {"reactions": 2, "exposures": 4, "events": 12}}},
    ("get", "/v1/clients/{client_id}/group"): {
        "parameters": {"client_id": "c1"},
        "response": {"client_id": "c1", "group": "treatment", "variant": "champion", "control_share": 0.05,
                     "experiment": ""}},
    ("get", "/v1/clients/{client_id}/profile"): {
        "parameters": {"client_id": "c1"},
        "response": {"client_id": "c1", "model_version": "7", "known": True,
                     "segment": {"abc": "A", "activity": "active", "rfm": "A11"},
                     "segment_before": {"abc": "A", "activity": "active", "rfm": "A22"}, "transitions": [_CHANGE],
                     "value": _VALUE, "due_replenishments": [{"item_id": "coffee", "name": "Coffee beans 500 g",
                                                              "due_in_days": -3.0,
                                                              "reason": "due: every 14 days, last 17 days ago"}],
                     "holdings": [], "group": "treatment", "variant": "champion"}},
    ("get", "/v1/tasks"): {
        "parameters": {"type": "spend_drop", "abc": "A", "limit": 1},
        "response": {"model_version": "7", "as_of": "2018-01-01", "total": 1, "tasks": [{
            "task_id": "3f1c2d9a8b7e6f50", "client_id": "c1", "segment": {"abc": "A", "activity": "active", "rfm": "A11"},
            "change": _CHANGE, "action": "retain", "value": _VALUE, "value_at_risk": 70.9, "value_to_gain": None,
            "priority": 70.9, "status": "open", "outcome": None,
            "offers": {**_TRACE, "kind": "replenishment", "suggestions": [_SUGGESTION]}}]}},
    ("post", "/v1/tasks/{task_id}"): {
        "parameters": {"task_id": "3f1c2d9a8b7e6f50"},
        "request": {"status": "done", "by": "manager-7", "note": "called: moving house"},
        "response": {"task_id": "3f1c2d9a8b7e6f50", "known": True, "client_id": "c1", "status": "done",
                     "by": "manager-7", "at": "2026-12-07T15:00:00+00:00"}},
    ("get", "/v1/clients/{client_id}/suggestions"): {
        "parameters": {"client_id": "c1", "kind": "cross_sell", "limit": 2},
        "response": {**_TRACE, "client_id": "c1", "model_version": "7", "kind": "cross_sell",
                     "objective": "relevance", "segment": {"abc": "A", "activity": "active", "rfm": "A11"},
                     "cold_start": False, "suggestions": [_SUGGESTION], "resting": []}},
    ("post", "/v1/events"): {
        "request": {"events": [{"client_id": "c1", "item_id": "coffee", "type": "purchase",
                                "timestamp": "2026-12-07T10:00:00Z", "quantity": 1, "price": 9.0,
                                "event_id": "order-881-1", "order_id": "order-881"}]},
        "response": {"accepted": 1, "duplicates": 0, "purchases": 1, "ids": ["1733565600000-0"]}},
    ("get", "/v1/items/{item_id}/similar"): {
        "parameters": {"item_id": "coffee", "limit": 2},
        "response": {**_TRACE, "item_id": "coffee", "model_version": "7",
                     "suggestions": [{**_SUGGESTION, "kind": "similar", "reason": "Also in grocery"}]}},
    ("post", "/v1/reactions"): {
        "request": {"recommendation_id": "4c2be207bda84fa593e9b6924ec736c9", "item_id": "filters",
                    "reaction": "rejected", "reason": "already_have", "channel": "crm"},
        "response": {"recommendation_id": "4c2be207bda84fa593e9b6924ec736c9", "item_id": "filters",
                     "reaction": "rejected", "duplicate": False, "changes_next_answer": True}},
    ("get", "/v1/reports/effect"): {
        "parameters": {"from": "2026-11-01", "to": "2026-11-30"},
        "response": {"tenant": "default", "period": {"from": "2026-11-01T00:00:00+00:00",
                                                     "to": "2026-12-01T00:00:00+00:00"},
                     "filters": {"kind": None, "channel": None}, "method": "welch", "confidence": 0.95,
                     "power": 0.8, "attribution": {"days": 14}, "definitions": {}, "variants": {},
                     "effects": [], "by_kind": {}, "between_variants": [],
                     "notes": ["no exposure in the period"]}},
}


def add_examples(paths: dict[str, dict[str, Any]]) -> None:
    """Lay the examples into the document's operations (in place)."""
    for path, operations in paths.items():
        for method, operation in operations.items():
            example = EXAMPLES.get((method, path))
            if example is None:
                continue
            for parameter in operation["parameters"]:
                if parameter["name"] in example.get("parameters", {}):
                    parameter["example"] = example["parameters"][parameter["name"]]
            if "request" in example and "requestBody" in operation:
                operation["requestBody"]["content"]["application/json"]["example"] = example["request"]
            ok = next((answer for status, answer in operation["responses"].items() if status.startswith("2")), None)
            if example.get("response") is not None and ok is not None and "content" in ok:
                ok["content"]["application/json"]["example"] = example["response"]
