"""Turn path, query and body input into validated models, or into 400/413/415/422 problems."""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from flask import Request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import ClientDisconnected

from eventstore.schema import CHANNELS
from scoring.contract import OBJECTIVES
from service.problems import Problem, validation_problem
from service.schemas import ID, ID_CHARACTERS, KIND_CHOICES, MAX_EXCLUDE, SimilarQuery, SuggestionQuery

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
    """The query as `model`, or a 400 problem naming each field that is wrong.

    The suggestion endpoints' queries are read by `plain_query` first: when every parameter is in
    its plain form (a small decimal limit, a listed kind, ids of plain characters) the model is
    built without validating it again, which costs a few microseconds instead of the tens that
    pydantic's validation with context takes on the hot path. Anything else, and every mistake,
    goes through the model's own validation, so answers and problems are the model's."""
    args = request.args.to_dict(flat=True)
    plain = plain_query(model, args, context)
    if plain is not None:
        return plain
    try:
        return model.model_validate(args, context=context)
    except ValidationError as error:
        raise validation_problem(error, 400, "invalid-parameter", "query parameter") from None


class _NotPlain(Exception):
    """A parameter not in its plain form: the model's validation reads it."""


_LIMIT = re.compile(r"[1-9][0-9]{0,5}")


def _limit(value: str, context: dict[str, Any]) -> int:
    if not _LIMIT.fullmatch(value) or int(value) > context.get("max_limit", 100):
        raise _NotPlain
    return int(value)


def _one_of(choices: Collection[str]) -> Callable[[str, dict[str, Any]], str]:
    def read(value: str, context: dict[str, Any]) -> str:
        if value not in choices:
            raise _NotPlain
        return value
    return read


def _id(value: str, context: dict[str, Any]) -> str:
    if not ID_CHARACTERS.fullmatch(value):
        raise _NotPlain
    return value


def _ids(value: str, context: dict[str, Any]) -> list[str]:
    ids = [part.strip() for part in value.split(",") if part.strip()]
    if len(ids) > MAX_EXCLUDE or not all(ID_CHARACTERS.fullmatch(part) for part in ids):
        raise _NotPlain
    return ids


def _flag(value: str, context: dict[str, Any]) -> bool:
    if value not in ("true", "false"):
        raise _NotPlain
    return value == "true"


#: The hot queries' fields in their plain forms (what the model's validation would accept as is).
_PLAIN: dict[type[BaseModel], dict[str, Callable[[str, dict[str, Any]], Any]]] = {
    SuggestionQuery: {"limit": _limit, "kind": _one_of(KIND_CHOICES), "category": _id, "exclude": _ids,
                      "objective": _one_of(OBJECTIVES), "explain": _flag, "channel": _one_of(CHANNELS)},
    SimilarQuery: {"limit": _limit, "visitor_id": _id},
}


def plain_query(model: type[M], args: dict[str, str], context: dict[str, Any]) -> M | None:
    """`model` built from `args` when every parameter it reads is in its plain form, else None
    (unknown parameters are ignored, as the models ignore them)."""
    readers = _PLAIN.get(model)
    if readers is None:
        return None
    try:
        values = {name: readers[name](value, context) for name, value in args.items() if name in readers}
    except _NotPlain:
        return None
    for name, field in model.model_fields.items():  # given here: pydantic would inspect each factory's
        if name not in values and field.default_factory is not None:  # signature on every construct
            values[name] = field.default_factory()  # type: ignore[call-arg]
    return model.model_construct(**values)


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
