"""A participant's data deleted at their request, by platform id, with an audit entry."""

import pytest
from django.core.management import CommandError, call_command

from study.flow.entry import participant_enter
from study.flow.selectors import trial_current
from study.flow.services import (
    participant_consent,
    participant_finish_instructions,
    response_record,
)
from study.flow.simulation import BotBehaviour, participants_simulate
from study.models import Participant, PlatformIdentity, Response, Withdrawal
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db


def _finished(study, n=3):
    behaviour = BotBehaviour(accuracy=0.8, mean_response_ms=2000)
    return participants_simulate(
        allow_live=True,
        study=study,
        n=n,
        behaviour_by_condition={},
        default_behaviour=behaviour,
        id_prefix="w",
    )


def test_withdrawal_deletes_the_participant_and_answers_and_keeps_an_audit_entry(study, capsys):
    participants = _finished(study)
    leaving, staying = participants[0], participants[1:]
    worker_id = leaving.platform_identity.worker_id
    answers = Response.objects.filter(participant=leaving).count()
    others = Response.objects.exclude(participant=leaving).count()
    assert answers > 0

    call_command("withdraw_participant", study.slug, platform_id=worker_id, reason="email")

    assert not Participant.objects.filter(pk=leaving.pk).exists()
    assert not PlatformIdentity.objects.filter(worker_id=worker_id).exists()
    assert not Response.objects.filter(participant_id=leaving.pk).exists()
    assert Response.objects.count() == others  # nobody else's answers touched
    assert all(Participant.objects.filter(pk=p.pk).exists() for p in staying)
    audit = Withdrawal.objects.get()
    assert audit.responses_deleted == answers and audit.reason == "email"
    assert audit.condition_name == leaving.condition.name
    assert worker_id not in str(Withdrawal.objects.values().get())  # the raw id is not kept
    assert f"{answers} answers" in capsys.readouterr().out


def test_withdrawing_twice_or_an_unknown_id_is_a_clear_error_and_changes_nothing(study):
    participant = _finished(study, n=1)[0]
    worker_id = participant.platform_identity.worker_id
    with pytest.raises(CommandError, match="no participant with this platform id"):
        call_command("withdraw_participant", study.slug, platform_id="nobody")
    assert Participant.objects.filter(pk=participant.pk).exists()
    call_command("withdraw_participant", study.slug, platform_id=worker_id)
    with pytest.raises(CommandError, match="already withdrew"):
        call_command("withdraw_participant", study.slug, platform_id=worker_id)
    with pytest.raises(CommandError, match="no study with slug"):
        call_command("withdraw_participant", "no-such-study", platform_id=worker_id)
    assert Withdrawal.objects.count() == 1


def test_withdrawal_mid_study_with_feedback_on_screen(classifier):
    study = make_study(classifier, slug="practice", n_training=1)
    participant = participant_enter(study=study, worker_id="mid-study")
    participant = participant_consent(participant=participant, agreed=True)
    participant = participant_finish_instructions(participant=participant)
    trial = trial_current(participant=participant)
    response_record(
        participant=participant,
        trial_position=0,
        answer=trial.choices[0].value,
        confidence=3,
        client_response_ms=500,
    )
    participant.refresh_from_db()
    assert participant.feedback_response_id is not None
    call_command("withdraw_participant", study.slug, platform_id="mid-study")
    assert not Participant.objects.filter(study=study).exists()
    assert Withdrawal.objects.get().participant_status == Participant.Status.ACTIVE
