"""The client value model: our maximum-likelihood BG/NBD and Gamma-Gamma against pymc-marketing's fit of the
same summaries (tests/fixtures/value_reference.json, made by tests/fixtures/value_reference.py), and the closed
forms against direct integration."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special

from features.loader import load_dataset
from features.value import ValueFitError, fit_bgnbd, fit_gamma_gamma, value_summary
from scoring.value import (
    FIGURE_ARRAYS,
    FIGURES,
    ValueParams,
    client_value,
    expected_purchases,
    p_no_purchase,
    value_figures,
)
from training.config import TrainConfig
from training.value import value_state

REFERENCE = json.loads((Path(__file__).parents[1] / "fixtures" / "value_reference.json").read_text())
#: relative tolerance on a parameter: the two optimisers stop at slightly different points of a flat maximum
PARAM_TOLERANCE = 0.01
#: relative tolerance on a prediction made with each side's own parameters
PREDICTION_TOLERANCE = 0.005


@pytest.fixture(scope="module")
def summary(slice_dir: Path) -> pd.DataFrame:
    return value_summary(load_dataset(slice_dir).transactions)


@pytest.fixture(scope="module")
def params(summary: pd.DataFrame) -> ValueParams:
    bg = fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
    gg = fit_gamma_gamma(summary["frequency"], summary["monetary"])
    return ValueParams(**bg.__dict__, **gg.__dict__)


def test_our_fit_finds_pymc_marketings_parameters_on_the_real_slice(params: ValueParams) -> None:
    reference = {**REFERENCE["flat_priors"]["bgnbd"], **REFERENCE["flat_priors"]["gamma_gamma"]}
    for name, expected in reference.items():
        assert getattr(params, name) == pytest.approx(expected, rel=PARAM_TOLERANCE), name


def test_our_predictions_match_pymc_marketings(summary: pd.DataFrame, params: ValueParams) -> None:
    sample = summary.reindex(REFERENCE["predictions"]["client_id"])
    t = REFERENCE["predictions"]["future_t"]
    figures = value_figures(params, sample["frequency"], sample["recency"], sample["T"], sample["monetary"], t)
    np.testing.assert_allclose(figures["expected_purchases"], REFERENCE["predictions"]["expected_purchases"],
                               rtol=PREDICTION_TOLERANCE)
    np.testing.assert_allclose(figures["p_alive"], REFERENCE["predictions"]["p_alive"], rtol=PREDICTION_TOLERANCE,
                               atol=1e-6)


@pytest.mark.parametrize(("x", "tx", "T"), [(0, 0, 200), (3, 50, 300), (120, 340, 360), (40, 100, 365)])
@pytest.mark.parametrize("ab", [(0.05, 12.5), (2.5, 8.0)])
def test_expected_purchases_equals_the_integral_over_the_posterior(x: int, tx: float, T: float,
                                                                   ab: tuple[float, float]) -> None:
    """E[Y(t)] = P(alive) · E_p[(1 - ((α+T)/(α+T+pt))^{r+x}) / p], p ~ Beta(a, b+x): no hypergeometric
    function, so an independent check of the Euler-transformed closed form (and of a < 1)."""
    r, alpha, t = 1.4, 9.0, 30.0
    a, b = ab
    alive = 1.0 - (p_no_purchase(r, alpha, a, b, x, tx, T, 1e9))

    def inner(p: float) -> float:  # the Beta density's p^(a-1) (1-p)^(b+x-1) is quad's algebraic weight
        if p == 0:  # the limit of the ratio below
            return (r + x) * t / (alpha + T) / special.beta(a, b + x)
        return -np.expm1(-(r + x) * np.log1p(p * t / (alpha + T))) / p / special.beta(a, b + x)

    integral = integrate.quad(inner, 0, 1, weight="alg", wvar=(a - 1, b + x - 1))[0]
    closed = expected_purchases(r, alpha, a, b, np.array([x]), np.array([tx]), np.array([T]), t)[0]
    assert closed == pytest.approx(alive * integral, rel=1e-5)


def test_the_purchase_probability_is_a_probability_and_grows_with_the_horizon(
        summary: pd.DataFrame, params: ValueParams) -> None:
    short = value_figures(params, summary["frequency"], summary["recency"], summary["T"], summary["monetary"], 7)
    long = value_figures(params, summary["frequency"], summary["recency"], summary["T"], summary["monetary"], 60)
    assert np.all((short["p_purchase"] >= 0) & (short["p_purchase"] <= 1))
    assert np.all(long["p_purchase"] >= short["p_purchase"])
    assert np.all(long["expected_purchases"] >= short["expected_purchases"])
    assert np.all((short["p_alive"] > 0) & (short["p_alive"] <= 1))


def test_clv_without_discount_is_expected_purchases_times_spend(summary: pd.DataFrame,
                                                                params: ValueParams) -> None:
    flat = ValueParams(**{**params.__dict__, "annual_discount": 0.0, "clv_horizon_days": 365.0})
    figures = value_figures(flat, summary["frequency"], summary["recency"], summary["T"], summary["monetary"])
    year = expected_purchases(*flat.bgnbd, summary["frequency"], summary["recency"], summary["T"], 365.0)
    np.testing.assert_allclose(figures["clv"], year * figures["expected_value_per_purchase"], rtol=1e-9)
    discounted = value_figures(params, summary["frequency"], summary["recency"], summary["T"], summary["monetary"])
    assert np.all(discounted["clv"] <= figures["clv"] + 1e-9)


def test_the_summary_counts_repeat_visit_days_and_ignores_what_follows_the_cut_off() -> None:
    """Synthetic history: two baskets on day 0 (one visit), a return on day 3, visits on days 10 and 20."""
    day = pd.Timestamp("2024-01-01")
    tx = pd.DataFrame({"client_id": ["c"] * 6, "item_id": list("abcdef"),
                       "timestamp": [day, day + pd.Timedelta(hours=5), day + pd.Timedelta(days=3),
                                     day + pd.Timedelta(days=10), day + pd.Timedelta(days=20),
                                     day + pd.Timedelta(days=40)],
                       "quantity": [1, 1, -1, 2, 1, 1], "price": [5.0, 5.0, 5.0, 4.0, 10.0, 99.0]})
    summary = value_summary(tx, as_of=day + pd.Timedelta(days=30)).loc["c"]
    assert summary["frequency"] == 2
    assert summary["recency"] == 20 and summary["T"] == 30
    assert summary["monetary"] == pytest.approx((8.0 + 10.0) / 2)


def test_a_history_without_repeat_purchases_cannot_be_fitted() -> None:
    with pytest.raises(ValueFitError):
        fit_bgnbd(np.zeros(5), np.zeros(5), np.full(5, 30.0))


def test_what_ships_answers_each_client_with_dated_figures(slice_dir: Path) -> None:
    """The trainer's arrays and parameters (training.value) are all the model needs to answer (scoring.value)."""
    tx = load_dataset(slice_dir).transactions
    now = tx["timestamp"].max()
    clients = np.sort(tx["client_id"].astype(str).unique())
    arrays, meta = value_state(tx, np.append(clients, "never-bought"), now, TrainConfig())
    json.dumps(meta)  # meta.json holds it
    answer = client_value(meta, arrays, 0)
    assert set(FIGURES) <= set(answer) and answer["as_of"] == answer["data_end"] == now.isoformat()[:10]
    assert 0 < answer["p_purchase"] <= 1 and answer["clv"] > answer["expected_revenue"] > 0
    assert client_value(meta, arrays, len(clients)) is None  # no purchase: no figures
    assert client_value(None, {}, 0) is None  # a model without a value model


