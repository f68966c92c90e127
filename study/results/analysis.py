"""Outcome statistics of a study: accuracy per condition, tests, a model, reliance, calibration.

Pure numpy/scipy/statsmodels on response rows (dicts named like the export's columns); no
database access, so a notebook can run it on an exported CSV read back with csv.DictReader.

Responses of one participant are not independent (some people are better at the task), so
every interval and test here accounts for participant clustering:

- Accuracy intervals (the primary ones) are Wilson intervals on the effective sample size
  n / deff, where the design effect deff is the cluster-robust variance of the pooled accuracy
  over its binomial variance, kept between 1 (independent responses) and the mean number of
  responses per participant (each participant one observation). Plain response-level Wilson
  intervals are reported beside them; they are too narrow whenever participants differ.
- The chi-square test of condition x correct is Rao-Scott adjusted: X^2 divided by the mean
  generalized design effect sum_k (1 - N_k / N) deff_k / (K - 1).
- The model is a GEE logistic regression (statsmodels, Binomial, exchangeable working
  correlation, clusters = participants) with condition as a factor and item fixed effects,
  and the bias-reduced (Mancl-DeRouen) sandwich covariance, which small studies need: the
  plain sandwich is too small with few participants. Items answered all right or all wrong
  carry no information once the item has its own effect, so they leave the model. Item
  effects are kept only while participants outnumber the model's parameters; otherwise the
  model has condition alone, and the report says so. The omnibus Wald test and the pairwise
  comparisons (Holm-corrected) are contrasts of this model. It is fitted only up to
  MODEL_MAX_CELLS cells of its design matrix (responses x parameters), as its memory grows
  with them; a larger study gets everything else, and a note.

Memory: the responses are held as typed columns, about 30 bytes a response (72 MB at peak
for a million, with the per-condition copies), plus the model's share, bounded as above.
"""

import io
import math
import warnings
from array import array
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from scipy import stats
from statsmodels.genmod import cov_struct, families
from statsmodels.genmod.generalized_estimating_equations import GEE
from statsmodels.tools.sm_exceptions import ConvergenceWarning

Z_95 = float(stats.norm.ppf(0.975))
ECE_BINS = 10
# A fitted log-odds this far from 0 (odds beyond 1 : 160,000) means separation, not an estimate.
MAX_LOG_ODDS = 12.0
# The model is fitted only while its design matrix, responses x parameters, has at most this
# many cells. The fit's memory and time grow with them: measured about 100 bytes and 2 us a
# cell (statsmodels keeps a dozen float copies of the matrix), so this bounds it near 300 MB
# and a few seconds. 100,000 responses to 20 items in 3 conditions are 2.2 million cells.
MODEL_MAX_CELLS = 3_000_000
MAIN_PHASE = "main"
# The plots of report_svgs: file-name stem and title.
PLOT_TITLES = {
    "accuracy_by_condition": "Accuracy by condition (main trials)",
    "accuracy_by_ai_correctness": "Accuracy when the AI was right or wrong",
}

# Questions where agreeing with the AI means giving the AI's answer; in verify_ai the answer
# is a yes/no judgement of the AI, and agreeing with it means saying "right".
_AGREEMENT_BY_ANSWER = ("species_identification", "predict_ai")


class AnalysisError(ValueError):
    """The rows cannot be analysed (nothing to analyse, or a malformed row)."""


class NothingToAnalyse(AnalysisError):
    """No main-phase response is left to analyse; says how many participants were left out
    as pilots or as excluded, which the caller may offer to include."""

    def __init__(self, *, pilot: int, excluded: int):
        self.pilot, self.excluded = pilot, excluded
        left_out = [
            f"{count} {what} participant(s) left out"
            for count, what in ((pilot, "pilot"), (excluded, "excluded"))
            if count
        ]
        super().__init__(
            "no main-phase responses to analyse" + (f" ({'; '.join(left_out)})" if left_out else "")
        )


@dataclass(frozen=True)
class Accuracy:
    n_participants: int
    n_responses: int
    n_correct: int
    estimate: float  # pooled: correct responses / responses
    low: float  # primary interval: Wilson on the effective sample size
    high: float
    design_effect: float
    response_low: float  # Wilson treating every response as independent (too narrow)
    response_high: float


@dataclass(frozen=True)
class ResponseTimes:
    n: int
    median_ms: float
    q1_ms: float
    q3_ms: float


