"""Answers encoded once with orjson: numpy numbers written as numbers, non-finite scores never shown."""
from __future__ import annotations

import json
import math

import numpy as np

from service.encoding import encode, finite_scores


def test_numpy_numbers_are_written_as_json_numbers_and_non_finite_ones_as_null() -> None:
    body = {"score": np.float32(0.5), "count": np.int64(3), "ids": np.array([1, 2]), "ratio": math.inf,
            "nested": [{"p": np.float64("nan")}]}
    assert json.loads(encode(body)) == {"score": 0.5, "count": 3, "ids": [1, 2], "ratio": None,
                                        "nested": [{"p": None}]}


def test_a_suggestion_whose_score_is_not_finite_is_dropped_and_the_rest_kept_in_order() -> None:
    suggestions = [{"item_id": "a", "score": 1.0}, {"item_id": "b", "score": float("nan")},
                   {"item_id": "c", "score": np.float32("inf")}, {"item_id": "d"}, {"item_id": "e", "score": 0.1}]
    assert [s["item_id"] for s in finite_scores(suggestions)] == ["a", "d", "e"]
