"""Outcome statistics: planted differences come back, null data rejects at the nominal rate,
the formulas match hand computations, and analyze_study runs on a real simulated study."""

import xml.etree.ElementTree as ET
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from study.flow.simulation import BotBehaviour, participants_simulate
from study.results import analysis, reports
from study.results.analysis import (
    AnalysisError,
    analyze_responses,
    brier_score,
    clustered_accuracy,
    confidence_probability,
    expected_calibration_error,
    holm,
    report_svgs,
    report_text,
    wilson_interval,
)
from study.results.reports import study_analysis
from tests.study.conftest import make_study

SCALE = (1, 2, 3, 4, 5)
AI_EFFECT = 0.08  # planted: this much easier where the AI is right, harder where it is wrong


def simulate_rows(rng, accuracies, *, per_condition, n_items, spread=0.15):
    """Rows like the export's, with known accuracies: each participant's ability is the
    condition's accuracy plus a symmetric random effect (Beta(2, 2) over +-spread); half the
    items are AI-right (+AI_EFFECT) and half AI-wrong (-AI_EFFECT), so the condition's mean
    accuracy is exactly the planted one. A wrong answer on an AI-wrong item is the AI's."""
    rows = []
    participant = 0
    for condition, accuracy in accuracies.items():
        for _ in range(per_condition):
            ability = accuracy + 2 * spread * (rng.beta(2, 2) - 0.5)
            for item in range(n_items):
                ai_correct = item % 2 == 0
                correct = bool(rng.random() < ability + (AI_EFFECT if ai_correct else -AI_EFFECT))
                ai_answer = "right" if ai_correct else "wrong"
                rows.append(
                    {
                        "participant": participant,
                        "condition": condition,
                        "item": item,
                        "phase": "main",
                        "answer": "right" if correct else "wrong",
                        "ai_prediction": ai_answer,
                        "is_correct": int(correct),
                        "confidence": int(rng.integers(1, 6)),
                        "ai_correct": int(ai_correct),
                        "response_ms": int(rng.exponential(3000)) + 200,
                        "participant_pilot": False,
                        "participant_excluded": False,
                    }
                )
            participant += 1
    return rows


def analyze(rows, **kwargs):
    return analyze_responses(rows, n_choices=4, confidence_levels=SCALE, **kwargs)


def test_planted_accuracies_are_recovered_and_the_big_difference_found():
    planted = {"none": 0.45, "gradcam": 0.60, "igospp": 0.75}
    rows = simulate_rows(np.random.default_rng(0), planted, per_condition=40, n_items=12)
    report = analyze(rows, condition_order=list(planted))

    assert [s.name for s in report.conditions] == list(planted)
    for summary in report.conditions:
        accuracy = summary.accuracy
        assert accuracy.n_participants == 40 and accuracy.n_responses == 480
        assert accuracy.low < planted[summary.name] < accuracy.high
        assert accuracy.low <= accuracy.response_low  # clustering never narrows the interval
        # 240 responses each side: a standard error of about 0.033, so 0.1 is three of them
        expected_right, expected_wrong = (
            planted[summary.name] + AI_EFFECT,
            planted[summary.name] - AI_EFFECT,
        )
        assert summary.ai_right.estimate == pytest.approx(expected_right, abs=0.1)
        assert summary.ai_wrong.estimate == pytest.approx(expected_wrong, abs=0.1)
        # every wrong answer on an AI-wrong item was the AI's answer
        assert summary.ai_wrong_agreement.estimate == pytest.approx(1 - summary.ai_wrong.estimate)
        assert summary.response_times.n == 480 and summary.response_times.median_ms > 200
    assert report.model.item_effects and report.model.n_participants == 120
    assert report.chi_square.p_value < 0.001 and report.wald.p_value < 0.001
    pairs = {(c.condition_a, c.condition_b): c for c in report.pairwise}
    assert set(pairs) == {("none", "gradcam"), ("none", "igospp"), ("gradcam", "igospp")}
    big = pairs[("none", "igospp")]
    assert big.p_holm < 0.001 and big.odds_ratio_low > 1
    assert big.accuracy_difference == pytest.approx(0.30, abs=0.06)
    assert all(c.p_holm >= c.p_value for c in report.pairwise)


