"""Fixtures of the unit tests: the small synthetic shop (tests/support/factories.py) and a model
fitted on it, once per module (a module may change the model it gets; the next gets a fresh one)."""
from __future__ import annotations

import pandas as pd
import pytest
from support.factories import SHOP_CONFIG, make_shop

from scoring.recommender import Recommender
from training.context import TrainContext
from training.fit import fit_recommender


@pytest.fixture(scope="module")
def shop() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return make_shop()


@pytest.fixture(scope="module")
def model(shop: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> Recommender:
    tx, items, packages = shop
    return fit_recommender(TrainContext.build(tx, items, packages), SHOP_CONFIG)
