"""Plan a study before launch: power by simulation through the study's own analysis.

Simulated participants answer the study's design (its conditions, main items, attention
checks, answer choices) with planted accuracies, are judged by the study's exclusion rules,
and every simulated study is analysed by `study.analysis.analyze_responses`, the code the
dashboard and the export use. The share of simulated studies in which a test rejects at
`alpha` is its power: the omnibus GEE Wald test (and the Rao-Scott chi-square beside it) and
each pairwise contrast, Holm-corrected as the report corrects them.

The simulation model, on the log-odds scale: participant i in condition c answers item j
right with probability expit(b_c + u_i + d_j), where u_i ~ N(0, ability_sd^2) is the
participant's ability and d_j ~ N(0, item_sd^2) the item's ease, drawn afresh for each
simulated study. b_c is set so that the accuracy averaged over participants and items is the
planted accuracy of condition c. A share of participants is inattentive: they answer at
random, fast, and fail attention checks at chance; the exclusion rules catch some of them
(and perhaps some attentive ones). Places count only participants the rules keep, as the
study's quotas do, so n participants per condition means n analysed.

Other n are projected from the studies simulated at one n rather than simulated again (the
model fit is most of the time): each simulated study's condition estimates and their
covariance, read back from its report, are moved to n as the estimator behaves with more
participants (the spread around the mean estimate shrinks as 1/sqrt(n), the covariance as
1/n), and tested as the report tests them. At the simulated n the projection is the
simulation itself; `confirm` simulates again at the n found.

Pure numpy on top of study.analysis; no database access. The Django side (reading a study's
design) is `study.plans`.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from scipy import optimize, special, stats

from study.results.analysis import Z_95, AnalysisError, StudyReport, analyze_responses, holm

TARGET_POWER = 0.8
DEFAULT_SIMS = 100
MIN_N = 4
MAX_N = 500
# A pair whose planted accuracies differ by less than this has no difference to detect: its
# power is the false-positive rate, and no n is "needed" for it.
NO_DIFFERENCE = 0.005
_CONFIDENCE_LEVELS = (1, 2, 3, 4, 5)
_HERMITE_NODES, _HERMITE_WEIGHTS = np.polynomial.hermite_e.hermegauss(40)

# (rules, failed attention checks, [(answer, client ms) of main trials]) -> exclusion reasons
ExclusionReasons = Callable[..., list[str]]


class PlanError(ValueError):
    """A plan that cannot be simulated as asked; the message names the input at fault."""


@dataclass(frozen=True)
class PlanDesign:
    """What of a study's design the simulation needs."""

    conditions: tuple[str, ...]  # in the study's order; the first is the model's reference
    main_items: int
    attention_items: int
    n_choices: int
    question_type: str = "species_identification"
    exclusion_rules: dict = field(default_factory=dict)
    planned_n: int = 0  # participants per condition the study asks for (0: not known)


@dataclass(frozen=True)
class PlanAssumptions:
    accuracies: dict[str, float]  # planted accuracy per condition, on main items
    ability_sd: float = 1.0  # between-participant SD of ability, log-odds
    item_sd: float = 0.5  # between-item SD of ease, log-odds
    inattentive_share: float = 0.05
    attentive_median_ms: float = 4000.0
    inattentive_median_ms: float = 600.0
    attentive_attention_fail: float = 0.02  # chance an attentive participant fails a check


@dataclass(frozen=True)
class SimulatedStudies:
    """What `sims` simulated studies at `n` analysed participants per condition gave."""

    n: int
    sims: int
    wald_rejections: int
    chi_square_rejections: int
    pair_rejections: dict[tuple[str, str], int]  # Holm-corrected, as the report corrects
    excluded_share: float  # of the participants simulated, the share the rules excluded
    model_failures: int  # simulated studies without a model fit (count as not rejecting)
    estimates: np.ndarray  # (fits, K - 1): log-odds of each condition vs the first
    covariances: np.ndarray  # (fits, K - 1, K - 1)


@dataclass(frozen=True)
class PowerPoint:
    n: int
    simulated: bool  # False: projected from the simulated n nearest to it
    wald: float
    pairwise: dict[tuple[str, str], float]
    chi_square: float | None = None  # simulated points only
    excluded_share: float | None = None


