"""Power by simulation (study.planning): checked against closed forms where they exist."""

import math

import numpy as np
import pytest
from scipy import special, stats

from study.planning import (
    Contrast,
    PlanAssumptions,
    PlanDesign,
    PlanError,
    PowerPoint,
    _simulated_rows,
    accuracies_for_difference,
    condition_log_odds,
    needed_n,
    plan_study,
    power_at,
)
from study.services import exclusion_reasons


def _no_exclusions(**_):
    return []


def test_power_matches_the_closed_form_two_proportion_test():
    # No ability or item variation and no inattention: every response is an independent
    # Bernoulli draw, so the model's contrast is the two-proportion z-test on n x items
    # responses per condition, whose power has a closed form.
    p1, p2, n, items, sims = 0.5, 0.62, 15, 20, 200
    design = PlanDesign(conditions=("a", "b"), main_items=items, attention_items=0, n_choices=4)
    assumptions = PlanAssumptions(
        accuracies={"a": p1, "b": p2}, ability_sd=0, item_sd=0, inattentive_share=0
    )
    point = power_at(
        design, assumptions, n=n, sims=sims, alpha=0.05, seed=1, exclusion_reasons=_no_exclusions
    )
    responses = n * items
    se = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / responses)
    closed_form = stats.norm.cdf(abs(p2 - p1) / se - stats.norm.ppf(0.975))
    monte_carlo_se = math.sqrt(closed_form * (1 - closed_form) / sims)
    assert 0.7 < closed_form < 0.9
    assert abs(point.pairwise[("a", "b")] - closed_form) < 3 * monte_carlo_se
    # With two conditions the omnibus Wald test is that contrast.
    assert point.wald == point.pairwise[("a", "b")]
    assert point.model_failures == 0


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


def test_needed_n_is_interpolated_where_power_crosses_80_percent():
    pair = Contrast("a vs b", (("a", "b"),), 0.1)
    omnibus = Contrast("omnibus (GEE Wald)", (), 0.0)

    def point(n, power):
        return PowerPoint(n, 100, power, power, {("a", "b"): power}, 0.0, 0)

    points = [point(20, 0.5), point(40, 0.9), point(80, 1.0)]
    [needed] = needed_n(points, [pair])
    # probit(power) linear in sqrt(n) between (20, 0.5) and (40, 0.9):
    slope = (stats.norm.ppf(0.9) - 0) / (math.sqrt(40) - math.sqrt(20))
    expected = math.ceil((math.sqrt(20) + stats.norm.ppf(0.8) / slope) ** 2)
    assert needed.n == expected and 20 < expected < 40
    assert "between n = 20 (50%) and n = 40 (90%)" in needed.note
    [not_reached] = needed_n([point(20, 0.1), point(40, 0.3)], [omnibus])
    assert not_reached.n is None and "not reached by n = 40" in not_reached.note


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