@dataclass(frozen=True)
class ConditionSummary:
    name: str
    accuracy: Accuracy
    ai_right: Accuracy | None  # accuracy on items the AI got right
    ai_wrong: Accuracy | None  # accuracy on items the AI got wrong
    ai_wrong_agreement: Accuracy | None  # share agreeing with the AI where it was wrong
    brier: float
    ece: float
    response_times: ResponseTimes | None
    # Distinct items the AI got right / wrong among these responses: an accuracy on few
    # items says how people did on those images more than how they do when the AI errs.
    ai_right_items: int = 0
    ai_wrong_items: int = 0
    # False: the condition does not show the AI's answer, so agreeing with it is no
    # reliance (ai_wrong_agreement is None).
    ai_answer_shown: bool = True


# Fewer distinct AI-wrong (or AI-right) items than this: the report says so.
FEW_ITEMS = 5


@dataclass(frozen=True)
class OmnibusTest:
    name: str
    statistic: float
    df: int
    p_value: float


@dataclass(frozen=True)
class PairwiseComparison:
    condition_a: str
    condition_b: str
    accuracy_difference: float  # b minus a, pooled accuracies
    odds_ratio: float  # b versus a, from the model (item-adjusted when items are modelled)
    odds_ratio_low: float
    odds_ratio_high: float
    p_value: float
    p_holm: float


@dataclass(frozen=True)
class ModelFit:
    description: str
    n_participants: int
    n_responses: int
    item_effects: bool
    items_dropped: int  # all right or all wrong: no information with item effects
    working_correlation: float


@dataclass(frozen=True)
class StudyReport:
    conditions: list[ConditionSummary]
    n_choices: int
    confidence_levels: tuple[int, ...]
    participants_dropped_pilot: int
    participants_dropped_excluded: int
    chi_square: OmnibusTest | None
    wald: OmnibusTest | None
    pairwise: list[PairwiseComparison]
    model: ModelFit | None
    notes: list[str] = field(default_factory=list)

    @property
    def chance(self) -> float:
        return 1 / self.n_choices


