"""The fault tests' model versions (support/reliability_doubles.py), checked in-process: the
service's checks accept the tagged double, which stamps every answer with its version, and
reject every broken variant."""
from __future__ import annotations

import pytest
from support.reliability_doubles import BROKEN, TaggedRecommender, make_recommender

from service.model.checks import check_recommender
from service.model.errors import ModelRejected


def test_tagged_double_passes_the_service_checks_and_stamps_every_answer() -> None:
    model = TaggedRecommender(tag="4")
    check_recommender(model)
    assert {s["version_tag"] for s in model.suggest("c1", "cross_sell")} == {"4"}
    assert {s["version_tag"] for part in ("complete", "upsell", "bundles") for s in model.cart(["coffee"])[part]} == {"4"}


@pytest.mark.parametrize("variant", [v for v in BROKEN if v != "corrupt_artifact"])
def test_every_broken_variant_is_rejected_by_the_service_checks(variant: str) -> None:
    with pytest.raises(ModelRejected):
        check_recommender(make_recommender(variant, "9"))
