"""The hot endpoints' plain query reader agrees with the models' validation wherever it answers.

`service.inputs.plain_query` builds a query model without validating it when every parameter is in
its plain form; otherwise it declines and the model validates (and names what is wrong). So for
any query: either it declines, or the model it builds is the one validation builds.
"""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from service.inputs import plain_query
from service.schemas import KIND_CHOICES, SimilarQuery, SuggestionQuery

CONTEXT = {"max_limit": 50, "max_events": 500, "max_cart_items": 100}
TRICKY = ["", " ", "0", "01", "10", "50", "51", "1e1", "10.0", "-1", "true", "false", "True", "1", "yes", "all",
          "cross_sell", "upsell", "next_basket", "revenue", "margin", "relevance", "crm", "email", "push",
          "a,b", "a, ,b", ",", "x" * 128, "x" * 129, "caf\u00e9", "tab\there", "new\nline", "\u2028", "\ud800",
          "a,\x00", " 7", "7 ", "\u0661"]
VALUES = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12))


def _validated(model: type[BaseModel], args: dict[str, str]) -> dict[str, Any] | None:
    try:
        return model.model_validate(args, context=CONTEXT).model_dump(mode="json")
    except ValidationError:
        return None


@pytest.mark.parametrize("model", [SuggestionQuery, SimilarQuery])
@settings(max_examples=600, deadline=None)
@given(args=st.dictionaries(st.sampled_from(["limit", "kind", "category", "exclude", "objective", "explain",
                                             "channel", "visitor_id", "other"]), VALUES, max_size=6))
def test_the_plain_reader_declines_or_agrees_with_validation(model: type[BaseModel], args: dict[str, str]) -> None:
    plain = plain_query(model, args, CONTEXT)
    if plain is not None:
        assert plain.model_dump(mode="json") == _validated(model, args)


def test_the_common_queries_are_read_plainly() -> None:
    for kind in KIND_CHOICES:
        args = {"kind": kind, "limit": "10", "exclude": "a,b", "explain": "false", "objective": "revenue"}
        plain = plain_query(SuggestionQuery, args, CONTEXT)
        assert plain is not None and plain.model_dump(mode="json") == _validated(SuggestionQuery, args)
    assert plain_query(SimilarQuery, {"limit": "5", "visitor_id": "v-1"}, CONTEXT) == SimilarQuery(limit=5, visitor_id="v-1")
    assert plain_query(SuggestionQuery, {}, CONTEXT) == SuggestionQuery()


@pytest.mark.parametrize("args", [{"limit": "51"}, {"limit": "0"}, {"kind": "al"}, {"explain": "1"},
                                  {"category": ""}, {"exclude": "a,\x00"}])
def test_what_is_not_plain_is_left_to_validation(args: dict[str, str]) -> None:
    assert plain_query(SuggestionQuery, args, CONTEXT) is None