@dataclass(frozen=True)
class Contrast:
    """The omnibus test (no pairs), or pairs of conditions with the same planted accuracies:
    exchangeable in the simulation (same n, same items), so their power is one figure,
    averaged over them."""

    name: str
    pairs: tuple[tuple[str, str], ...]
    difference: float  # planted accuracy, b minus a


@dataclass(frozen=True)
class NeededN:
    test: str
    n: int | None  # participants per condition for the target power; None: not by max_n


@dataclass(frozen=True)
class StudyPlan:
    design: PlanDesign
    assumptions: PlanAssumptions
    alpha: float
    sims: int
    simulated: list[SimulatedStudies]
    points: list[PowerPoint]  # simulated and projected, by n
    contrasts: list[Contrast]
    needed: list[NeededN]  # for the contrasts with a planted difference
    max_n: int


def accuracies_for_difference(
    conditions: Sequence[str], *, baseline: float, difference: float
) -> dict[str, float]:
    """The first condition (the reference, e.g. no explanation) at `baseline`, every other
    condition `difference` higher: the smallest improvement worth detecting."""
    if not conditions:
        raise PlanError("the design has no conditions")
    accuracies = {name: baseline + difference for name in conditions}
    accuracies[conditions[0]] = baseline
    return accuracies


def check_inputs(design: PlanDesign, assumptions: PlanAssumptions) -> None:
    """PlanError naming the first input that cannot be simulated."""
    if len(design.conditions) < 2:
        raise PlanError("conditions: power needs at least two conditions to compare")
    if design.main_items < 1:
        raise PlanError("items: the design has no main items")
    if design.n_choices < 2:
        raise PlanError("choices: a question needs at least two answer choices")
    unknown = sorted(set(assumptions.accuracies) - set(design.conditions))
    if unknown:
        raise PlanError(f"accuracy: no condition named {', '.join(unknown)}")
    missing = [name for name in design.conditions if name not in assumptions.accuracies]
    if missing:
        raise PlanError(f"accuracy: no planted accuracy for {', '.join(missing)}")
    for name, accuracy in assumptions.accuracies.items():
        if not 0 < accuracy < 1:
            raise PlanError(f"accuracy {name}: {accuracy} is not strictly between 0 and 1")
    for name in ("ability_sd", "item_sd"):
        value = getattr(assumptions, name)
        if not 0 <= value <= 5:
            raise PlanError(f"{name}: {value} is not in [0, 5] (log-odds)")
    if not 0 <= assumptions.inattentive_share < 1:
        raise PlanError(f"inattentive_share: {assumptions.inattentive_share} is not in [0, 1)")


def condition_log_odds(accuracy: float, *, spread: float) -> float:
    """b such that the mean of expit(b + e), e ~ N(0, spread^2), is `accuracy`."""
    if spread == 0:
        return float(special.logit(accuracy))

    def mean_accuracy(b: float) -> float:
        values = special.expit(b + spread * _HERMITE_NODES)
        return float(np.sum(_HERMITE_WEIGHTS * values) / math.sqrt(2 * math.pi)) - accuracy

    return float(optimize.brentq(mean_accuracy, -30, 30))


