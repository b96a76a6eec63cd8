"""`scoring.client_state`: a client's state as one binary value, and the one-client view answering from it
exactly as the model holding every client does (the synthetic shop's model, every client, every kind)."""
from __future__ import annotations

import json
import tempfile

import numpy as np
import pytest
from prometheus_client import REGISTRY

from scoring import client_state
from scoring.contract import KINDS, client_state_key, client_state_of
from scoring.recommender import Recommender
from service import client_state as service_state
from training.candidates import precompute


@pytest.fixture(scope="module")
def with_lists(model: Recommender) -> Recommender:
    precompute(model, workers=1)
    return model


@pytest.fixture(scope="module")
def item_side(with_lists: Recommender) -> Recommender:
    """The item side as the registry keeps it: saved and mapped back."""
    state = client_state.item_side(with_lists, "run-1", len(with_lists.client_ids), 0)
    with tempfile.TemporaryDirectory() as folder:
        state.save(folder)
        return Recommender.load(folder)  # mapped: readable after the folder is gone


def test_the_item_side_holds_no_client_and_says_where_they_are(with_lists: Recommender,
                                                                item_side: Recommender) -> None:
    assert len(item_side.client_ids) == 0 and item_side.state.client_factors.shape == (0, with_lists.state.client_factors.shape[1])
    assert not any(k.startswith(("cand_", "value_")) for k in item_side.state.extras)
    assert client_state_of(item_side) is item_side and client_state_of(with_lists) is None
    client = str(with_lists.client_ids[3])
    assert item_side.client_state_key(client) == client_state_key("run-1", client) == f"cs:run-1:{{{client}}}"
    assert with_lists.client_state_key(client) is None
    item_side.smoke_check()  # through the sample client it carries
    assert not item_side.knows_client(client)


def test_every_client_gets_the_same_answers_from_its_value(with_lists: Recommender, item_side: Recommender) -> None:
    encoder = client_state.Encoder(with_lists.state)
    other = str(with_lists.item_ids[1])
    for ci, client in enumerate(map(str, with_lists.client_ids)):
        view = item_side.with_client_state(client, encoder.encode(ci))
        assert view.knows_client(client) and not view.knows_client("someone-else")
        for kind in KINDS:
            for options in ({}, {"exclude": [other]}, {"recent_purchases": [other]}, {"objective": "revenue"}):
                assert view.suggest(client, kind, 8, **options) == with_lists.suggest(client, kind, 8, **options)
        assert view.cart([other], client, 5) == with_lists.cart([other], client, 5)
        for method in ("segment", "segment_before", "transitions", "holdings", "client_value"):
            assert json.dumps(getattr(view, method)(client)) == json.dumps(getattr(with_lists, method)(client))
    assert item_side.transitions() == with_lists.transitions() and item_side.transitions()


def test_a_value_of_another_layout_is_refused(with_lists: Recommender, item_side: Recommender) -> None:
    value = client_state.Encoder(with_lists.state).encode(2)
    spec = client_state.parse(item_side.meta["client_state"])
    for broken in (value[:-3], value + b"\0", b"XX" + value[2:], b""):
        with pytest.raises(ValueError):
            client_state.decode(spec, broken)
    assert client_state.decode(spec, value)["client_factors"].shape == with_lists.state.client_factors.shape[1:]


def test_the_service_answers_an_unreadable_or_missing_value_as_an_unknown_client(
        with_lists: Recommender, item_side: Recommender) -> None:
    client = str(with_lists.client_ids[4])

    def count(reason: str) -> float:
        return REGISTRY.get_sample_value("crm_client_state_missing_total", {"reason": reason}) or 0.0

    before = {reason: count(reason) for reason in ("unreadable", "missing", "unavailable")}
    for value, read in ((b"garbage", True), (None, True), (None, False)):
        view = service_state.view(item_side, client, value, read=read)
        assert not view.knows_client(client) and view.segment(client)["abc"] is None
        assert view.suggest(client, "cross_sell", 5) == item_side.suggest("never-seen", "cross_sell", 5)
    assert {reason: count(reason) - n for reason, n in before.items()} == {"unreadable": 1, "missing": 1,
                                                                          "unavailable": 1}
    assert service_state.view(with_lists, client, None) is with_lists  # clients in the model: nothing to read
    assert np.isfinite(item_side.with_client_state(client, client_state.Encoder(with_lists.state).encode(4))
                       .state.client_factors).all()