def test_with_no_planted_difference_the_tests_reject_at_the_nominal_rate():
    rng = np.random.default_rng(1)

    def null_data():
        equal = {"a": 0.6, "b": 0.6, "c": 0.6}
        return simulate_rows(rng, equal, per_condition=12, n_items=12, spread=0.3)

    # Participants differ (random effect), so a chi-square that ignored clustering would
    # reject about 17% of these; the Rao-Scott adjustment must bring it back to about 5%.
    chi_square_rejections = sum(
        analyze(null_data(), fit_model=False).chi_square.p_value < 0.05 for _ in range(300)
    )
    assert 0.015 <= chi_square_rejections / 300 <= 0.10
    wald_rejections = sum(analyze(null_data()).wald.p_value < 0.05 for _ in range(100))
    assert 0.01 <= wald_rejections / 100 <= 0.12


def test_formulas_match_hand_computations():
    # Wilson 8/10 and 0/10, as in Newcombe (1998), table I
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    # Holm: sorted 0.005*4, 0.01*3, 0.03*2, then 0.04*1 raised to the running maximum 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # 1 = chance (4 choices), 5 = certain
    assert [confidence_probability(c, levels=SCALE, n_choices=4) for c in (1, 3, 5)] == [
        0.25,
        0.625,
        1.0,
    ]
    probabilities, outcomes = [0.25, 0.625, 1.0, 1.0], [False, True, True, False]
    assert brier_score(probabilities, outcomes) == pytest.approx((0.25**2 + 0.375**2 + 0 + 1) / 4)
    # bins (0.2, 0.3]: |0 - .25| * 1/4; (0.6, 0.7]: |1 - .625| * 1/4; (0.9, 1]: |.5 - 1| * 2/4
    assert expected_calibration_error(probabilities, outcomes) == pytest.approx(
        0.0625 + 0.09375 + 0.25
    )
    # bins are closed on the right: 0.5 falls in (0.4, 0.5], apart from 0.55
    assert expected_calibration_error([0.5, 0.55], [True, False]) == pytest.approx(0.25 + 0.275)
    # two participants, 2/4 and 4/4 right: robust variance 2 * (1 + 1) / 64 over binomial
    # 0.75 * 0.25 / 8 gives a design effect of 8/3 and an effective sample of 3
    accuracy = clustered_accuracy([2, 4], [4, 4])
    assert accuracy.estimate == 0.75 and accuracy.design_effect == pytest.approx(8 / 3)
    assert (accuracy.low, accuracy.high) == pytest.approx(wilson_interval(2.25, 3))
    assert (accuracy.response_low, accuracy.response_high) == wilson_interval(6, 8)


def test_only_main_responses_of_counted_participants_are_analysed():
    rows = simulate_rows(np.random.default_rng(2), {"a": 0.6, "b": 0.7}, per_condition=6, n_items=4)
    rows += [{**rows[0], "phase": "attention", "item": 99, "is_correct": 0}]
    rows += [{**rows[0], "phase": "training", "item": 98, "is_correct": 0}]
    for row in rows:
        row["participant_pilot"] = row["participant"] == 0
        row["participant_excluded"] = "1" if row["participant"] in (1, 2) else "0"
    report = analyze(rows)
    assert report.conditions[0].accuracy.n_participants == 3
    assert report.conditions[0].accuracy.n_responses == 12
    assert (report.participants_dropped_pilot, report.participants_dropped_excluded) == (1, 2)
    everyone = analyze(rows, include_pilot=True, include_excluded=True)
    assert everyone.conditions[0].accuracy.n_responses == 24
    assert "Left out: 1 pilot and 2 excluded" in report_text(report)