def _simulated_rows(
    design: PlanDesign,
    assumptions: PlanAssumptions,
    *,
    n: int,
    log_odds: dict[str, float],
    rng: np.random.Generator,
    exclusion_reasons: ExclusionReasons,
) -> tuple[list[dict], int, int]:
    """One simulated study's main responses as export-shaped rows, with how many
    participants were simulated and how many the rules excluded.

    Longer than 60 lines: one participant's simulation, draw by draw (ability, inattention,
    each item's answer and time, the rules' verdict); split, the order of the random draws,
    which the seeds reproduce, would be spread over several functions."""
    ease = rng.normal(0, assumptions.item_sd, design.main_items)
    # Each item shows one of the answer choices' classes; wrong answers are any other choice.
    truth = np.arange(design.main_items) % design.n_choices
    rows: list[dict] = []
    simulated = excluded = 0
    for condition in design.conditions:
        kept = 0
        while kept < n:
            simulated += 1
            participant = f"{condition}-{simulated}"
            inattentive = rng.random() < assumptions.inattentive_share
            if inattentive:
                correct = rng.random(design.main_items) < 1 / design.n_choices
                fail_chance = 1 - 1 / design.n_choices
                median_ms = assumptions.inattentive_median_ms
            else:
                ability = rng.normal(0, assumptions.ability_sd)
                chance = special.expit(log_odds[condition] + ability + ease)
                correct = rng.random(design.main_items) < chance
                fail_chance = assumptions.attentive_attention_fail
                median_ms = assumptions.attentive_median_ms
            failed_attention = int(np.sum(rng.random(design.attention_items) < fail_chance))
            times = np.maximum(1, median_ms * np.exp(rng.normal(0, 0.5, design.main_items)))
            wrong = (truth + rng.integers(1, design.n_choices, design.main_items)) % (
                design.n_choices
            )
            answers = np.where(correct, truth, wrong)
            reasons = exclusion_reasons(
                rules=design.exclusion_rules,
                failed_attention=failed_attention,
                main_answers=[(int(a), float(t)) for a, t in zip(answers, times, strict=True)],
            )
            if reasons:
                # An excluded participant does not fill a place: someone else is recruited.
                excluded += 1
                continue
            kept += 1
            rows.extend(
                {
                    "participant": participant,
                    "condition": condition,
                    "item": item,
                    "phase": "main",
                    "is_correct": bool(correct[item]),
                    "confidence": 3,
                    "participant_pilot": False,
                    "participant_excluded": False,
                    "client_response_ms": float(times[item]),
                }
                for item in range(design.main_items)
            )
    return rows, simulated, excluded


def report_estimates(report: StudyReport, conditions: Sequence[str]):
    """The model's log-odds of each condition against the first, and their covariance, read
    back from the report's pairwise comparisons (the odds-ratio interval is exp(estimate +-
    Z_95 se), and var(b - a) = var a + var b - 2 cov(a, b))."""
    index = {name: i for i, name in enumerate(conditions)}
    k = len(conditions)
    beta = np.zeros(k)
    pair_variance = np.zeros((k, k))
    for comparison in report.pairwise:
        a, b = index[comparison.condition_a], index[comparison.condition_b]
        se = (math.log(comparison.odds_ratio_high) - math.log(comparison.odds_ratio_low)) / (
            2 * Z_95
        )
        pair_variance[a, b] = pair_variance[b, a] = se * se
        if a == 0:
            beta[b] = math.log(comparison.odds_ratio)
    variance = pair_variance[0]
    covariance = (variance[:, None] + variance[None, :] - pair_variance) / 2
    return beta[1:], covariance[1:, 1:]


def simulate_studies(
    design: PlanDesign,
    assumptions: PlanAssumptions,
    *,
    n: int,
    sims: int,
    alpha: float,
    seed: int,
    exclusion_reasons: ExclusionReasons,
) -> SimulatedStudies:
    """`sims` studies with `n` analysed participants per condition, each analysed by
    study.analysis; each seeded on its own, so the result does not depend on the order.

    Longer than 60 lines: one loop that simulates, analyses and tallies each study; its
    counters (rejections per test and pair, failures, exclusions) would otherwise travel
    between functions."""
    check_inputs(design, assumptions)
    if n < 2:
        raise PlanError(f"n: {n} participants per condition are too few to test (at least 2)")
    spread = math.hypot(assumptions.ability_sd, assumptions.item_sd)
    log_odds = {
        name: condition_log_odds(accuracy, spread=spread)
        for name, accuracy in assumptions.accuracies.items()
    }
    pairs = list(combinations(design.conditions, 2))
    wald = chi_square = failures = simulated = excluded = 0
    rejected = dict.fromkeys(pairs, 0)
    estimates, covariances = [], []
    for index in range(sims):
        rows, simulated_here, excluded_here = _simulated_rows(
            design,
            assumptions,
            n=n,
            log_odds=log_odds,
            rng=np.random.default_rng([seed, n, index]),
            exclusion_reasons=exclusion_reasons,
        )
        simulated += simulated_here
        excluded += excluded_here
        try:
            report = analyze_responses(
                rows,
                n_choices=design.n_choices,
                confidence_levels=_CONFIDENCE_LEVELS,
                question_type=design.question_type,
                condition_order=design.conditions,
            )
        except AnalysisError:
            failures += 1
            continue
        if report.chi_square is not None and report.chi_square.p_value < alpha:
            chi_square += 1
        if report.wald is None:
            failures += 1
            continue
        wald += report.wald.p_value < alpha
        for comparison in report.pairwise:
            if comparison.p_holm < alpha:
                rejected[(comparison.condition_a, comparison.condition_b)] += 1
        beta, covariance = report_estimates(report, design.conditions)
        estimates.append(beta)
        covariances.append(covariance)
    k = len(design.conditions) - 1
    return SimulatedStudies(
        n=n,
        sims=sims,
        wald_rejections=wald,
        chi_square_rejections=chi_square,
        pair_rejections=rejected,
        excluded_share=excluded / simulated if simulated else 0.0,
        model_failures=failures,
        estimates=np.array(estimates).reshape(-1, k),
        covariances=np.array(covariances).reshape(-1, k, k),
    )


