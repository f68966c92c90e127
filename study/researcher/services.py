"""Writes a researcher makes on a running study: showing accuracy so far, a participant's
withdrawal and the deletion of simulated participants (data deleted, an audit entry kept)."""

from django.db import transaction

from study.models import Participant, Response, SimulatedDeletion, Study, StudyEvent, Withdrawal
from study.platforms import platform_pseudonym


def study_set_show_accuracy(*, study: Study, show: bool) -> Study:
    """Show or hide accuracy so far on the dashboard of a running study (not part of the
    frozen design: it changes nothing participants see)."""
    study.show_accuracy = show
    study.save(update_fields=["show_accuracy"])
    return study


class WithdrawalError(ValueError):
    """The withdrawal cannot be done; the message says why."""


def participant_withdraw(
    *, study: Study, worker_id: str, requested_by=None, reason: str = ""
) -> Withdrawal:
    """Delete everything a participant gave this study, found by their platform id, and
    leave an audit entry. Other studies' data of the same person are not touched."""
    pseudonym = platform_pseudonym(platform=study.platform, worker_id=worker_id.strip())
    with transaction.atomic():
        participant = (
            Participant.objects.select_for_update()
            .select_related("condition")
            .filter(study=study, platform_pseudonym=pseudonym)
            .first()
        )
        if participant is None:
            if Withdrawal.objects.filter(study=study, platform_pseudonym=pseudonym).exists():
                raise WithdrawalError(
                    f"the participant with this id already withdrew from {study.slug!r}"
                )
            raise WithdrawalError(f"no participant with this platform id in study {study.slug!r}")
        deleted_responses, _ = Response.objects.filter(participant=participant).delete()
        withdrawal = Withdrawal.objects.create(
            study=study,
            platform_pseudonym=pseudonym,
            condition_name=participant.condition.name,
            participant_status=participant.status,
            responses_deleted=deleted_responses,
            requested_by=requested_by,
            reason=reason,
        )
        participant.delete()  # its PlatformIdentity (the raw id) goes with it
    return withdrawal


class SimulatedDeletionError(ValueError):
    """There is nothing to delete; the message says why."""


def simulated_participants_delete(
    *, study: Study, requested_by=None, reason: str = ""
) -> SimulatedDeletion:
    """Delete every simulated participant of the study with their answers, and leave an
    audit entry (kept as a SimulatedDeletion, and in the study's log as a StudyEvent, which
    the dashboard shows). People's data are not touched."""
    with transaction.atomic():
        simulated = Participant.objects.select_for_update().filter(study=study, simulated=True)
        participant_ids = list(simulated.values_list("pk", flat=True))
        if not participant_ids:
            raise SimulatedDeletionError(f"study {study.slug!r} has no simulated participants")
        responses_deleted, _ = Response.objects.filter(participant_id__in=participant_ids).delete()
        Participant.objects.filter(pk__in=participant_ids).delete()
        deletion = SimulatedDeletion.objects.create(
            study=study,
            participants_deleted=len(participant_ids),
            responses_deleted=responses_deleted,
            requested_by=requested_by,
            reason=reason,
        )
        StudyEvent.objects.create(
            study=study,
            action=StudyEvent.Action.DELETE_SIMULATED,
            status_before=study.status,
            status_after=study.status,
            detail={
                "participants_deleted": deletion.participants_deleted,
                "responses_deleted": deletion.responses_deleted,
                "simulated_deletion": deletion.pk,
            },
            actor=requested_by,
            reason=reason[: StudyEvent._meta.get_field("reason").max_length],
        )
        return deletion