def test_degenerate_studies_get_messages_not_crashes():
    rng = np.random.default_rng(3)
    single = analyze(simulate_rows(rng, {"a": 0.6}, per_condition=5, n_items=4))
    assert single.chi_square is None and single.pairwise == []
    assert "one condition only: nothing to compare" in single.notes

    rows = simulate_rows(rng, {"a": 0.6, "b": 0.7}, per_condition=20, n_items=6)
    for row in rows:
        if row["item"] == 0:
            row["is_correct"] = 1
    report = analyze(rows)
    assert report.model.items_dropped == 1 and report.wald is not None
    assert any("1 item(s) answered all right or all wrong" in note for note in report.notes)

    for row in rows:
        if row["condition"] == "b":
            row["is_correct"] = 1
    perfect = analyze(rows)
    assert perfect.model is None and perfect.pairwise == [] and perfect.chi_square is not None
    assert "model not fitted: condition 'b' has all responses the same (odds 0 or 1)" in (
        perfect.notes
    )

    few = analyze(simulate_rows(rng, {"a": 0.5, "b": 0.8}, per_condition=3, n_items=6))
    assert few.model is None or not few.model.item_effects
    assert any("too few" in note for note in few.notes)
    lonely = analyze(simulate_rows(rng, {"a": 0.5, "b": 0.8}, per_condition=1, n_items=6))
    assert "tests need at least two participants in every condition" in lonely.notes
    assert lonely.conditions[0].accuracy.design_effect == 6  # one participant: n_eff = 1

    with pytest.raises(AnalysisError, match="no main-phase responses"):
        analyze([{**rows[0], "phase": "attention"}])
    with pytest.raises(AnalysisError, match="lack the column"):
        analyze([{key: value for key, value in rows[0].items() if key != "participant_pilot"}])
    with pytest.raises(AnalysisError, match="not on the scale"):
        analyze([{**rows[0], "confidence": 7}])
    report_svgs(single)  # one condition still plots


def test_svgs_have_labelled_axes():
    rows = simulate_rows(np.random.default_rng(4), {"a": 0.5, "b": 0.7}, per_condition=8, n_items=4)
    svgs = report_svgs(analyze(rows))
    assert set(svgs) == {"accuracy_by_condition", "accuracy_by_ai_correctness"}
    for svg in svgs.values():
        ET.fromstring(svg)  # well-formed
        assert "Accuracy, 95% Wilson interval" in svg and "Condition" in svg
    assert "AI wrong" in svgs["accuracy_by_ai_correctness"]


@pytest.mark.django_db
def test_analyze_study_command_on_simulated_participants(classifier, tmp_path, monkeypatch):
    study = make_study(classifier, per_condition=6, n_items=5, n_training=1, n_attention=1)
    with pytest.raises(CommandError, match="no main-phase responses"):
        call_command("analyze_study", study.slug)
    participants_simulate(
        allow_live=True,
        study=study,
        n=12,
        behaviour_by_condition={
            "none": BotBehaviour(accuracy=0.3, mean_response_ms=3000),
            "gradcam": BotBehaviour(accuracy=0.9, mean_response_ms=1500),
        },
        default_behaviour=BotBehaviour(accuracy=0.5, mean_response_ms=2000),
        seed=5,
    )
    out = StringIO()
    call_command("analyze_study", study.slug, svg_dir=tmp_path, stdout=out, stderr=StringIO())
    text = out.getvalue()
    assert "Accuracy per condition" in text and "Brier" in text and "median" in text
    assert text.count("gradcam") >= 4 and f"({len(classifier.class_order)} choices)" in text
    svg = (tmp_path / "accuracy_by_condition.svg").read_text()
    assert "gradcam" in svg and "Accuracy by condition" in svg
    assert "AI right" in (tmp_path / "accuracy_by_ai_correctness.svg").read_text()

    report = study_analysis(study=study)
    assert [s.name for s in report.conditions] == ["none", "gradcam"]
    assert all(s.accuracy.n_participants == 6 for s in report.conditions)
    assert all(s.accuracy.n_responses == 30 for s in report.conditions)  # main trials only
    assert report.conditions[0].accuracy.estimate < report.conditions[1].accuracy.estimate
    assert report.n_choices == len(classifier.class_order)

    # Once the export carries the pilot flag, the analysis reads it.
    first = study.participants.order_by("pk").first()
    export_rows = reports.study_export_rows
    monkeypatch.setattr(
        reports,
        "study_export_rows",
        lambda *, study: (
            {**row, "participant_pilot": row["participant"] == first.pk}
            for row in export_rows(study=study)
        ),
    )
    without_pilot = study_analysis(study=study)
    assert sum(s.accuracy.n_participants for s in without_pilot.conditions) == 11
    assert without_pilot.participants_dropped_pilot == 1
    with_pilot = study_analysis(study=study, include_pilot=True)
    assert sum(s.accuracy.n_participants for s in with_pilot.conditions) == 12


