"""The effect estimator (service/effect/estimator.py) and the report it feeds, on a SYNTHETIC shop.

The coverage checks are the issue's measure: on 20 fixed seeds with a planted effect, the report's
95 % interval holds the true incremental revenue per client (known analytically,
tests/support/simulated_shop.py) in at least 17; on 20 more with nothing planted, it holds zero in
at least 17. Each seed runs through the report's own computation (`report_from_frames`, what
`effect_report` runs on what it reads); one seed also goes through a real SQLite `EventStore`,
written by the store's own writers, and must give the very same report (writing 40 seeds into
SQLite would take minutes on this machine). Synthetic data, used only to test the estimator.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from support.simulated_shop import ShopParams, fill_store, simulate

from eventstore import EventStore
from service.effect import estimator
from service.effect.report import effect_report, report_from_frames

#: Recorded seeds, fixed before the first run and never re-picked. On them the planted effect
#: (about 8.5 per client, the minimum detectable effect about 9.5) was inside the interval on 20
#: of 20 seeds (p < 0.05 on 10), and zero on 20 of 20 without an effect (no p < 0.05).
PLANTED_SEEDS = tuple(range(1201, 1221))
NULL_SEEDS = tuple(range(2201, 2221))
PLANTED = ShopParams(uplift={"champion": 0.3})
NULL = ShopParams(uplift={"champion": 0.0})


# ---- the pure estimator ----

def test_welch_matches_scipy_on_unequal_variances() -> None:
    rng = np.random.default_rng(7)
    t, c = rng.gamma(0.8, 40, 900), rng.gamma(1.5, 15, 300)
    interval, p_value, note = estimator.welch(t, c)
    reference = stats.ttest_ind(t, c, equal_var=False)
    low, high = reference.confidence_interval(0.95)
    assert note is None
    assert p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert (interval.ci_low, interval.ci_high) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
    assert interval.estimate == pytest.approx(t.mean() - c.mean())


def test_the_total_scales_the_per_client_difference_by_the_treatment_clients() -> None:
    rng = np.random.default_rng(8)
    effect = estimator.incremental_effect(rng.normal(12, 5, 400), rng.normal(10, 5, 100))
    pc, total = effect.per_client, effect.total
    assert (total.estimate, total.ci_low, total.ci_high) == pytest.approx(
        (pc.estimate * 400, pc.ci_low * 400, pc.ci_high * 400))
    assert effect.mde_total == pytest.approx(effect.mde_per_client * 400)
    assert effect.method == "welch" and effect.n_treatment == 400 and effect.n_control == 100


def test_minimum_detectable_effect_is_the_power_formula() -> None:
    rng = np.random.default_rng(9)
    t, c = rng.normal(0, 3, 500), rng.normal(0, 6, 200)
    se = np.sqrt(t.var(ddof=1) / 500 + c.var(ddof=1) / 200)
    assert estimator.minimum_detectable_effect(t, c) == pytest.approx((1.959964 + 0.841621) * se, rel=1e-5)


def test_bootstrap_is_deterministic_and_close_to_welch_on_large_arms() -> None:
    rng = np.random.default_rng(10)
    t, c = rng.gamma(1.0, 30, 2000), rng.gamma(1.0, 28, 1000)
    first, second = estimator.bootstrap(t, c), estimator.bootstrap(t, c)
    assert first == second
    welch, _, _ = estimator.welch(t, c)
    width = welch.ci_high - welch.ci_low
    assert abs(first.ci_low - welch.ci_low) < 0.1 * width and abs(first.ci_high - welch.ci_high) < 0.1 * width


@pytest.mark.parametrize(("t", "c"), [([], [1.0, 2.0]), ([5.0], [1.0, 2.0]), ([1.0, 2.0], [3.0])])
def test_an_arm_under_two_clients_has_no_interval_and_says_so(t: list[float], c: list[float]) -> None:
    effect = estimator.incremental_effect(t, c, bootstrap_resamples=100).as_dict()
    assert effect["per_client"]["ci_low"] is None and effect["p_value"] is None and effect["mde_per_client"] is None
    assert effect["note"] and effect["bootstrap_per_client"] is None


def test_no_variance_is_a_point_never_nan() -> None:
    effect = estimator.incremental_effect([3.0, 3.0, 3.0], [1.0, 1.0]).as_dict()
    assert effect["per_client"] == {"estimate": 2.0, "ci_low": 2.0, "ci_high": 2.0}
    assert effect["p_value"] == 0.0 and "variance" in effect["note"]


def test_non_finite_revenue_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        estimator.incremental_effect([1.0, float("nan")], [1.0, 2.0])


# ---- coverage on the simulated shop, through the store ----

def _covered(seed: int, params: ShopParams) -> tuple[bool, float, dict]:
    shop = simulate(seed, params)
    exposures, purchases, reactions = shop.frames()
    report = report_from_frames(exposures, purchases, reactions, start=shop.start, end=shop.end,
                                item_group=shop.group_of, bootstrap_resamples=0)
    (effect,) = report["effects"]
    truth = shop.true_incremental["champion"]
    pc = effect["per_client"]
    return pc["ci_low"] <= truth <= pc["ci_high"], truth, effect


def test_the_interval_holds_the_planted_effect_on_at_least_17_of_20_seeds() -> None:
    results = {seed: _covered(seed, PLANTED) for seed in PLANTED_SEEDS}
    missed = {seed: (truth, effect["per_client"]) for seed, (ok, truth, effect) in results.items() if not ok}
    assert len(missed) <= 3, missed
    assert all(truth > 0 for _, truth, _ in results.values())
    # and the estimate is not biased: over the 20 seeds its mean error is within 4 standard errors
    # of that mean (on these seeds: -2.0 against a bound of 3.0; the planted revenue itself
    # averages the truth to 0.5 %, the rest is the baseline's noise between the arms)
    errors = [effect["per_client"]["estimate"] - truth for _, truth, effect in results.values()]
    standard_error = np.mean([effect["mde_per_client"] / 2.801585 for _, _, effect in results.values()])
    assert abs(np.mean(errors)) < 4 * standard_error / np.sqrt(len(errors)), (np.mean(errors), standard_error)


def test_the_interval_holds_zero_without_an_effect_on_at_least_17_of_20_seeds() -> None:
    results = {seed: _covered(seed, NULL) for seed in NULL_SEEDS}
    missed = {seed: effect["per_client"] for seed, (ok, _, effect) in results.items() if not ok}
    assert all(truth == 0 for _, truth, _ in results.values())
    assert len(missed) <= 3, missed


def test_the_store_and_the_frames_give_the_same_report(tmp_path: Path) -> None:
    """One seed written through the store's own writers reads back to the report of the frames."""
    shop = simulate(PLANTED_SEEDS[0], PLANTED)
    with EventStore(f"sqlite:///{tmp_path / 'events.db'}") as events:
        events.create_all()
        fill_store(events, "one", shop, through_writers=True)
        stored = effect_report(events, "one", shop.start, shop.end, item_group=shop.group_of)
    exposures, purchases, reactions = shop.frames()
    direct = report_from_frames(exposures, purchases, reactions, start=shop.start, end=shop.end, tenant="one",
                                item_group=shop.group_of)
    assert stored == direct
    champion = stored["variants"]["champion"]
    assert champion["attributed_purchases"] > 0 and 0 < champion["ctr"] < 1 and champion["acceptance_rate"] > 0
    assert stored["variants"]["control"]["accepted_items"] == 0
    assert set(stored["by_kind"]) == {"cross_sell", "upsell"}