def simulated_point(studies: SimulatedStudies) -> PowerPoint:
    return PowerPoint(
        n=studies.n,
        simulated=True,
        wald=studies.wald_rejections / studies.sims,
        pairwise={pair: count / studies.sims for pair, count in studies.pair_rejections.items()},
        chi_square=studies.chi_square_rejections / studies.sims,
        excluded_share=studies.excluded_share,
    )


def projected_point(studies: SimulatedStudies, n: int, *, alpha: float) -> PowerPoint:
    """The power at `n` of the studies simulated at studies.n, each moved to n: estimates
    around their mean scaled by sqrt(studies.n / n), covariances by studies.n / n; then the
    Wald test and Holm-corrected pairs as the report computes them."""
    pairs = list(studies.pair_rejections)
    if not len(studies.estimates):
        return PowerPoint(n, False, 0.0, dict.fromkeys(pairs, 0.0))
    ratio = studies.n / n
    mean = studies.estimates.mean(axis=0)
    beta = mean + (studies.estimates - mean) * math.sqrt(ratio)
    covariance = studies.covariances * ratio
    k = beta.shape[1]
    wald = np.einsum("si,si->s", beta, np.linalg.solve(covariance, beta[..., None])[..., 0])
    wald_rejections = int(np.sum(stats.chi2.sf(wald, k) < alpha))
    # With the reference condition at log-odds 0, every pair is a contrast of the full vector.
    full_beta = np.pad(beta, ((0, 0), (1, 0)))
    full_cov = np.pad(covariance, ((0, 0), (1, 0), (1, 0)))
    index = {}
    for a, b in combinations(range(k + 1), 2):
        index[(a, b)] = len(index)
    a_idx = np.array([a for a, _ in index])
    b_idx = np.array([b for _, b in index])
    estimate = full_beta[:, b_idx] - full_beta[:, a_idx]
    variance = full_cov[:, a_idx, a_idx] + full_cov[:, b_idx, b_idx] - 2 * full_cov[:, a_idx, b_idx]
    p_values = 2 * stats.norm.sf(np.abs(estimate / np.sqrt(variance)))
    rejected = np.array([holm(row.tolist()) for row in p_values]) < alpha
    counts = rejected.sum(axis=0)
    return PowerPoint(
        n=n,
        simulated=False,
        wald=wald_rejections / studies.sims,
        pairwise={pair: int(counts[i]) / studies.sims for i, pair in enumerate(pairs)},
    )