def test_the_figures_the_trainer_precomputes_are_the_figures_computed_per_answer(slice_dir: Path) -> None:
    """Every client of the real slice gets the same answer, to the bit, from the precomputed figures
    (`FIGURE_ARRAYS`, what serving reads) as from the closed forms over its own summary (older models)."""
    tx = load_dataset(slice_dir).transactions
    now = tx["timestamp"].max()
    clients = np.append(np.sort(tx["client_id"].astype(str).unique()), "never-bought")
    arrays, meta = value_state(tx, clients, now, TrainConfig())
    assert set(FIGURE_ARRAYS.values()) <= set(arrays)
    assert all(len(arrays[key]) == len(clients) for key in FIGURE_ARRAYS.values())
    summary_only = {k: v for k, v in arrays.items() if k not in FIGURE_ARRAYS.values()}
    params = ValueParams.from_meta(meta)
    answered = 0
    for ci in range(len(clients)):
        precomputed, computed = client_value(meta, arrays, ci), client_value(meta, summary_only, ci)
        assert json.dumps(precomputed) == json.dumps(computed), clients[ci]
        if computed is None:
            continue
        answered += 1
        one = value_figures(params, *(summary_only[k][ci:ci + 1] for k in
                                      ("value_frequency", "value_recency", "value_T", "value_monetary")))
        for name, key in FIGURE_ARRAYS.items():  # the shipped array itself, not only its rounding
            assert arrays[key][ci] == one[name][0], (clients[ci], name)
    assert answered == len(clients) - 1 and client_value(meta, arrays, len(clients) - 1) is None
    # another horizon is computed, never read from the model's
    week = client_value(meta, arrays, 0, horizon_days=7)
    assert week == client_value(meta, summary_only, 0, horizon_days=7) and week["horizon_days"] == 7.0
    assert week["p_purchase"] < client_value(meta, arrays, 0)["p_purchase"]