@pytest.mark.django_db
def test_analyze_study_names_bad_input(classifier, tmp_path):
    study = make_study(classifier, launch=False)
    with pytest.raises(CommandError, match="no study with slug 'nope'"):
        call_command("analyze_study", "nope")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("analyze_study", study.slug, svg_dir=tmp_path / "missing")


def test_all_right_or_all_wrong_conditions_are_plotted():
    """At 0% or 100% the Wilson bound is exactly the estimate (no negative error bar)."""
    for n in range(1, 60):
        assert wilson_interval(n, n)[1] == 1.0 and wilson_interval(0, n)[0] == 0.0
    rows = simulate_rows(np.random.default_rng(6), {"a": 0.5, "b": 0.7}, per_condition=5, n_items=4)
    for row in rows:
        if row["condition"] == "b":
            row["is_correct"] = 1
    svgs = report_svgs(analyze(rows))
    assert "AI wrong" in svgs["accuracy_by_ai_correctness"]


def test_results_match_those_of_the_row_by_row_analysis():
    """Values the analysis gave when it held each response as a Python object (before the
    columns), on rows with string participant ids, participants interleaved, and some AI
    correctness and response times unknown."""
    rows = simulate_rows(
        np.random.default_rng(7), {"a": 0.55, "b": 0.7}, per_condition=15, n_items=6, spread=0.35
    )
    for index, row in enumerate(rows):
        row["participant"] = f"p{row['participant']}"
        if index % 7 == 0:
            row["ai_correct"] = ""
        if index % 5 == 0:
            row["response_ms"] = None
    report = analyze(rows[1::2] + rows[::2], condition_order=["b", "a"])

    expected = {
        "b": (54, 0.4836572173326824, 1.2698412698412698, 0.6410256410256411, 38,
              0.42105263157894735, 0.28463541666666664, 0.18472222222222223, 2464.5, 1320.5),
        "a": (53, 0.4774089969058805, 1.167043053835506, 0.7105263157894737, 39,
              0.5128205128205128, 0.30668402777777776, 0.24861111111111106, 2635.5, 1026.75),
    }  # fmt: skip
    assert [s.name for s in report.conditions] == ["b", "a"]
    for s in report.conditions:
        assert (s.accuracy.n_participants, s.accuracy.n_responses) == (15, 90)
        assert s.response_times.n == 72
        assert (
            s.accuracy.n_correct,
            s.accuracy.low,
            s.accuracy.design_effect,
            s.ai_right.estimate,
            s.ai_wrong.n_responses,
            s.ai_wrong_agreement.estimate,
            s.brier,
            s.ece,
            s.response_times.median_ms,
            s.response_times.q1_ms,
        ) == pytest.approx(expected[s.name], rel=1e-12)
    assert report.chi_square.statistic == pytest.approx(0.01891302291668912, rel=1e-12)
    # The model's iterations stop at a tolerance, so its figures match less closely.
    assert report.wald.statistic == pytest.approx(0.020626627188107826, rel=1e-6)
    assert report.model.working_correlation == pytest.approx(0.03149450376794587, rel=1e-6)
    (pair,) = report.pairwise
    assert (pair.odds_ratio, pair.odds_ratio_low) == pytest.approx(
        (0.9499676878752876, 0.47152370669100213), rel=1e-6
    )
    assert (report.model.n_participants, report.model.n_responses) == (30, 180)