def contrasts(design: PlanDesign, assumptions: PlanAssumptions) -> list[Contrast]:
    """The omnibus test, then the pairwise contrasts grouped by planted accuracies."""
    accuracies = assumptions.accuracies
    groups: dict[tuple[float, float], list[tuple[str, str]]] = {}
    for a, b in combinations(design.conditions, 2):
        key = (round(accuracies[a], 6), round(accuracies[b], 6))
        groups.setdefault(key, []).append((a, b))
    result = [Contrast("omnibus (GEE Wald)", (), 0.0)]
    for (accuracy_a, accuracy_b), pairs in groups.items():
        firsts = sorted({a for a, _ in pairs}, key=design.conditions.index)
        seconds = [b for _, b in pairs]
        if len(pairs) == 1:
            name = _pair_name(pairs[0])
        elif abs(accuracy_b - accuracy_a) < NO_DIFFERENCE:
            name = f"{len(pairs)} pairs at {accuracy_a:.0%}, no difference planted"
        elif len(firsts) == 1:
            name = f"{firsts[0]} vs each of {', '.join(seconds)}"
        else:
            name = f"{len(pairs)} pairs, {accuracy_a:.0%} vs {accuracy_b:.0%}"
        result.append(Contrast(name, tuple(pairs), accuracy_b - accuracy_a))
    return result


def _detectable(contrast: Contrast, design: PlanDesign, assumptions: PlanAssumptions) -> bool:
    if contrast.pairs:
        return abs(contrast.difference) >= NO_DIFFERENCE
    values = [assumptions.accuracies[name] for name in design.conditions]
    return max(values) - min(values) >= NO_DIFFERENCE


def _pair_name(pair: tuple[str, str]) -> str:
    return f"{pair[0]} vs {pair[1]}"


def power_of(point: PowerPoint, contrast: Contrast) -> float:
    if not contrast.pairs:
        return point.wald
    return sum(point.pairwise[pair] for pair in contrast.pairs) / len(contrast.pairs)


def _nearest(simulated: Sequence[SimulatedStudies], n: int) -> SimulatedStudies:
    return min(simulated, key=lambda studies: abs(math.log(studies.n / n)))


def needed_n(
    simulated: Sequence[SimulatedStudies],
    sought: Sequence[Contrast],
    *,
    alpha: float,
    max_n: int,
    target: float = TARGET_POWER,
) -> list[NeededN]:
    """Per contrast, the smallest n up to `max_n` whose power, projected from the nearest
    simulated n, reaches `target`."""
    found: dict[str, int | None] = {contrast.name: None for contrast in sought}
    for n in range(MIN_N, max_n + 1):
        open_ = [c for c in sought if found[c.name] is None]
        if not open_:
            break
        point = projected_point(_nearest(simulated, n), n, alpha=alpha)
        for contrast in open_:
            if power_of(point, contrast) >= target:
                found[contrast.name] = n
    return [NeededN(name, n) for name, n in found.items()]


