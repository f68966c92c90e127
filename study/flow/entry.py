"""Entering a study: who may enter, which condition they get, their own trial order, and
the limit on entries per network. Participants past the time limit are timed out here too,
freeing their places.
"""

import random
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.http import HttpRequest
from django.utils import timezone

from study.design.launch import study_launch_problems
from study.flow.sequence import PAGE_SEQUENCE, PAGE_TIMED_OUT
from study.models import Condition, Participant, PlatformIdentity, Response, Study, StudyItem
from study.platforms import platform_pseudonym


class EntryRefused(Exception):
    """A participant cannot enter; `reason` is shown to them, `status` is the HTTP status."""

    def __init__(self, reason: str, *, status: int):
        super().__init__(reason)
        self.reason = reason
        self.status = status


def participants_expire(*, study: Study, participant: Participant | None = None) -> int:
    """Time out unfinished participants past the study's time limit, freeing their places.

    A conditional update, so a participant who finishes at the same moment stays finished.
    """
    deadline = timezone.now() - timedelta(minutes=study.time_limit_minutes)
    if participant is not None and (
        # Every participant request asks; most are in time, and need no query to say so.
        participant.status != Participant.Status.ACTIVE or participant.started_at >= deadline
    ):
        return 0
    overdue = Participant.objects.filter(
        study=study, status=Participant.Status.ACTIVE, started_at__lt=deadline
    )
    if participant is not None:
        overdue = overdue.filter(pk=participant.pk)
    return overdue.update(status=Participant.Status.TIMED_OUT, page=PAGE_TIMED_OUT)


def _condition_assign(*, study: Study) -> Condition:
    """Least-filled condition, random tie-break, within its quota.

    A place is filled by an active or completed participant who is not excluded; pilot
    participants fill only pilot places, so a pilot does not eat into the live quotas.
    """
    is_pilot = study.status == Study.Status.PILOT
    conditions = list(
        study.conditions.annotate(
            filled=Count(
                "participants",
                filter=Q(
                    participants__status__in=[
                        Participant.Status.ACTIVE,
                        Participant.Status.COMPLETED,
                    ],
                    participants__excluded=False,
                    participants__is_pilot=is_pilot,
                    participants__preview=False,
                ),
            )
        )
    )
    open_conditions = [
        c for c in conditions if c.filled < (c.quota or study.participants_per_condition)
    ]
    if not open_conditions:
        raise EntryRefused("This study is full. Thank you for your interest.", status=409)
    least = min(c.filled for c in open_conditions)
    return random.SystemRandom().choice([c for c in open_conditions if c.filled == least])


def _check_open(study: Study, *, worker_id: str) -> None:
    if study.status not in (Study.Status.PILOT, Study.Status.LIVE):
        raise EntryRefused("This study is not open at the moment.", status=403)
    if study.platform != Study.Platform.OPEN and not worker_id:
        platform_name = Study.Platform(study.platform).label
        raise EntryRefused(
            f"This study must be opened from {platform_name} (the link carries your worker ID).",
            status=400,
        )


def participant_enter(
    *,
    study: Study,
    worker_id: str = "",
    platform_study_id: str = "",
    session_id: str = "",
    submit_to: str = "",
    simulated: bool = False,
) -> Participant:
    """Admit a participant, or return the one this platform id already has in the study.

    `simulated` marks a bot of study.flow.simulation, flagged in every export."""
    _check_open(study, worker_id=worker_id)
    pseudonym = (
        platform_pseudonym(platform=study.platform, worker_id=worker_id) if worker_id else ""
    )

    with transaction.atomic():
        # One admission at a time per study, so two arrivals cannot both take the last place.
        study = Study.objects.select_for_update().get(pk=study.pk)
        participants_expire(study=study)
        existing = _returning(study, pseudonym, session_id=session_id, submit_to=submit_to)
        if existing is not None:
            return existing
        condition = _condition_assign(study=study)
        seed = secrets.randbits(32)
        item_ids = _trial_order(study, seed)
        try:
            with transaction.atomic():
                participant = Participant.objects.create(
                    study=study,
                    code=secrets.token_urlsafe(24),
                    condition=condition,
                    platform=study.platform,
                    platform_pseudonym=pseudonym,
                    page=PAGE_SEQUENCE[0],
                    trial_seed=seed,
                    trial_item_ids=item_ids,
                    study_config_hash=study.config_hash,
                    is_pilot=study.status == Study.Status.PILOT,
                    simulated=simulated,
                )
        except IntegrityError:
            # The same worker arrived twice at once (two tabs); the other request won.
            return Participant.objects.get(study=study, platform_pseudonym=pseudonym)
        if worker_id:
            PlatformIdentity.objects.create(
                participant=participant,
                worker_id=worker_id,
                platform_study_id=platform_study_id,
                session_id=session_id,
                submit_to=submit_to,
            )
    return participant


