"""Simulated participants go through the real services; their known accuracy comes back."""

import pytest
from django.core.management import CommandError, call_command

from study.models import Participant, Response
from study.researcher.dashboard import study_progress
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db


def test_bots_complete_with_the_accuracy_they_were_given(classifier):
    study = make_study(
        classifier,
        per_condition=20,
        n_items=5,
        n_training=1,
        n_attention=2,
        comprehension_questions=[{"question": "Ready?", "choices": ["No", "Yes"], "answer": 1}],
    )
    call_command(
        "simulate_participants",
        study.slug,
        "--allow-live",
        "--n",
        "20",
        "--accuracy",
        "0",
        "--condition-accuracy",
        "gradcam=1",
        "--condition-response-ms",
        "gradcam=900",
    )
    assert Participant.objects.filter(status="completed").count() == 20
    progress = {row.name: row for row in study_progress(study=study)}
    assert progress["gradcam"].completed == progress["none"].completed == 10
    assert progress["gradcam"].accuracy == 1.0 and progress["none"].accuracy == 0.0
    assert Response.objects.count() == 20 * 8
    attention = Response.objects.filter(phase="attention")
    assert attention.count() == 40
    gradcam_attention = attention.filter(participant__condition__name="gradcam")
    assert all(r.is_correct for r in gradcam_attention)
    gradcam_times = Response.objects.filter(participant__condition__name="gradcam")
    assert all(r.explanation_shown_id is not None for r in gradcam_times)


def test_bots_stop_at_a_full_study_and_bad_arguments_are_named(classifier):
    study = make_study(classifier, per_condition=1)
    with pytest.raises(CommandError, match="full"):
        call_command("simulate_participants", study.slug, "--allow-live", "--n", "3")
    assert Participant.objects.count() == 2
    with pytest.raises(CommandError, match="no condition named"):
        call_command(
            "simulate_participants",
            study.slug,
            "--allow-live",
            "--n",
            "1",
            "--condition-accuracy",
            "lime=0.5",
        )
    with pytest.raises(CommandError, match="expected CONDITION=NUMBER"):
        call_command(
            "simulate_participants",
            study.slug,
            "--allow-live",
            "--n",
            "1",
            "--condition-accuracy",
            "gradcam=high",
        )