def plan_study(
    design: PlanDesign,
    assumptions: PlanAssumptions,
    *,
    exclusion_reasons: ExclusionReasons,
    n_values: Sequence[int] = (),
    sims: int = DEFAULT_SIMS,
    alpha: float = 0.05,
    seed: int = 0,
    max_n: int = MAX_N,
    target: float = TARGET_POWER,
    confirm: bool = False,
) -> StudyPlan:
    """Power at the planned n (or at each of `n_values`), simulated; the n needed for
    `target` power per test, projected from there; with `confirm`, simulated there too.

    Longer than 60 lines: the plan's steps in order (check, simulate at the quota, project,
    search the n for 80%, confirm), each a call; split up, the order would be harder to
    follow."""
    check_inputs(design, assumptions)
    if not 10 <= sims <= 5000:
        raise PlanError(f"sims: {sims} is not in 10..5000")
    if not 0 < alpha < 0.5:
        raise PlanError(f"alpha: {alpha} is not in (0, 0.5)")
    if not MIN_N <= max_n <= 5000:
        raise PlanError(f"max_n: {max_n} is not in {MIN_N}..5000")
    bad = [n for n in n_values if not MIN_N <= n <= max_n]
    if bad:
        raise PlanError(f"n: {bad[0]} is not in {MIN_N}..{max_n}")

    def simulate(n: int) -> SimulatedStudies:
        return simulate_studies(
            design,
            assumptions,
            n=n,
            sims=sims,
            alpha=alpha,
            seed=seed,
            exclusion_reasons=exclusion_reasons,
        )

    start = sorted(set(n_values)) or [min(max_n, max(MIN_N, design.planned_n or 20))]
    simulated = {n: simulate(n) for n in start}
    all_contrasts = contrasts(design, assumptions)
    sought = [c for c in all_contrasts if _detectable(c, design, assumptions)]
    needed = needed_n(list(simulated.values()), sought, alpha=alpha, max_n=max_n, target=target)
    if confirm:
        for item in needed:
            if item.n is not None and item.n not in simulated:
                simulated[item.n] = simulate(item.n)
    shown = {item.n for item in needed if item.n is not None}
    for n in start:
        shown |= {max(MIN_N, n // 2), min(max_n, 2 * n)}
    points = {n: simulated_point(studies) for n, studies in simulated.items()}
    for n in shown - set(points):
        points[n] = projected_point(_nearest(list(simulated.values()), n), n, alpha=alpha)
    return StudyPlan(
        design=design,
        assumptions=assumptions,
        alpha=alpha,
        sims=sims,
        simulated=[simulated[n] for n in sorted(simulated)],
        points=[points[n] for n in sorted(points)],
        contrasts=all_contrasts,
        needed=needed,
        max_n=max_n,
    )


def plan_text(plan: StudyPlan) -> str:
    """The plan as plain-text tables, for the command line."""
    design, assumptions = plan.design, plan.assumptions
    lines = [
        f"Design: {len(design.conditions)} conditions, {design.main_items} main items and "
        f"{design.attention_items} attention checks per participant, {design.n_choices} choices.",
        "Planted accuracy: "
        + ", ".join(f"{name} {assumptions.accuracies[name]:.0%}" for name in design.conditions)
        + ".",
        f"Assumed: ability SD {assumptions.ability_sd:g} and item SD {assumptions.item_sd:g} "
        f"(log-odds), {assumptions.inattentive_share:.0%} inattentive participants; exclusion "
        f"rules {design.exclusion_rules or 'none'}.",
        f"Power = share of {plan.sims} simulated studies in which the test rejects at alpha "
        f"{plan.alpha:g} (pairs Holm-corrected), analysed by study.analysis; 'sim' columns",
        "simulated, 'proj' columns projected from the nearest simulated n.",
        "n = analysed participants per condition (excluded ones are replaced, as quotas do).",
        "",
    ]
    width = max(30, *(len(contrast.name) for contrast in plan.contrasts))
    cells = [f"{p.n} {'sim' if p.simulated else 'proj'}" for p in plan.points]
    lines.append(f"{'power at n =':<{width}} {'diff.':>6}" + "".join(f"{c:>10}" for c in cells))
    for contrast in plan.contrasts:
        difference = f"{100 * contrast.difference:+.0f}p" if contrast.pairs else ""
        lines.append(
            f"{contrast.name:<{width}} {difference:>6}"
            + "".join(f"{power_of(p, contrast):>10.0%}" for p in plan.points)
        )
    for label, attribute in (
        ("omnibus (Rao-Scott chi-square)", "chi_square"),
        ("excluded by the rules", "excluded_share"),
    ):
        values = [getattr(p, attribute) for p in plan.points]
        lines.append(
            f"{label:<{width}} {'':>6}"
            + "".join(f"{'-' if v is None else f'{v:.0%}':>10}" for v in values)
        )
    failures = sum(studies.model_failures for studies in plan.simulated)
    if failures:
        lines.append(f"{failures} simulated studies had no model fit (counted as not rejecting).")
    if plan.needed:
        lines += ["", f"Participants per condition for {TARGET_POWER:.0%} power:"]
        for item in plan.needed:
            value = f"more than {plan.max_n}" if item.n is None else str(item.n)
            lines.append(f"  {item.test:<{width}} {value}")
    else:
        lines += ["", "No difference is planted: every test's power is its false-positive rate."]
    lines.append(
        "Monte Carlo standard error of a power p: sqrt(p(1-p)/sims), "
        f"at most {0.5 / math.sqrt(plan.sims):.1%}."
    )
    return "\n".join(line.rstrip() for line in lines) + "\n"