def _returning(
    study: Study, pseudonym: str, *, session_id: str, submit_to: str
) -> Participant | None:
    """The participant this platform id already is in the study, if any; refused if they
    took part in a study this one excludes."""
    if not pseudonym:
        return None
    elsewhere = Participant.objects.filter(
        study__in=study.excluded_studies.all(), platform_pseudonym=pseudonym
    )
    if elsewhere.exists():
        raise EntryRefused(
            "You have already taken part in a related study, so you cannot take part "
            "in this one. Thank you for your interest.",
            status=409,
        )
    existing = Participant.objects.filter(study=study, platform_pseudonym=pseudonym).first()
    if existing is not None and submit_to:
        # An MTurk worker who returned and re-accepted the HIT has a new assignment.
        PlatformIdentity.objects.filter(participant=existing).update(
            session_id=session_id, submit_to=submit_to
        )
    return existing


# A researcher's previews of a study are deleted when a newer preview of it starts this
# long after them (and with the draft, when a draft is edited or deleted).
PREVIEW_KEPT_FOR = timedelta(days=1)


def participant_preview_start(*, study: Study, condition: Condition) -> Participant:
    """A preview participant in `condition`, at the first page, in any status of the study.

    It walks the real pages but takes no place (`_condition_assign` counts no preview),
    never reaches the exports or the analysis, and has no platform (its ending sends no one
    to Prolific or MTurk). Previews older than PREVIEW_KEPT_FOR are deleted first. A draft
    that could not launch yet (an item without its prediction or explanation) is refused
    with EntryRefused naming what is missing."""
    if condition.study_id != study.pk:
        raise ValueError(f"condition {condition.name!r} is not in study {study.slug!r}")
    problems = study_launch_problems(study=study) if study.status == Study.Status.DRAFT else []
    if problems:
        # Its trials would lack what they show: the same gap that blocks the launch.
        raise EntryRefused(f"no preview until the draft is complete: {problems[0]}", status=409)
    with transaction.atomic():
        participants_preview_delete(study=study, started_before=timezone.now() - PREVIEW_KEPT_FOR)
        seed = secrets.randbits(32)
        return Participant.objects.create(
            study=study,
            code=secrets.token_urlsafe(24),
            condition=condition,
            platform=Study.Platform.OPEN,
            page=PAGE_SEQUENCE[0],
            trial_seed=seed,
            trial_item_ids=_trial_order(study, seed),
            study_config_hash=study.config_hash,
            preview=True,
        )


def participants_preview_delete(*, study: Study, started_before=None) -> int:
    """Delete the study's previews (those started before `started_before`, if given) with
    their answers; how many were deleted."""
    previews = Participant.objects.filter(study=study, preview=True)
    if started_before is not None:
        previews = previews.filter(started_at__lt=started_before)
    ids = list(previews.values_list("pk", flat=True))
    if ids:
        Response.objects.filter(participant_id__in=ids).delete()
        Participant.objects.filter(pk__in=ids).delete()
    return len(ids)


def _trial_order(study: Study, seed: int) -> list[int]:
    """Practice first, then the main trials with the attention checks mixed in; each block
    in this participant's own order (from `seed`)."""
    order = random.Random(seed)
    item_ids = []
    for roles in (
        [StudyItem.Role.TRAINING],
        [StudyItem.Role.MAIN, StudyItem.Role.ATTENTION],
    ):
        block = list(study.items.filter(role__in=roles).order_by("pk").values_list("pk", flat=True))
        order.shuffle(block)
        item_ids.extend(block)
    return item_ids


def client_address(request: HttpRequest) -> str:
    """The client's IP: REMOTE_ADDR, or behind `EXPLAINSTUDY_TRUSTED_PROXIES` reverse
    proxies the address the outermost trusted proxy saw (never a client-supplied value)."""
    proxies = settings.EXPLAINSTUDY_TRUSTED_PROXIES
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if proxies and len(forwarded) >= proxies:
        return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "")


def rate_limit_exceeded(scope: str, key: str, *, limit: int, window_seconds: int) -> bool:
    """Count one hit for (scope, key) in the current fixed window; True once over `limit`.

    The count lives in the shared cache (Redis in production), so every web process sees it.
    """
    cache_key = f"ratelimit:{scope}:{key}"
    cache.add(cache_key, 0, timeout=window_seconds)
    try:
        hits = cache.incr(cache_key)
    except ValueError:  # the window expired between add and incr
        cache.set(cache_key, 1, timeout=window_seconds)
        hits = 1
    return hits > limit


def entry_rate_limited(request: HttpRequest) -> bool:
    """Count this entry for its network; True once more than EXPLAINSTUDY_ENTRY_RATE_LIMIT
    entries came from it in the last minute."""
    return rate_limit_exceeded(
        "entry",
        client_address(request),
        limit=settings.EXPLAINSTUDY_ENTRY_RATE_LIMIT,
        window_seconds=60,
    )
