"""A study's lifecycle: launch, pause, resume, close, reopen, archive, quotas. Each change is
made on the locked study row and logged as a StudyEvent with who, when and why.

    draft --launch_pilot--> pilot --launch_live--> live
    pilot, live --pause--> paused --resume--> the status it was paused from
    pilot, live, paused --close--> closed --reopen--> the status it was closed from
    closed --archive--> closed and archived (listed only on request; not reopened)

A draft may also be replaced by an edited study file, or deleted.

Quotas (the study's default places per condition and each condition's own) may change in any
status but archived: they decide only how many people enter, so they are not part of the
frozen design or its hash.
"""

from django.db import transaction
from django.utils import timezone

from study.design.launch import study_launch
from study.design.spec import StudyConfigError
from study.design.study_files import study_create_from_text
from study.flow.entry import participants_preview_delete
from study.models import Condition, Study, StudyEvent

Action = StudyEvent.Action
Status = Study.Status
MAX_QUOTA = 100_000  # places per condition; far above any crowd study, far below int32
EVENTS_SHOWN = 50  # on the dashboard; the admin and the database keep them all


class LifecycleError(StudyConfigError):
    """A change the study's status does not allow; nothing was changed."""


# action -> statuses it applies to
ALLOWED_FROM = {
    Action.LAUNCH_PILOT: {Status.DRAFT},
    Action.LAUNCH_LIVE: {Status.DRAFT, Status.PILOT},
    Action.PAUSE: {Status.PILOT, Status.LIVE},
    Action.RESUME: {Status.PAUSED},
    Action.CLOSE: {Status.PILOT, Status.LIVE, Status.PAUSED},
    Action.REOPEN: {Status.CLOSED},
    Action.ARCHIVE: {Status.CLOSED},
}


def study_actions(*, study: Study) -> list[str]:
    """The lifecycle actions the study's status allows now, in ALLOWED_FROM's order."""
    if study.archived_at is not None:
        return []
    return [action for action, sources in ALLOWED_FROM.items() if study.status in sources]


def launch_action(*, study: Study, status: str) -> str:
    """The action of the dashboard's launch buttons: launch as pilot or live, and 'live' on
    a paused study resumes it."""
    if status == Status.PILOT:
        return Action.LAUNCH_PILOT
    if status == Status.LIVE:
        return Action.RESUME if study.status == Status.PAUSED else Action.LAUNCH_LIVE
    raise LifecycleError(f"a study is launched as pilot or live, not {status!r}")


def _status_before(study: Study, action: str) -> str:
    """The status a study had before its latest `action` (pause or close): where resume or
    reopen go back to."""
    event = study.events.filter(action=action).order_by("-created_at", "-pk").first()
    if event is None or event.status_before not in (Status.PILOT, Status.LIVE, Status.PAUSED):
        return Status.LIVE
    return event.status_before


def study_change(
    *,
    study: Study,
    action: str,
    actor=None,
    reason: str = "",
    shortcut_override_reason: str = "",
) -> Study:
    """Apply a lifecycle `action` and log it; LifecycleError (nothing changed) if the study's
    status does not allow it, StudyConfigError if launch checks fail."""
    if action not in ALLOWED_FROM:
        raise LifecycleError(f"unknown action {action!r}; known: {', '.join(ALLOWED_FROM)}")
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        if locked.archived_at is not None:
            raise LifecycleError(
                f"study {locked.slug!r} is archived: it cannot be {Action(action).label}"
            )
        if locked.status not in ALLOWED_FROM[action]:
            allowed = ", ".join(sorted(ALLOWED_FROM[action]))
            raise LifecycleError(
                f"a {locked.status} study cannot be {Action(action).label}; only {allowed}"
            )
        before = locked.status
        if action == Action.LAUNCH_PILOT:
            study_launch(
                study=locked,
                status=Status.PILOT,
                shortcut_override_reason=shortcut_override_reason,
            )
        elif action == Action.LAUNCH_LIVE:
            study_launch(
                study=locked,
                status=Status.LIVE,
                shortcut_override_reason=shortcut_override_reason,
            )
        elif action == Action.ARCHIVE:
            locked.archived_at = timezone.now()
            locked.save(update_fields=["archived_at"])
        else:
            if action == Action.RESUME:
                locked.status = _status_before(locked, Action.PAUSE)
            elif action == Action.REOPEN:
                locked.status = _status_before(locked, Action.CLOSE)
            else:
                locked.status = Status.PAUSED if action == Action.PAUSE else Status.CLOSED
            locked.save(update_fields=["status"])
        StudyEvent.objects.create(
            study=locked,
            action=action,
            status_before=before,
            status_after=locked.status,
            actor=actor,
            reason=reason,
        )
    study.refresh_from_db()
    return study


def study_quota_set(
    *, study: Study, quota: int | None, condition: str = "", actor=None, reason: str = ""
) -> Study:
    """Set the study's default places per condition (`condition` empty), or one condition's
    own (`quota` None: back to the default); logged with the old and new value."""
    if condition == "" and quota is None:
        raise LifecycleError("the study's default quota needs a number")
    if quota is not None and not 1 <= quota <= MAX_QUOTA:
        raise LifecycleError(f"quota {quota} is not in 1..{MAX_QUOTA}")
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        if locked.archived_at is not None:
            raise LifecycleError(f"study {locked.slug!r} is archived: its quotas are final")
        if condition:
            target = Condition.objects.filter(study=locked, name=condition).first()
            if target is None:
                names = ", ".join(locked.conditions.values_list("name", flat=True))
                raise LifecycleError(f"no condition named {condition!r}; known: {names}")
            old = target.quota
            target.quota = quota
            target.save(update_fields=["quota"])
        else:
            old = locked.participants_per_condition
            locked.participants_per_condition = quota
            locked.save(update_fields=["participants_per_condition"])
        StudyEvent.objects.create(
            study=locked,
            action=Action.QUOTA,
            status_before=locked.status,
            status_after=locked.status,
            detail={"condition": condition or None, "from": old, "to": quota},
            actor=actor,
            reason=reason,
        )
    study.refresh_from_db()
    return study


def study_events(*, study: Study, limit: int = EVENTS_SHOWN) -> list[StudyEvent]:
    """The study's log, newest first, as the dashboard shows it."""
    return list(study.events.select_related("actor").order_by("-created_at", "-pk")[:limit])


def study_draft_replace(*, study: Study, text: str, actor=None) -> Study:
    """The draft re-created from an edited study file, in one transaction: on any error
    (StudyFileError naming the key) the old draft stays as it was. Only a draft, which no
    one has entered, may be replaced."""
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        if locked.status != Status.DRAFT:
            raise LifecycleError(f"only a draft can be edited; {locked.slug!r} is {locked.status}")
        participants_preview_delete(study=locked)  # the only participants a draft has
        locked.delete()
        return study_create_from_text(text=text, owner=actor)


def study_draft_delete(*, study: Study) -> None:
    """Delete a draft with its conditions, items and log; a launched study stays (close and
    archive it instead)."""
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        if locked.status != Status.DRAFT:
            raise LifecycleError(
                f"only a draft can be deleted; {locked.slug!r} is {locked.status} (close and "
                "archive it instead)"
            )
        participants_preview_delete(study=locked)
        locked.delete()
