"""The participant monitor: every participant of a study with their status, condition,
progress, time, attention checks, exclusion and flags (reads); a researcher's exclusion,
inclusion and withdrawal of one participant, each logged as a StudyEvent (writes)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from study.models import Participant, Study, StudyEvent, StudyItem
from study.researcher.services import WithdrawalError, participant_withdraw
from study.results.exclusions import participants_apply_exclusions

Override = Participant.Override
MONITOR_LIMIT = 500  # rows a page shows; filters narrow a larger study down

SORTS = {
    "started": "-started_at",
    "started_first": "started_at",
    "last_seen": "-last_seen_at",
    "progress": "-trial_position",
    "condition": "condition__name",
    "status": "status",
    "failed_checks": "-attention_failed",
}
FLAGS = {
    "pilot": Q(is_pilot=True),
    "live": Q(is_pilot=False, preview=False),
    "excluded": Q(excluded=True),
    "kept": Q(excluded=False),
    "overridden": ~Q(exclusion_override=""),
    "simulated": Q(simulated=True),
    "preview": Q(preview=True),
}


@dataclass(frozen=True)
class MonitorRow:
    participant: Participant
    condition: str
    trials_done: int
    trials_total: int
    attention_checks: int
    attention_failed: int
    time_spent: timedelta
    can_withdraw: bool

    @property
    def flags(self) -> list[str]:
        flags = ["pilot"] if self.participant.is_pilot else []
        if self.participant.simulated:
            flags.append("simulated")
        if self.participant.preview:
            flags.append("preview")
        if self.participant.exclusion_override:
            flags.append(self.participant.get_exclusion_override_display())
        return flags


@dataclass(frozen=True)
class Monitor:
    rows: list[MonitorRow]
    total: int  # matching the filters, before MONITOR_LIMIT
    now: datetime


def participant_monitor(
    *, study: Study, status: str = "", condition: str = "", flag: str = "", sort: str = "started"
) -> Monitor:
    """The study's participants matching the filters (empty: all), sorted by SORTS[sort]."""
    participants = Participant.objects.filter(study=study)
    if status:
        participants = participants.filter(status=status)
    if condition:
        participants = participants.filter(condition__name=condition)
    if flag:
        participants = participants.filter(FLAGS[flag])
    total = participants.count()
    attention = StudyItem.Role.ATTENTION
    participants = (
        participants.select_related("condition", "platform_identity")
        .annotate(
            answered=Count("responses"),
            attention_checks=Count("responses", filter=Q(responses__phase=attention)),
            attention_failed=Count(
                "responses", filter=Q(responses__phase=attention, responses__is_correct=False)
            ),
        )
        .order_by(SORTS[sort], F("pk").desc())[:MONITOR_LIMIT]
    )
    now = timezone.now()
    rows = [
        MonitorRow(
            participant=participant,
            condition=participant.condition.name,
            trials_done=participant.answered,
            trials_total=len(participant.trial_item_ids),
            attention_checks=participant.attention_checks,
            attention_failed=participant.attention_failed,
            time_spent=_time_spent(participant, now),
            can_withdraw=hasattr(participant, "platform_identity"),
        )
        for participant in participants
    ]
    return Monitor(rows=rows, total=total, now=now)


def _time_spent(participant: Participant, now: datetime) -> timedelta:
    """From entry to completion, to now while active, else to the last request."""
    if participant.completed_at is not None:
        return participant.completed_at - participant.started_at
    if participant.status == Participant.Status.ACTIVE:
        return now - participant.started_at
    return participant.last_seen_at - participant.started_at


class MonitorError(ValueError):
    """The change cannot be made; nothing was changed."""


def participant_exclusion_set(
    *, study: Study, participant_id: int, decision: str, reason: str, actor=None
) -> Participant:
    """Exclude or include a participant whatever the rules say (`decision` exclude or
    include, with a reason), or leave them to the rules again (decision ''); logged."""
    if decision not in Override.values:
        raise MonitorError(f"unknown decision {decision!r}")
    if decision and not reason.strip():
        raise MonitorError("a researcher's exclusion or inclusion needs a reason")
    with transaction.atomic():
        participant = (
            Participant.objects.select_for_update()
            .select_related("condition")
            .filter(study=study, pk=participant_id)
            .first()
        )
        if participant is None:
            raise MonitorError(f"no participant {participant_id} in study {study.slug!r}")
        participant.exclusion_override = decision
        participant.exclusion_override_reason = reason.strip() if decision else ""
        participant.save(update_fields=["exclusion_override", "exclusion_override_reason"])
        participants_apply_exclusions(
            study=study, participants=Participant.objects.filter(pk=participant.pk)
        )
        StudyEvent.objects.create(
            study=study,
            action={
                Override.EXCLUDE: StudyEvent.Action.EXCLUDE,
                Override.INCLUDE: StudyEvent.Action.INCLUDE,
                Override.NONE: StudyEvent.Action.RULES_DECIDE,
            }[decision],
            status_before=study.status,
            status_after=study.status,
            detail={"participant": participant.pk, "condition": participant.condition.name},
            actor=actor,
            reason=reason.strip(),
        )
    participant.refresh_from_db()
    return participant


def participant_withdraw_by_id(
    *, study: Study, participant_id: int, reason: str, actor=None
) -> None:
    """Withdraw a participant chosen on the monitor: their answers and ids deleted (as
    services.participant_withdraw does, with its Withdrawal entry), and logged."""
    participant = (
        Participant.objects.select_related("platform_identity", "condition")
        .filter(study=study, pk=participant_id)
        .first()
    )
    if participant is None:
        raise MonitorError(f"no participant {participant_id} in study {study.slug!r}")
    if not hasattr(participant, "platform_identity"):
        raise MonitorError(
            "this participant came by an open link with no platform id; withdrawal works by "
            "the platform id the participant gives"
        )
    with transaction.atomic():
        try:
            withdrawal = participant_withdraw(
                study=study,
                worker_id=participant.platform_identity.worker_id,
                requested_by=actor,
                reason=reason,
            )
        except WithdrawalError as error:
            raise MonitorError(str(error)) from error
        StudyEvent.objects.create(
            study=study,
            action=StudyEvent.Action.WITHDRAW,
            status_before=study.status,
            status_after=study.status,
            detail={
                "participant": participant_id,
                "condition": withdrawal.condition_name,
                "responses_deleted": withdrawal.responses_deleted,
            },
            actor=actor,
            reason=reason,
        )