def test_the_model_is_left_out_above_its_cell_limit_with_a_note(monkeypatch):
    rows = simulate_rows(
        np.random.default_rng(8), {"a": 0.5, "b": 0.7}, per_condition=20, n_items=6
    )
    fitted = analyze(rows)
    # 240 responses; condition (2) + item (6 - 1) effects: 7 parameters
    monkeypatch.setattr(analysis, "MODEL_MAX_CELLS", 240 * 7)
    assert analyze(rows) == fitted  # at the limit the model is still fitted
    monkeypatch.setattr(analysis, "MODEL_MAX_CELLS", 240 * 7 - 1)
    report = analyze(rows)

    assert report.model is None and report.wald is None and report.pairwise == []
    assert report.conditions == fitted.conditions and report.chi_square == fitted.chi_square
    note = (
        "model not fitted: 240 responses x 7 parameters are more than the 1,679 cells "
        "(study.results.analysis.MODEL_MAX_CELLS) it is fitted up to, to bound its memory; "
        "so no Wald test or pairwise comparisons"
    )
    # (The other notes: the AI-right and AI-wrong accuracies rest on 3 items each.)
    assert [n for n in report.notes if not n.startswith("accuracy where the AI")] == [note]
    assert note in report_text(report)


@pytest.mark.django_db
def test_analyze_study_on_a_pilot_points_at_include_pilot(classifier):
    """A pilot's participants are left out by default: the command says how many and how to
    include them, instead of only "no main-phase responses"."""
    study = make_study(classifier, per_condition=2, n_items=3, n_training=1, n_attention=1)
    participants_simulate(
        allow_live=True,
        study=study,
        n=4,
        behaviour_by_condition={},
        default_behaviour=BotBehaviour(accuracy=0.5, mean_response_ms=2000),
        seed=3,
    )
    study.participants.update(is_pilot=True)
    with pytest.raises(CommandError) as refused:
        call_command("analyze_study", study.slug)
    assert str(refused.value) == (
        f"study {study.slug!r}: no main-phase responses to analyse (4 pilot participant(s) "
        f"left out); to analyse them: analyze_study {study.slug} --include-pilot"
    )
    out = StringIO()
    call_command("analyze_study", study.slug, "--include-pilot", stdout=out)
    assert "Accuracy per condition" in out.getvalue()


def test_reliance_names_its_items_and_skips_agreement_where_the_ai_is_not_shown():
    """Agreeing with a wrong AI one cannot see is no over-reliance: a condition that does not
    show the AI's answer reports none. Each accuracy split by the AI says on how many items
    it rests, and one resting on few items gets a note."""
    rows = simulate_rows(
        np.random.default_rng(4), {"none": 0.5, "shown": 0.7}, per_condition=6, n_items=8
    )
    # Only item 1 is AI-wrong: the "AI wrong" accuracy rests on one item.
    rows = [{**row, "ai_correct": int(row["item"] != 1)} for row in rows]
    report = analyze(rows, condition_order=["none", "shown"], ai_answer_hidden={"none"})
    none, shown = report.conditions
    assert none.ai_wrong_agreement is None and not none.ai_answer_shown
    assert shown.ai_wrong_agreement is not None and shown.ai_answer_shown
    assert (none.ai_wrong_items, none.ai_right_items) == (1, 7)
    assert any("AI was wrong rests on 1 item(s)" in note for note in report.notes)
    text = report_text(report)
    reliance = text[text.index("Reliance:") : text.index("Calibration:")]
    [none_line] = [line for line in reliance.splitlines() if line.strip().startswith("none ")]
    assert "(1 items)" in none_line and "AI's answer not shown" in none_line


@pytest.mark.django_db
def test_study_analysis_hides_agreement_where_the_condition_hides_the_ai(classifier):
    study = make_study(classifier, per_condition=2, n_items=3, n_training=1, n_attention=1)
    participants_simulate(
        allow_live=True,
        study=study,
        n=4,
        behaviour_by_condition={},
        default_behaviour=BotBehaviour(accuracy=0.5, mean_response_ms=2000),
        seed=3,
    )
    study.conditions.filter(name="gradcam").update(show_ai_prediction=True)
    shown = {s.name: s.ai_answer_shown for s in study_analysis(study=study).conditions}
    assert shown == {"none": False, "gradcam": True}
