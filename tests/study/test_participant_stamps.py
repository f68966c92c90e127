"""What entry and consent stamp on a participant: a trial order of their own, drawn from a
seed kept with them, and the version of the consent text they agreed to."""

import random

import pytest
from django.urls import reverse

from explain_engine.tasks import precompute_job_run
from study.design.creation import study_precompute_job
from study.design.launch import study_launch
from study.models import Participant, Study, StudyItem
from tests.study.conftest import make_study
from tests.study.test_participant_flow import answer_current_trial, post

pytestmark = pytest.mark.django_db


def _enter(client, study, pid: str) -> str:
    return client.get(
        reverse("study:entry", args=[study.slug]),
        {"js": "1", "PROLIFIC_PID": pid, "STUDY_ID": "s", "SESSION_ID": "x"},
    )["Location"]


def _expected_order(study: Study, seed: int) -> list[int]:
    """Practice first, then main trials and attention checks together, each block shuffled
    by `random.Random(seed)`: the rule the participant's order must follow."""
    rng = random.Random(seed)
    order = []
    for roles in ([StudyItem.Role.TRAINING], [StudyItem.Role.MAIN, StudyItem.Role.ATTENTION]):
        block = list(study.items.filter(role__in=roles).order_by("pk").values_list("pk", flat=True))
        rng.shuffle(block)
        order += block
    return order


def test_each_participant_gets_the_trial_order_their_seed_gives_and_sees_it(client, classifier):
    study = make_study(classifier, n_items=4, n_training=1, n_attention=1, per_condition=20)
    for index in range(8):
        _enter(client, study, f"p{index}")
    participants = list(Participant.objects.filter(study=study))
    wrong = [p.pk for p in participants if p.trial_item_ids != _expected_order(study, p.trial_seed)]
    assert len(participants) == 8 and wrong == []
    assert len({tuple(p.trial_item_ids) for p in participants}) > 1  # their own, not one

    url = _enter(client, study, "p0")
    walker = Participant.objects.get(platform_identity__worker_id="p0")
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    shown = []
    while Participant.objects.get(pk=walker.pk).page in ("trials", "feedback"):
        if Participant.objects.get(pk=walker.pk).page == "feedback":
            post(client, url, page="feedback")
            continue
        shown.append(client.get(url).context["trial"].item.pk)
        answer_current_trial(client, url, walker)
    assert shown == walker.trial_item_ids


def test_consent_stamps_the_version_agreed_to_and_a_refusal_stamps_none(client, classifier):
    study = make_study(classifier, launch=False)
    Study.objects.filter(pk=study.pk).update(consent_version="2026-03b")
    precompute_job_run.delay(study_precompute_job(study=study).pk)
    study_launch(study=Study.objects.get(pk=study.pk), status=Study.Status.LIVE)

    agrees = _enter(client, study, "agrees")
    participant = Participant.objects.get(platform_identity__worker_id="agrees")
    assert participant.consent_version == "" and participant.consented_at is None
    post(client, agrees, page="consent", consent="yes")
    participant.refresh_from_db()
    assert participant.consent_version == "2026-03b" and participant.consented_at is not None

    declines = _enter(client, study, "declines")
    post(client, declines, page="consent", consent="no")
    refused = Participant.objects.get(platform_identity__worker_id="declines")
    assert refused.status == Participant.Status.DECLINED
    assert refused.consent_version == "" and refused.consented_at is None
