"""Turn path, query and body input into validated models, or into 400/413/415/422 problems."""
from __future__ import annotations

import json
from typing import Any, TypeVar

from flask import Request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import ClientDisconnected

from service.problems import Problem, validation_problem
from service.schemas import ID

M = TypeVar("M", bound=BaseModel)


def path_id(name: str, value: str) -> str:
    try:
        return ID.validate_python(value)
    except ValidationError as error:
        problem = validation_problem(error, 400, "invalid-parameter", "path parameter")
        for item in problem.errors:
            item["field"] = name
        problem.detail = f"Invalid path parameter: {name}."
        raise problem from None


def query(request: Request, model: type[M], context: dict[str, Any]) -> M:
    try:
        return model.model_validate(request.args.to_dict(flat=True), context=context)
    except ValidationError as error:
        raise validation_problem(error, 400, "invalid-parameter", "query parameter") from None


def json_body(request: Request, model: type[M], context: dict[str, Any], max_bytes: int,
              array_field: str | None = None) -> M:
    """Parse and validate a JSON body; a bare JSON array is wrapped as {array_field: [...]}."""
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise Problem(415, "unsupported-media-type",
                      f"Send the body as application/json, not {request.mimetype or 'no content type'}.",
                      errors=[{"field": "Content-Type", "message": "must be application/json"}])
    if request.content_length is not None and request.content_length > max_bytes:
        raise Problem(413, "body-too-large", f"The body is larger than {max_bytes} bytes.")
    try:
        raw = request.get_data(cache=False)  # bounded by MAX_CONTENT_LENGTH, chunked bodies too
        if request.content_length is None and len(raw) >= max_bytes and request.stream.read(1):
            raise Problem(413, "body-too-large", f"The body is larger than {max_bytes} bytes.")
    except (OSError, ClientDisconnected):  # the read deadline passed (service.workers), or the client left
        raise Problem(408, "request-timeout", "The body did not arrive in time.",
                      headers={"Connection": "close"}) from None
    if len(raw) > max_bytes:
        raise Problem(413, "body-too-large", f"The body is larger than {max_bytes} bytes.")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise Problem(400, "malformed-json", "The body is not valid JSON.",
                      errors=[{"field": "body", "message": str(error)[:200]}]) from None
    if array_field is not None and isinstance(data, list):
        data = {array_field: data}
    try:
        return model.model_validate(data, context=context)
    except ValidationError as error:
        raise validation_problem(error, 422, "invalid-body", "body") from None
