"""The one check of an RFC 9457 problem answer that every HTTP test makes."""
from __future__ import annotations

from typing import Any


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """`response` (a Flask test response) is a problem of `status`, naming `field` when given."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status and body["title"] and body["detail"] and body["type"].startswith("/docs#")
    if field is not None:
        assert field in [error["field"] for error in body["errors"]], body
    return body