def wilson_interval(successes: float, n: float, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval; `n` may be an effective (non-integer) sample size."""
    if n <= 0:
        raise ValueError("a proportion needs at least one observation")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # The interval holds p exactly; rounding can put a bound a hair past p at 0 or 1, which
    # would make a negative error bar.
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the order given."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def confidence_probability(rating: int, *, levels: Sequence[int], n_choices: int) -> float:
    """A rating on the study's scale as the probability of being right: the lowest level
    ("guessing") is chance, 1 / n_choices, the highest ("certain") is 1, linear between."""
    low, high = min(levels), max(levels)
    chance = 1 / n_choices
    return chance + (rating - low) / (high - low) * (1 - chance)


def brier_score(probabilities: Sequence[float], outcomes: Sequence[bool]) -> float:
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(outcomes, dtype=float)
    return float(np.mean((p - y) ** 2))


def expected_calibration_error(
    probabilities: Sequence[float], outcomes: Sequence[bool], bins: int = ECE_BINS
) -> float:
    """Sum over equal-width bins (lo, hi] of the bin's share times |accuracy - confidence|."""
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(outcomes, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(p, edges, right=True) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            total += members.mean() * abs(y[members].mean() - p[members].mean())
    return float(total)


def clustered_accuracy(correct_by_cluster: Sequence[int], total_by_cluster: Sequence[int]):
    """Pooled accuracy with its Wilson intervals, effective-sample and response-level."""
    y = np.asarray(correct_by_cluster, dtype=float)
    m = np.asarray(total_by_cluster, dtype=float)
    n_clusters, n, correct = len(m), m.sum(), y.sum()
    p = correct / n
    mean_cluster = n / n_clusters
    binomial_variance = p * (1 - p) / n
    if n_clusters < 2:
        design_effect = mean_cluster  # nothing to estimate it from: one observation
    elif binomial_variance == 0:
        design_effect = 1.0
    else:
        robust_variance = n_clusters / (n_clusters - 1) * np.sum((y - p * m) ** 2) / n**2
        design_effect = float(np.clip(robust_variance / binomial_variance, 1.0, mean_cluster))
    low, high = wilson_interval(p * n / design_effect, n / design_effect)
    response_low, response_high = wilson_interval(correct, n)
    return Accuracy(
        n_participants=n_clusters,
        n_responses=int(n),
        n_correct=int(correct),
        estimate=float(p),
        low=low,
        high=high,
        design_effect=float(design_effect),
        response_low=response_low,
        response_high=response_high,
    )


class _Codes:
    """Names coded as small integers in order of first appearance."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._codes: dict[str, int] = {}

    def code(self, name: str) -> int:
        code = self._codes.get(name)
        if code is None:
            code = self._codes[name] = len(self.names)
            self.names.append(name)
        return code

    def sorted_ranks(self, present: np.ndarray) -> np.ndarray:
        """For each code, its position among the `present` codes sorted by name (the order
        the model numbers its clusters and items in); -1 for codes not present."""
        ranks = np.full(len(self.names), -1)
        ranks[sorted(present.tolist(), key=self.names.__getitem__)] = np.arange(len(present))
        return ranks


@dataclass(frozen=True)
class _Responses:
    """The counted main responses as columns, one entry per response. A large study has a
    million of them, so they are typed arrays (about 23 bytes a response) rather than a
    Python object each (over 1 kB with its dict of columns)."""

    participants: _Codes
    conditions: _Codes
    items: _Codes
    participant: np.ndarray  # codes into participants.names
    condition: np.ndarray
    item: np.ndarray
    is_correct: np.ndarray  # bool
    probability: np.ndarray  # the confidence rating as a probability of being right
    ai_correct: np.ndarray  # int8: 1 right, 0 wrong, -1 not known
    agrees_with_ai: np.ndarray  # bool; meaningful only where ai_correct is known
    response_ms: np.ndarray  # float, NaN where not known

    def __len__(self) -> int:
        return len(self.participant)


def _accuracy_of(participant: np.ndarray, outcome: np.ndarray) -> Accuracy | None:
    if not len(participant):
        return None
    _, first, cluster = np.unique(participant, return_index=True, return_inverse=True)
    # Clusters in the order of their first response, as the rows came.
    order = np.argsort(first)
    correct = np.bincount(cluster, weights=outcome)[order]
    total = np.bincount(cluster)[order]
    return clustered_accuracy(correct, total)


def _flag(row: dict, column: str) -> bool | None:
    """A yes/no column as Python, CSV or export int; '' or None = not known."""
    value = row.get(column)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no"):
        return False
    raise AnalysisError(f"column {column!r}: {value!r} is not a yes/no value")


REQUIRED_COLUMNS = (
    "participant",
    "condition",
    "item",
    "phase",
    "is_correct",
    "confidence",
    "participant_pilot",
    "participant_excluded",
)


class ResponseCollector:
    """Main-phase responses gathered row by row into typed columns, for `analyze_collected`.

    A reader that goes through every response anyway (the zip export, as it writes
    responses.csv) analyses them in the same pass by adding each row as it goes.
    """

    def __init__(
        self,
        *,
        n_choices: int,
        confidence_levels: Sequence[int],
        question_type: str = "species_identification",
        include_pilot: bool = False,
        include_excluded: bool = False,
    ) -> None:
        self.n_choices = n_choices
        self.confidence_levels = tuple(confidence_levels)
        self._question_type = question_type
        self._include_pilot = include_pilot
        self._include_excluded = include_excluded
        self._participants, self._conditions, self._items = _Codes(), _Codes(), _Codes()
        self._rating_index = {rating: i for i, rating in enumerate(self.confidence_levels)}
        self._columns = {
            "participant": array("i"),
            "condition": array("i"),
            "item": array("i"),
            "is_correct": array("b"),
            "rating": array("b"),
            "ai_correct": array("b"),
            "agrees_with_ai": array("b"),
            "response_ms": array("d"),
        }
        self._pilots: set[str] = set()
        self._excluded: set[str] = set()

    def add(self, raw: dict) -> None:
        missing = [column for column in REQUIRED_COLUMNS if column not in raw]
        if missing:
            raise AnalysisError(f"response rows lack the column(s) {', '.join(missing)}")
        if raw["phase"] != MAIN_PHASE:
            return
        participant = str(raw["participant"])
        if _flag(raw, "participant_pilot") and not self._include_pilot:
            self._pilots.add(participant)
            return
        if _flag(raw, "participant_excluded") and not self._include_excluded:
            self._excluded.add(participant)
            return
        rating = int(raw["confidence"])
        if rating not in self._rating_index:
            raise AnalysisError(f"confidence {rating} is not on the scale {self.confidence_levels}")
        is_correct = bool(_flag(raw, "is_correct"))
        ai_correct = _flag(raw, "ai_correct")
        if ai_correct is None:
            agrees = False
        elif self._question_type in _AGREEMENT_BY_ANSWER:
            agrees = raw.get("answer") == raw.get("ai_prediction")
        else:
            agrees = is_correct == ai_correct
        response_ms = raw.get("response_ms")
        columns = self._columns
        columns["participant"].append(self._participants.code(participant))
        columns["condition"].append(self._conditions.code(str(raw["condition"])))
        columns["item"].append(self._items.code(str(raw["item"])))
        columns["is_correct"].append(is_correct)
        columns["rating"].append(self._rating_index[rating])
        columns["ai_correct"].append(-1 if ai_correct is None else ai_correct)
        columns["agrees_with_ai"].append(agrees)
        columns["response_ms"].append(
            float(response_ms) if response_ms not in (None, "") else math.nan
        )

    @property
    def participants_dropped(self) -> tuple[int, int]:
        """(pilot, excluded) participants whose responses were left out."""
        return len(self._pilots), len(self._excluded)

    def responses(self) -> _Responses:
        probabilities = np.array(
            [
                confidence_probability(
                    rating, levels=self.confidence_levels, n_choices=self.n_choices
                )
                for rating in self.confidence_levels
            ]
        )
        arrays = {
            name: np.frombuffer(column, dtype=column.typecode)
            for name, column in self._columns.items()
        }
        return _Responses(
            participants=self._participants,
            conditions=self._conditions,
            items=self._items,
            participant=arrays["participant"],
            condition=arrays["condition"],
            item=arrays["item"],
            is_correct=arrays["is_correct"].astype(bool),
            probability=probabilities[arrays["rating"]],
            ai_correct=arrays["ai_correct"],
            agrees_with_ai=arrays["agrees_with_ai"].astype(bool),
            response_ms=arrays["response_ms"],
        )


def _condition_summary(
    name: str, responses: _Responses, rows: np.ndarray, *, ai_answer_shown: bool = True
) -> ConditionSummary:
    """The summary of the responses at the indices `rows`; agreement with the wrong AI only
    where the condition shows the AI's answer."""
    participant, is_correct = responses.participant[rows], responses.is_correct[rows]
    ai_correct = responses.ai_correct[rows]
    ai_right, ai_wrong = ai_correct == 1, ai_correct == 0
    times = responses.response_ms[rows]
    times = times[~np.isnan(times)]
    probabilities = responses.probability[rows]
    return ConditionSummary(
        name=name,
        accuracy=_accuracy_of(participant, is_correct),
        ai_right=_accuracy_of(participant[ai_right], is_correct[ai_right]),
        ai_wrong=_accuracy_of(participant[ai_wrong], is_correct[ai_wrong]),
        ai_wrong_agreement=_accuracy_of(
            participant[ai_wrong], responses.agrees_with_ai[rows][ai_wrong]
        )
        if ai_answer_shown
        else None,
        ai_right_items=len(np.unique(responses.item[rows][ai_right])),
        ai_wrong_items=len(np.unique(responses.item[rows][ai_wrong])),
        ai_answer_shown=ai_answer_shown,
        brier=brier_score(probabilities, is_correct),
        ece=expected_calibration_error(probabilities, is_correct),
        response_times=ResponseTimes(
            n=len(times),
            median_ms=float(np.median(times)),
            q1_ms=float(np.percentile(times, 25)),
            q3_ms=float(np.percentile(times, 75)),
        )
        if len(times)
        else None,
    )


def rao_scott_chi_square(accuracies: Sequence[Accuracy]) -> OmnibusTest:
    """Chi-square of condition x correct, divided by the mean generalized design effect."""
    correct = np.array([a.n_correct for a in accuracies], dtype=float)
    totals = np.array([a.n_responses for a in accuracies], dtype=float)
    table = np.column_stack([correct, totals - correct])
    statistic = float(stats.chi2_contingency(table, correction=False)[0])
    weights = totals / totals.sum()
    design_effects = np.array([a.design_effect for a in accuracies])
    df = len(accuracies) - 1
    mean_design_effect = float(np.sum((1 - weights) * design_effects) / df)
    adjusted = statistic / mean_design_effect
    return OmnibusTest(
        name=f"chi-square, Rao-Scott adjusted (X2 {statistic:.2f} / {mean_design_effect:.2f})",
        statistic=adjusted,
        df=df,
        p_value=float(stats.chi2.sf(adjusted, df)),
    )


@dataclass(frozen=True)
class _Model:
    fit: ModelFit
    condition_params: np.ndarray  # log-odds of each non-reference condition vs the first
    condition_cov: np.ndarray


def _fit_model(responses: _Responses, conditions: list[str]) -> tuple[_Model | None, list[str]]:
    """The GEE logistic model; None with the reasons when it cannot be fitted soundly.

    Longer than 60 lines: one statistical procedure (drop uninformative items, bound the
    design matrix, fit, check convergence), whose steps share the same arrays and notes;
    split up, each part would only make sense beside the others."""
    notes = []
    items = responses.items
    n_right = np.bincount(responses.item, weights=responses.is_correct, minlength=len(items.names))
    n_total = np.bincount(responses.item, minlength=len(items.names))
    informative = (n_right > 0) & (n_right < n_total)
    dropped = int(np.sum(~informative))
    if dropped:
        notes.append(f"model: {dropped} item(s) answered all right or all wrong left the model")
    rows = np.flatnonzero(informative[responses.item])
    is_correct, condition = responses.is_correct[rows], responses.condition[rows]
    condition_index = np.zeros(len(responses.conditions.names), dtype=int)
    for index, name in enumerate(conditions):
        code = responses.conditions.names.index(name)
        condition_index[code] = index
        outcomes = set(np.unique(is_correct[condition == code]).tolist())
        if len(outcomes) < 2:
            state = "no informative responses" if not outcomes else "all responses the same"
            notes.append(f"model not fitted: condition {name!r} has {state} (odds 0 or 1)")
            return None, notes
    participant = responses.participant[rows]
    participants = np.unique(participant)
    n_items = int(np.sum(informative))
    n_params_with_items = len(conditions) + n_items - 1
    item_effects = n_items > 1 and len(participants) > n_params_with_items
    if n_items > 1 and not item_effects:
        notes.append(
            f"model: {len(participants)} participants are too few for item effects "
            f"({n_params_with_items} parameters); condition only"
        )
    n_params = n_params_with_items if item_effects else len(conditions)
    if len(participants) <= n_params:
        notes.append(f"model not fitted: {len(participants)} participants are too few")
        return None, notes
    if len(rows) * n_params > MODEL_MAX_CELLS:
        notes.append(
            f"model not fitted: {len(rows)} responses x {n_params} parameters are more than "
            f"the {MODEL_MAX_CELLS:,} cells (study.results.analysis.MODEL_MAX_CELLS) it is fitted "
            "up to, to bound its memory; so no Wald test or pairwise comparisons"
        )
        return None, notes
    exog = np.zeros((len(rows), n_params))
    exog[:, 0] = 1
    column = condition_index[condition]
    exog[np.flatnonzero(column), column[column > 0]] = 1
    if item_effects:
        item_ranks = items.sorted_ranks(np.flatnonzero(informative))
        column = item_ranks[responses.item[rows]]
        exog[np.flatnonzero(column), len(conditions) - 1 + column[column > 0]] = 1
    if np.linalg.matrix_rank(exog) < n_params:
        notes.append("model not fitted: conditions and items are confounded (design not full rank)")
        return None, notes
    endog = is_correct.astype(float)
    groups = responses.participants.sorted_ranks(participants)[participant]
    model = GEE(
        endog,
        exog,
        groups=groups,
        family=families.Binomial(),
        cov_struct=cov_struct.Exchangeable(),
    )
    with warnings.catch_warnings():
        # Both mean the iterations ran off (overflow, non-convergence): not a usable fit.
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.simplefilter("error", RuntimeWarning)
        try:
            result = model.fit(cov_type="bias_reduced", maxiter=100)
            params = np.asarray(result.params)
            cov = np.asarray(result.cov_params())
        except (ConvergenceWarning, RuntimeWarning, np.linalg.LinAlgError, ValueError) as error:
            notes.append(f"model not fitted: {error}")
            return None, notes
    k = slice(1, len(conditions))
    usable = (
        np.all(np.isfinite(params))
        and np.all(np.isfinite(cov))
        and np.all(np.abs(params) < MAX_LOG_ODDS)
        and np.all(np.linalg.eigvalsh(cov[k, k]) > 0)
    )
    if not usable:
        notes.append(
            "model not fitted: the estimates diverge (some condition or item is all or "
            "nearly all right or wrong within the other effects)"
        )
        return None, notes
    description = (
        "GEE logistic: condition + item fixed effects, exchangeable, participant clusters"
        if item_effects
        else "GEE logistic: condition, exchangeable, participant clusters"
    )
    return (
        _Model(
            fit=ModelFit(
                description=description,
                n_participants=len(participants),
                n_responses=len(rows),
                item_effects=item_effects,
                items_dropped=dropped,
                working_correlation=float(result.model.cov_struct.dep_params),
            ),
            condition_params=params[k],
            condition_cov=cov[k, k],
        ),
        notes,
    )


def _wald(model: _Model) -> OmnibusTest:
    beta, cov = model.condition_params, model.condition_cov
    statistic = float(beta @ np.linalg.solve(cov, beta))
    return OmnibusTest(
        name="GEE Wald, all conditions equal",
        statistic=statistic,
        df=len(beta),
        p_value=float(stats.chi2.sf(statistic, len(beta))),
    )


def _pairwise(model: _Model, summaries: list[ConditionSummary]) -> list[PairwiseComparison]:
    # Coefficient 0 is the reference (first) condition, fixed at log-odds 0.
    beta = np.concatenate([[0.0], model.condition_params])
    cov = np.zeros((len(beta), len(beta)))
    cov[1:, 1:] = model.condition_cov
    pairs = list(combinations(range(len(summaries)), 2))
    raw = []
    for a, b in pairs:
        contrast = np.zeros(len(beta))
        contrast[a], contrast[b] = -1, 1
        estimate = float(contrast @ beta)
        se = math.sqrt(float(contrast @ cov @ contrast))
        raw.append((estimate, se, float(2 * stats.norm.sf(abs(estimate / se)))))
    adjusted = holm([p for _, _, p in raw])
    return [
        PairwiseComparison(
            condition_a=summaries[a].name,
            condition_b=summaries[b].name,
            accuracy_difference=summaries[b].accuracy.estimate - summaries[a].accuracy.estimate,
            odds_ratio=math.exp(estimate),
            odds_ratio_low=math.exp(estimate - Z_95 * se),
            odds_ratio_high=math.exp(estimate + Z_95 * se),
            p_value=p,
            p_holm=p_holm,
        )
        for (a, b), (estimate, se, p), p_holm in zip(pairs, raw, adjusted, strict=True)
    ]


def analyze_responses(
    rows: Iterable[dict],
    *,
    n_choices: int,
    confidence_levels: Sequence[int],
    question_type: str = "species_identification",
    condition_order: Sequence[str] = (),
    include_pilot: bool = False,
    include_excluded: bool = False,
    fit_model: bool = True,
    ai_answer_hidden: Collection[str] = (),
) -> StudyReport:
    """Analyse main-phase responses; attention checks and training are left out.

    `rows` carry the export's columns participant, condition, item, phase, is_correct,
    confidence, ai_correct, ai_prediction, answer, response_ms, participant_pilot and
    participant_excluded. Conditions are reported in `condition_order` (the first is the
    model's reference), then any others by name. `fit_model=False` skips the GEE model (and
    so the Wald test and the pairwise comparisons).
    """
    collector = ResponseCollector(
        n_choices=n_choices,
        confidence_levels=confidence_levels,
        question_type=question_type,
        include_pilot=include_pilot,
        include_excluded=include_excluded,
    )
    for row in rows:
        collector.add(row)
    return analyze_collected(
        collector,
        condition_order=condition_order,
        fit_model=fit_model,
        ai_answer_hidden=ai_answer_hidden,
    )


def analyze_collected(
    collector: ResponseCollector,
    *,
    condition_order: Sequence[str] = (),
    fit_model: bool = True,
    ai_answer_hidden: Collection[str] = (),
) -> StudyReport:
    """`analyze_responses` of the rows a collector was given. `ai_answer_hidden`: conditions
    that do not show the AI's answer, where agreeing with it is not reliance on it."""
    n_choices, confidence_levels = collector.n_choices, collector.confidence_levels
    if n_choices < 2:
        raise AnalysisError("a question needs at least two answer choices")
    responses = collector.responses()
    n_pilot, n_excluded = collector.participants_dropped
    if not len(responses):
        raise NothingToAnalyse(pilot=n_pilot, excluded=n_excluded)
    present = responses.conditions.names
    order = [name for name in condition_order if name in present]
    order += sorted(set(present) - set(order))
    notes = [
        f"condition {name!r} has no main responses"
        for name in condition_order
        if name not in present
    ]
    summaries = [
        _condition_summary(
            name,
            responses,
            np.flatnonzero(responses.condition == present.index(name)),
            ai_answer_shown=name not in ai_answer_hidden,
        )
        for name in order
    ]
    notes += _few_items_notes(summaries)
    chi_square, wald, model_fit, pairwise = _tests(responses, order, summaries, fit_model, notes)
    return StudyReport(
        conditions=summaries,
        n_choices=n_choices,
        confidence_levels=tuple(confidence_levels),
        participants_dropped_pilot=n_pilot,
        participants_dropped_excluded=n_excluded,
        chi_square=chi_square,
        wald=wald,
        pairwise=pairwise,
        model=model_fit,
        notes=notes,
    )


def _few_items_notes(summaries: list[ConditionSummary]) -> list[str]:
    """A note where the AI-right or AI-wrong accuracy rests on too few items to generalise."""
    notes = []
    for what, counts in (
        ("wrong", [s.ai_wrong_items for s in summaries]),
        ("right", [s.ai_right_items for s in summaries]),
    ):
        if 0 < min(counts) < FEW_ITEMS:
            notes.append(
                f"accuracy where the AI was {what} rests on {min(counts)} item(s) in some "
                "condition: it tells how people did on those images, not how they do whenever "
                f"the AI is {what}"
            )
    return notes


def _tests(responses, order, summaries, fit_model: bool, notes: list[str]):
    """The omnibus chi-square, and the model's Wald test and pairs; why any is missing goes
    to `notes`."""
    chi_square = wald = model_fit = None
    pairwise: list[PairwiseComparison] = []
    if len(summaries) < 2:
        notes.append("one condition only: nothing to compare")
    elif any(s.accuracy.n_participants < 2 for s in summaries):
        notes.append("tests need at least two participants in every condition")
    else:
        pooled = sum(s.accuracy.n_correct for s in summaries)
        if 0 < pooled < len(responses):
            chi_square = rao_scott_chi_square([s.accuracy for s in summaries])
        else:
            notes.append("chi-square not computed: every response is right, or every one wrong")
        if fit_model:
            model, model_notes = _fit_model(responses, order)
            notes += model_notes
            if model is not None:
                model_fit = model.fit
                wald = _wald(model)
                pairwise = _pairwise(model, summaries)
    return chi_square, wald, model_fit, pairwise


def _percent(value: float) -> str:
    return f"{100 * value:5.1f}%"


def _interval(accuracy: Accuracy | None) -> str:
    if accuracy is None:
        return "-"
    return (
        f"{_percent(accuracy.estimate)} [{_percent(accuracy.low).strip()}, "
        f"{_percent(accuracy.high).strip()}] n={accuracy.n_responses}"
    )


def _p(value: float) -> str:
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def report_text(report: StudyReport) -> str:
    """The report as plain-text tables, for the command line.

    Longer than 60 lines: one table after another, top to bottom as they are printed."""
    lines = [
        "Accuracy per condition (main trials). '95% interval': Wilson on the effective sample",
        "size n / deff (participants clustered); 'resp 95% interval': responses treated as",
        "independent, too narrow when participants differ, for reference only.",
        "",
        f"{'condition':<20} {'partic.':>7} {'resp.':>6} {'accuracy':>9}  "
        f"{'95% interval':<17} {'deff':>5}  {'resp 95% interval':<17}",
    ]
    for s in report.conditions:
        a = s.accuracy
        lines.append(
            f"{s.name:<20} {a.n_participants:>7} {a.n_responses:>6} {_percent(a.estimate):>9}  "
            f"{_percent(a.low) + ' -' + _percent(a.high):<17} {a.design_effect:>5.2f}  "
            f"{_percent(a.response_low) + ' -' + _percent(a.response_high):<17}"
        )
    lines += ["", f"Chance level: {_percent(report.chance).strip()} ({report.n_choices} choices)."]
    if report.participants_dropped_pilot or report.participants_dropped_excluded:
        lines.append(
            f"Left out: {report.participants_dropped_pilot} pilot and "
            f"{report.participants_dropped_excluded} excluded participant(s)."
        )
    lines += ["", "Omnibus tests (are all conditions equal?)"]
    for test in (report.chi_square, report.wald):
        if test is not None:
            lines.append(f"  {test.name}: {test.statistic:.2f}, df {test.df}, p {_p(test.p_value)}")
    if report.model is not None:
        m = report.model
        lines += [
            "",
            f"Model: {m.description};",
            f"  {m.n_participants} participants, {m.n_responses} responses, working "
            f"correlation {m.working_correlation:.3f}, bias-reduced sandwich covariance.",
        ]
    if report.pairwise:
        lines += [
            "",
            "Pairwise comparisons (model contrasts; Holm-corrected over all pairs)",
            f"  {'a':<16} {'b':<16} {'diff b-a':>9} {'odds ratio b/a [95%]':<24} "
            f"{'p':>8} {'p Holm':>8}",
        ]
        for c in report.pairwise:
            ratio = f"{c.odds_ratio:.2f} [{c.odds_ratio_low:.2f}, {c.odds_ratio_high:.2f}]"
            lines.append(
                f"  {c.condition_a:<16} {c.condition_b:<16} "
                f"{100 * c.accuracy_difference:>+8.1f}p {ratio:<24} "
                f"{_p(c.p_value):>8} {_p(c.p_holm):>8}"
            )
    lines += [
        "",
        "Reliance: accuracy where the AI was right / wrong; agreement with the AI where it",
        "was wrong (over-reliance).",
        f"  {'condition':<20} {'AI right':<38} {'AI wrong':<38} {'agrees with wrong AI':<30}",
    ]
    for s in report.conditions:
        agreement = (
            _interval(s.ai_wrong_agreement) if s.ai_answer_shown else "AI's answer not shown"
        )
        lines.append(
            f"  {s.name:<20} {_interval(s.ai_right) + f' ({s.ai_right_items} items)':<38} "
            f"{_interval(s.ai_wrong) + f' ({s.ai_wrong_items} items)':<38} {agreement:<30}"
        )
    low, high = min(report.confidence_levels), max(report.confidence_levels)
    lines += [
        "",
        f"Calibration: confidence {low} = chance, {high} = certain, linear between; "
        f"ECE over {ECE_BINS} bins.",
        f"  {'condition':<20} {'Brier':>7} {'ECE':>7}",
    ]
    for s in report.conditions:
        lines.append(f"  {s.name:<20} {s.brier:>7.3f} {s.ece:>7.3f}")
    lines += [
        "",
        "Response times (ms: the browser's where consistent with the server's, else the server's)",
        f"  {'condition':<20} {'n':>6} {'median':>8} {'IQR':>17}",
    ]
    for s in report.conditions:
        t = s.response_times
        if t is None:
            lines.append(f"  {s.name:<20} {0:>6} {'-':>8} {'-':>17}")
        else:
            iqr = f"{t.q1_ms:.0f}-{t.q3_ms:.0f}"
            lines.append(f"  {s.name:<20} {t.n:>6} {t.median_ms:>8.0f} {iqr:>17}")
    if report.notes:
        lines += ["", "Notes:", *(f"  - {note}" for note in report.notes)]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _error_bars(accuracies: list[Accuracy]) -> np.ndarray:
    return np.array(
        [[a.estimate - a.low for a in accuracies], [a.high - a.estimate for a in accuracies]]
    )


def report_svgs(report: StudyReport) -> dict[str, str]:
    """The report's plots as SVG documents, keyed by their PLOT_TITLES stem.

    Longer than 60 lines: one plot after another, each a few lines of matplotlib calls."""
    names = [s.name for s in report.conditions]
    x = np.arange(len(names))
    width = max(4.5, 1.3 * len(names) + 2)
    # Type large enough to stay legible when the dashboard scales a plot to a phone's width.
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 13}):
        figure = Figure(figsize=(width, 4), layout="constrained")
        axes = figure.add_subplot()
        accuracies = [s.accuracy for s in report.conditions]
        axes.errorbar(
            x,
            [a.estimate for a in accuracies],
            yerr=_error_bars(accuracies),
            fmt="o",
            markersize=8,
            capsize=8,
            linewidth=2,
            color="#1f5a99",
        )
        axes.axhline(report.chance, color="#888888", linestyle="--", linewidth=1)
        axes.text(x[-1] + 0.45, report.chance, "chance", va="bottom", ha="right", color="#555555")
        axes.set_xticks(
            x, [f"{s.name}\n({s.accuracy.n_participants} part.)" for s in report.conditions]
        )
        axes.set_xlim(-0.6, len(names) - 0.4)
        axes.set_ylim(0, 1)
        axes.set_xlabel("Condition")
        axes.set_ylabel("Accuracy, 95% Wilson interval")
        axes.set_title(PLOT_TITLES["accuracy_by_condition"])
        axes.grid(axis="y", alpha=0.3)
        by_condition = _svg(figure)

        figure = Figure(figsize=(width, 4), layout="constrained")
        axes = figure.add_subplot()
        for offset, label, key, colour in (
            (-0.12, "AI right", "ai_right", "#2a7f3f"),
            (0.12, "AI wrong", "ai_wrong", "#b03a2e"),
        ):
            points = [(i, getattr(s, key)) for i, s in enumerate(report.conditions)]
            points = [(i, a) for i, a in points if a is not None]
            if not points:
                continue
            axes.errorbar(
                [i + offset for i, _ in points],
                [a.estimate for _, a in points],
                yerr=_error_bars([a for _, a in points]),
                fmt="o",
                markersize=7,
                capsize=6,
                linewidth=2,
                color=colour,
                label=label,
            )
        axes.axhline(report.chance, color="#888888", linestyle="--", linewidth=1, label="chance")
        axes.set_xticks(x, names)
        axes.set_xlim(-0.6, len(names) - 0.4)
        axes.set_ylim(0, 1)
        axes.set_xlabel("Condition")
        axes.set_ylabel("Accuracy, 95% Wilson interval")
        axes.set_title(PLOT_TITLES["accuracy_by_ai_correctness"])
        axes.grid(axis="y", alpha=0.3)
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
        by_ai = _svg(figure)
    return {"accuracy_by_condition": by_condition, "accuracy_by_ai_correctness": by_ai}
