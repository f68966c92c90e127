"""The shortcut audit's strategies, scored on planted item sets (pure functions)."""

import pytest

from study.design.shortcut_audit import AuditCondition, AuditItem, shortcut_audit

AB = dict(choices=["A", "B"], choice_names=["A", "B"], comparative=True)
SPECIES = dict(
    choices=["1", "2", "3", "4"], choice_names=["one", "two", "three", "four"], comparative=False
)


def accuracies(report):
    return {(row.strategy, row.condition): row.accuracy for row in report.rows}


def test_the_larger_picture_wins_when_the_bigger_set_is_always_right():
    items = [
        AuditItem(correct="A", pair_sizes=(5, 4)),
        AuditItem(correct="B", pair_sizes=(3, 4)),
        AuditItem(correct="A", pair_sizes=(6, 5)),
        AuditItem(correct="B", pair_sizes=(2, 3)),
    ]
    report = shortcut_audit(items=items, conditions=[], **AB)
    scores = accuracies(report)
    assert scores[("the larger picture", "")] == 1.0
    assert scores[("always A", "")] == scores[("always B", "")] == 0.5
    assert [row.strategy for row in report.failures] == ["the larger picture"]
    assert "the larger picture: 100.0% (chance 50.0%, +50.0 points)" in report.table()


def test_balanced_pairs_pass_and_ties_count_as_guesses():
    items = [
        AuditItem(correct="A", pair_sizes=(5, 4)),
        AuditItem(correct="A", pair_sizes=(3, 4)),
        AuditItem(correct="B", pair_sizes=(6, 5)),
        AuditItem(correct="B", pair_sizes=(4, 4)),
    ]
    report = shortcut_audit(items=items, conditions=[], **AB)
    assert accuracies(report)[("the larger picture", "")] == pytest.approx(1.5 / 4)
    assert report.failures == ()


def test_reading_the_sag_figure_counts_items_whose_pair_it_draws():
    items = [
        AuditItem(correct="A", pair_sizes=(5, 4), readable_in=frozenset({"sag"})),
        AuditItem(correct="B", pair_sizes=(5, 4), readable_in=frozenset({"sag"})),
        AuditItem(correct="A", pair_sizes=(3, 4)),
        AuditItem(correct="B", pair_sizes=(4, 3)),
    ]
    conditions = [
        AuditCondition("sag", shows_ai_answer=True, has_figure=True),
        AuditCondition("none", shows_ai_answer=True, has_figure=False),
    ]
    report = shortcut_audit(items=items, conditions=conditions, **AB)
    scores = accuracies(report)
    assert scores[("reading the figure", "sag")] == pytest.approx((2 + 2 * 0.5) / 4)
    assert ("reading the figure", "none") not in scores
    assert [(row.strategy, row.condition) for row in report.failures] == [
        ("reading the figure", "sag")
    ]


def test_species_strategies_frequency_elimination_and_the_ai_answer():
    # Two species of four, the first three times as often; the AI right on 3 of 4.
    items = [
        AuditItem(correct="1", ai_answer="1"),
        AuditItem(correct="1", ai_answer="1"),
        AuditItem(correct="1", ai_answer="2"),
        AuditItem(correct="2", ai_answer="2"),
    ]
    conditions = [
        AuditCondition("shown", shows_ai_answer=True, has_figure=False),
        AuditCondition("hidden", shows_ai_answer=False, has_figure=True),
    ]
    report = shortcut_audit(items=items, conditions=conditions, **SPECIES)
    scores = accuracies(report)
    assert scores[("the most frequent answer (one)", "")] == 0.75
    assert scores[("elimination over the item set", "")] == pytest.approx((9 + 1) / 16)
    assert scores[("the AI's answer", "shown")] == 0.75
    assert ("the AI's answer", "hidden") not in scores
    assert ("reading the figure", "hidden") not in scores  # no figure carries a species
    assert all(row.chance == 0.25 for row in report.rows)


def test_one_of_each_species_is_at_chance_and_the_margin_is_the_declared_one():
    items = [AuditItem(correct=value) for value in ("1", "2", "3", "4")]
    report = shortcut_audit(items=items, conditions=[], **SPECIES)
    assert accuracies(report)[("elimination over the item set", "")] == 0.25
    assert report.failures == ()
    skewed = [AuditItem(correct="1")] * 3 + [AuditItem(correct="2")] * 2
    assert shortcut_audit(items=skewed, conditions=[], margin_points=40, **SPECIES).failures == ()
    failing = shortcut_audit(items=skewed, conditions=[], margin_points=10, **SPECIES).failures
    assert {row.strategy for row in failing} >= {"always one", "the most frequent answer (one)"}
