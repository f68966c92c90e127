"""Power by simulation (study.planning): checked against closed forms where they exist."""

import math

import numpy as np
import pytest
from scipy import special, stats

from study.results.analysis import analyze_responses
from study.results.exclusions import exclusion_reasons
from study.results.planning import (
    PlanAssumptions,
    PlanDesign,
    PlanError,
    _simulated_rows,
    accuracies_for_difference,
    condition_log_odds,
    contrasts,
    needed_n,
    plan_study,
    projected_point,
    report_estimates,
    simulate_studies,
    simulated_point,
)


def _no_exclusions(**_):
    return []


def _two_proportion_power(p1: float, p2: float, responses: int) -> float:
    se = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / responses)
    return float(stats.norm.cdf(abs(p2 - p1) / se - stats.norm.ppf(0.975)))


def test_power_matches_the_closed_form_two_proportion_test():
    # No ability or item variation and no inattention: every response is an independent
    # Bernoulli draw, so the model's contrast is the two-proportion z-test on n x items
    # responses per condition, whose power has a closed form.
    p1, p2, items, sims = 0.5, 0.58, 20, 200
    design = PlanDesign(conditions=("a", "b"), main_items=items, attention_items=0, n_choices=4)
    assumptions = PlanAssumptions(
        accuracies={"a": p1, "b": p2}, ability_sd=0, item_sd=0, inattentive_share=0
    )
    studies = simulate_studies(
        design, assumptions, n=15, sims=sims, alpha=0.05, seed=1, exclusion_reasons=_no_exclusions
    )
    assert studies.model_failures == 0
    simulated = simulated_point(studies)
    projected = projected_point(studies, 30, alpha=0.05)
    for point, n in ((simulated, 15), (projected, 30)):
        closed_form = _two_proportion_power(p1, p2, n * items)
        monte_carlo_se = math.sqrt(closed_form * (1 - closed_form) / sims)
        assert abs(point.pairwise[("a", "b")] - closed_form) < 3 * monte_carlo_se
        # With two conditions the omnibus Wald test is that contrast.
        assert point.wald == point.pairwise[("a", "b")]
    assert _two_proportion_power(p1, p2, 15 * items) < 0.55 < 0.75 < projected.wald
    # The closed form's n for 80%: ((z_0.975 + z_0.8) / d)^2 (p1 q1 + p2 q2) responses.
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    closed_n = math.ceil(z**2 * (p1 * (1 - p1) + p2 * (1 - p2)) / (p2 - p1) ** 2 / items)
    [omnibus, pair] = needed_n([studies], contrasts(design, assumptions), alpha=0.05, max_n=100)
    assert closed_n == 31 and abs(omnibus.n - closed_n) <= 4 and pair.n == omnibus.n


def test_projecting_to_the_simulated_n_gives_the_simulation_back():
    design = PlanDesign(conditions=("a", "b", "c"), main_items=6, attention_items=0, n_choices=4)
    assumptions = PlanAssumptions(accuracies={"a": 0.5, "b": 0.65, "c": 0.6})
    studies = simulate_studies(
        design, assumptions, n=12, sims=20, alpha=0.05, seed=2, exclusion_reasons=_no_exclusions
    )
    assert len(studies.estimates) == 20 - studies.model_failures > 10
    simulated = simulated_point(studies)
    projected = projected_point(studies, 12, alpha=0.05)
    assert projected.wald == simulated.wald
    assert projected.pairwise == simulated.pairwise
    assert projected_point(studies, 48, alpha=0.05).wald >= simulated.wald


def test_the_report_gives_back_the_wald_test_it_computed():
    design = PlanDesign(conditions=("a", "b", "c"), main_items=6, attention_items=0, n_choices=4)
    assumptions = PlanAssumptions(accuracies={"a": 0.5, "b": 0.7, "c": 0.6})
    rows, _, _ = _simulated_rows(
        design,
        assumptions,
        n=20,
        log_odds={"a": 0.0, "b": 0.9, "c": 0.4},
        rng=np.random.default_rng(5),
        exclusion_reasons=_no_exclusions,
    )
    report = analyze_responses(
        rows, n_choices=4, confidence_levels=(1, 2, 3, 4, 5), condition_order=("a", "b", "c")
    )
    beta, covariance = report_estimates(report, ("a", "b", "c"))
    assert float(beta @ np.linalg.solve(covariance, beta)) == pytest.approx(
        report.wald.statistic, rel=1e-6
    )


def test_planted_log_odds_give_the_planted_mean_accuracy():
    spread = math.hypot(1.0, 0.5)
    b = condition_log_odds(0.7, spread=spread)
    draws = np.random.default_rng(0).normal(0, spread, 400_000)
    assert abs(float(np.mean(special.expit(b + draws))) - 0.7) < 0.003
    assert condition_log_odds(0.7, spread=0) == pytest.approx(special.logit(0.7))


def test_excluded_participants_are_replaced_so_n_are_analysed():
    design = PlanDesign(
        conditions=("a", "b"),
        main_items=6,
        attention_items=3,
        n_choices=4,
        exclusion_rules={"max_failed_attention_checks": 0, "min_median_response_ms": 800},
    )
    assumptions = PlanAssumptions(accuracies={"a": 0.5, "b": 0.7}, inattentive_share=0.4)
    rows, simulated, excluded = _simulated_rows(
        design,
        assumptions,
        n=10,
        log_odds={"a": 0.0, "b": 1.0},
        rng=np.random.default_rng(3),
        exclusion_reasons=exclusion_reasons,
    )
    assert len({row["participant"] for row in rows}) == 20
    assert len(rows) == 20 * 6
    assert excluded > 0 and simulated == 20 + excluded


def test_a_difference_plants_the_first_condition_at_the_baseline():
    assert accuracies_for_difference(("none", "gradcam", "sag"), baseline=0.5, difference=0.2) == {
        "none": 0.5,
        "gradcam": 0.7,
        "sag": 0.7,
    }


@pytest.mark.parametrize(
    ("accuracies", "message"),
    [
        ({"a": 0.5}, "no planted accuracy for b"),
        ({"a": 0.5, "b": 0.6, "c": 0.7}, "no condition named c"),
        ({"a": 0.5, "b": 1.0}, "accuracy b: 1.0 is not strictly between 0 and 1"),
    ],
)
def test_plan_errors_name_the_input(accuracies, message):
    design = PlanDesign(conditions=("a", "b"), main_items=4, attention_items=0, n_choices=4)
    with pytest.raises(PlanError, match=message):
        plan_study(design, PlanAssumptions(accuracies=accuracies), exclusion_reasons=_no_exclusions)
