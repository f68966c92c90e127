"""Writes for the study side: creating studies, admitting participants, recording answers.

Every function here either completes its write or raises; a participant's state only
moves forward, so a repeated or stale request changes nothing.
"""

import hashlib
import hmac
import io
import random
import secrets
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from PIL import Image as PILImage

from explain_engine import render
from explain_engine.models import Classifier, Explanation, Image, PrecomputeJob
from explain_engine.services.explanations import method_for
from explain_engine.services.precompute import precompute_job_create
from study import timing
from study.frozen import frozen_study
from study.models import (
    Condition,
    Participant,
    PlatformIdentity,
    Response,
    SimulatedDeletion,
    Study,
    StudyItem,
    Withdrawal,
)
from study.question_types import QUESTION_TYPES
from study.shortcut_audit import DEFAULT_MARGIN_POINTS

PROLIFIC_COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc={code}"

# The participant's pages, in order. The server keeps a pointer into this sequence.
PAGE_CONSENT = "consent"
PAGE_INSTRUCTIONS = "instructions"
PAGE_COMPREHENSION = "comprehension"
PAGE_TRIALS = "trials"
PAGE_FEEDBACK = "feedback"
PAGE_QUESTIONNAIRE = "questionnaire"
PAGE_COMPLETE = "complete"
PAGE_DECLINED = "declined"
PAGE_TIMED_OUT = "timed_out"
PAGE_SCREENED_OUT = "screened_out"
PAGE_SEQUENCE = (
    PAGE_CONSENT,
    PAGE_INSTRUCTIONS,
    PAGE_COMPREHENSION,
    PAGE_TRIALS,
    PAGE_QUESTIONNAIRE,
    PAGE_COMPLETE,
)

CONFIDENCE_SCALE = (1, 2, 3, 4, 5)


class StudyConfigError(ValueError):
    """A study definition that cannot run as asked."""


class EntryRefused(Exception):
    """A participant cannot enter; `reason` is shown to them, `status` is the HTTP status."""

    def __init__(self, reason: str, *, status: int):
        super().__init__(reason)
        self.reason = reason
        self.status = status


class InvalidAnswer(ValueError):
    """A submitted answer that does not fit the trial; nothing is saved."""


@dataclass(frozen=True)
class ConditionSpec:
    name: str
    explanation_method: str = ""
    explanation_params: dict | None = None
    show_ai_prediction: bool = False
    show_ai_confidence: bool = False
    quota: int | None = None  # None: the study's participants_per_condition


# Exclusion rules a study may declare before launch: name -> (type, what it excludes).
EXCLUSION_RULES = {
    "max_failed_attention_checks": (
        int,
        "exclude a participant who failed more than this many attention checks",
    ),
    "min_median_response_ms": (
        int,
        "exclude a participant whose median response time on main trials is below this "
        "(the server's time, refined by the browser's where consistent: see study.timing)",
    ),
    "max_same_answer_share": (
        float,
        "exclude a participant who gave one answer on more than this share of main trials "
        "(straight-lining), 0..1",
    ),
}


def exclusion_rules_check(rules: dict) -> dict:
    """The rules if every one is known and of its type; else StudyConfigError naming it."""
    if not isinstance(rules, dict):
        raise StudyConfigError("exclusion rules must be a table of rule = value")
    for name, value in rules.items():
        if name not in EXCLUSION_RULES:
            raise StudyConfigError(
                f"unknown exclusion rule {name!r}; known: {sorted(EXCLUSION_RULES)}"
            )
        kind = EXCLUSION_RULES[name][0]
        accepted = int | float if kind is float else int
        if isinstance(value, bool) or not isinstance(value, accepted):
            kind_name = "a number" if kind is float else "an integer"
            raise StudyConfigError(f"exclusion rule {name!r} must be {kind_name}")
        if value < 0 or (name == "max_same_answer_share" and value > 1):
            raise StudyConfigError(f"exclusion rule {name!r} is out of range: {value}")
    return dict(rules)


def study_create(
    *,
    slug: str,
    title: str,
    classifier: Classifier,
    platform: str,
    conditions: list[ConditionSpec],
    main_images: list[Image],
    participants_per_condition: int,
    consent_text: str,
    instructions_text: str,
    question_type: str = "species_identification",
    completion_code: str | None = None,
    training_images: list[Image] = (),
    attention_images: list[Image] = (),
    comprehension_questions: list[dict] = (),
    owners: list = (),
    description: str = "",
    debrief_text: str = "",
    consent_version: str = "1",
    time_limit_minutes: int = 60,
    no_consent_code: str = "",
    failed_comprehension_code: str = "",
    exclusion_rules: dict | None = None,
    shortcut_margin_points: int = DEFAULT_MARGIN_POINTS,
) -> Study:
    if question_type not in QUESTION_TYPES:
        raise StudyConfigError(
            f"unknown question type {question_type!r}; known: {sorted(QUESTION_TYPES)}"
        )
    if platform not in Study.Platform.values:
        raise StudyConfigError(f"unknown platform {platform!r}; known: {Study.Platform.values}")
    if not conditions:
        raise StudyConfigError("a study needs at least one condition")
    if len({spec.name for spec in conditions}) != len(conditions):
        raise StudyConfigError("condition names must be distinct")
    if not main_images:
        raise StudyConfigError("a study needs at least one main trial image")
    if participants_per_condition < 1:
        raise StudyConfigError("participants_per_condition must be at least 1")
    for spec in conditions:
        if spec.quota is not None and spec.quota < 1:
            raise StudyConfigError(f"condition {spec.name!r}: quota must be at least 1")
    if time_limit_minutes < 1:
        raise StudyConfigError("time_limit_minutes must be at least 1")
    if isinstance(shortcut_margin_points, bool) or not 0 <= shortcut_margin_points <= 100:
        raise StudyConfigError("shortcut_margin_points must be a number of points, 0..100")
    exclusion_rules = exclusion_rules_check(exclusion_rules or {})
    for question in comprehension_questions:
        choices = question.get("choices") or []
        if (
            not question.get("question")
            or len(choices) < 2
            or question.get("answer") not in range(len(choices))
        ):
            raise StudyConfigError(
                f"comprehension question {question!r} needs a question, two or more choices "
                "and the index of the right one"
            )
    if {image.pk for image in training_images} & {image.pk for image in main_images}:
        raise StudyConfigError(
            "an image cannot be both a practice and a main trial: practice feedback "
            "would reveal the main trial's answer"
        )
    foreign = [
        image
        for image in [*main_images, *training_images, *attention_images]
        if image.image_set_id != classifier.image_set_id
    ]
    if foreign:
        raise StudyConfigError(
            f"{len(foreign)} image(s) are not from the classifier's image set "
            f"{classifier.image_set.name!r}"
        )

    with transaction.atomic():
        study = Study.objects.create(
            slug=slug,
            title=title,
            platform=platform,
            question_type=question_type,
            classifier=classifier,
            participants_per_condition=participants_per_condition,
            consent_text=consent_text,
            instructions_text=instructions_text,
            completion_code=completion_code or secrets.token_hex(4).upper(),
            comprehension_questions=list(comprehension_questions),
            description=description,
            debrief_text=debrief_text,
            consent_version=consent_version,
            time_limit_minutes=time_limit_minutes,
            no_consent_code=no_consent_code,
            failed_comprehension_code=failed_comprehension_code,
            exclusion_rules=exclusion_rules,
            shortcut_margin_points=shortcut_margin_points,
        )
        study.owners.set(owners)
        for spec in conditions:
            method_params, method_params_hash = {}, ""
            if spec.explanation_method:
                try:
                    method = method_for(
                        classifier=classifier,
                        slug=spec.explanation_method,
                        params=spec.explanation_params or {},
                    )
                except ValueError as error:
                    raise StudyConfigError(f"condition {spec.name!r}: {error}") from error
                method_params, method_params_hash = method.params(), method.params_hash()
            Condition.objects.create(
                study=study,
                name=spec.name,
                explanation_method=spec.explanation_method,
                explanation_params=method_params,
                explanation_params_hash=method_params_hash,
                show_ai_prediction=spec.show_ai_prediction,
                show_ai_confidence=spec.show_ai_confidence,
                quota=spec.quota,
            )
        StudyItem.objects.bulk_create(
            [
                StudyItem(study=study, image=image, role=StudyItem.Role.TRAINING)
                for image in training_images
            ]
            + [
                StudyItem(study=study, image=image, role=StudyItem.Role.MAIN)
                for image in main_images
            ]
            + [
                StudyItem(study=study, image=image, role=StudyItem.Role.ATTENTION)
                for image in attention_images
            ]
        )
    return study


def study_precompute_job(*, study: Study, batch_size: int | None = None) -> PrecomputeJob:
    """A precompute job for everything the study shows: every item's prediction, each
    explanation condition's explanations with the condition's own parameters, and for a
    comparative question the SAG search (default parameters) its image pairs come from."""
    methods = [
        (condition.explanation_method, condition.explanation_params)
        for condition in study.conditions.exclude(explanation_method="")
    ]
    if QUESTION_TYPES[study.question_type].needs_comparison:
        methods.append(("sag", {}))
    images = [item.image for item in study.items.select_related("image")]
    return precompute_job_create(
        classifier=study.classifier, methods=methods, images=images, batch_size=batch_size
    )


def study_launch(
    *, study: Study, status: str = Study.Status.LIVE, shortcut_override_reason: str = ""
) -> Study:
    """Open a study to participants once its item bank is complete and no strategy that
    needs no understanding beats chance by more than the study's margin (the shortcut
    audit, study.shortcut_audit); freeze its design.

    A draft goes to pilot or live, a pilot or a paused study to live. A failed audit is
    overridden only with a reason, which the design keeps. The config hash covers
    everything participants see, the exclusion rules and the audit's margin and override,
    and is stamped on every participant.
    """
    from study.selectors import study_config_hash, study_launch_problems, study_shortcut_audit

    if status not in (Study.Status.PILOT, Study.Status.LIVE):
        raise StudyConfigError(f"a study is launched as pilot or live, not {status!r}")
    allowed_from = {
        Study.Status.PILOT: {Study.Status.DRAFT},
        Study.Status.LIVE: {Study.Status.DRAFT, Study.Status.PILOT, Study.Status.PAUSED},
    }[status]
    if study.status not in allowed_from:
        raise StudyConfigError(f"a {study.status} study cannot be launched as {status}")
    problems = study_launch_problems(study=study)
    if problems:
        raise StudyConfigError("cannot launch: " + "; ".join(problems))
    override = shortcut_override_reason.strip() or study.shortcut_override_reason
    audit = study_shortcut_audit(study=study)
    if audit.failures and not override:
        raise StudyConfigError(
            f"cannot launch: the shortcut audit finds answers that need no understanding "
            f"beating chance by more than {audit.margin_points:g} points: "
            + "; ".join(row.line() for row in audit.failures)
            + ". Change the items, or override with a reason (kept in the design)"
        )
    study.shortcut_override_reason = override
    study.config_hash = study_config_hash(study=study)
    study.status = status
    study.save(update_fields=["shortcut_override_reason", "config_hash", "status"])
    return study


def platform_pseudonym(*, platform: str, worker_id: str) -> str:
    key = settings.PSEUDONYM_KEY.encode()
    return hmac.new(key, f"{platform}:{worker_id}".encode(), hashlib.sha256).hexdigest()


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

    `simulated` marks a bot of study.simulation, flagged in every export."""
    if study.status not in (Study.Status.PILOT, Study.Status.LIVE):
        raise EntryRefused("This study is not open at the moment.", status=403)
    if study.platform != Study.Platform.OPEN and not worker_id:
        platform_name = Study.Platform(study.platform).label
        raise EntryRefused(
            f"This study must be opened from {platform_name} (the link carries your worker ID).",
            status=400,
        )
    pseudonym = (
        platform_pseudonym(platform=study.platform, worker_id=worker_id) if worker_id else ""
    )

    with transaction.atomic():
        # One admission at a time per study, so two arrivals cannot both take the last place.
        study = Study.objects.select_for_update().get(pk=study.pk)
        participants_expire(study=study)
        if pseudonym:
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
            if existing is not None:
                if submit_to:
                    # An MTurk worker who returned and re-accepted the HIT has a new assignment.
                    PlatformIdentity.objects.filter(participant=existing).update(
                        session_id=session_id, submit_to=submit_to
                    )
                return existing
        condition = _condition_assign(study=study)
        # Practice first, then the main trials with the attention checks mixed in; each
        # block in this participant's own order.
        seed = secrets.randbits(32)
        order = random.Random(seed)
        item_ids = []
        for roles in (
            [StudyItem.Role.TRAINING],
            [StudyItem.Role.MAIN, StudyItem.Role.ATTENTION],
        ):
            block = list(
                study.items.filter(role__in=roles).order_by("pk").values_list("pk", flat=True)
            )
            order.shuffle(block)
            item_ids.extend(block)
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


def _locked(participant: Participant) -> Participant:
    locked = Participant.objects.select_for_update().get(pk=participant.pk)
    # A participant's study and condition never change: keep those already loaded.
    for relation in ("study", "condition"):
        if Participant._meta.get_field(relation).is_cached(participant):
            setattr(locked, relation, getattr(participant, relation))
    return locked


def participant_consent(*, participant: Participant, agreed: bool) -> Participant:
    with transaction.atomic():
        participant = _locked(participant)
        if participant.page != PAGE_CONSENT:
            return participant
        if agreed:
            participant.consented_at = timezone.now()
            participant.consent_version = participant.study.consent_version
            participant.page = PAGE_INSTRUCTIONS
        else:
            participant.status = Participant.Status.DECLINED
            participant.page = PAGE_DECLINED
        participant.save()
    return participant


def participant_finish_instructions(*, participant: Participant) -> Participant:
    with transaction.atomic():
        participant = _locked(participant)
        if participant.page == PAGE_INSTRUCTIONS:
            if participant.study.comprehension_questions:
                participant.page = PAGE_COMPREHENSION
            else:
                participant.page = PAGE_TRIALS
            participant.save()
    return participant


def comprehension_submit(*, participant: Participant, answers: list[int]) -> Participant:
    """Check the answers: all right goes on to the trials; a wrong one sends the participant
    back to the instructions, and too many failures end the study with a request to return
    (never a rejection)."""
    with transaction.atomic():
        participant = _locked(participant)
        if participant.page != PAGE_COMPREHENSION:
            return participant
        questions = participant.study.comprehension_questions
        if len(answers) != len(questions):
            raise InvalidAnswer(f"expected {len(questions)} answers, got {len(answers)}")
        participant.comprehension_attempts += 1
        if all(answer == q["answer"] for answer, q in zip(answers, questions, strict=True)):
            participant.page = PAGE_TRIALS
        elif participant.comprehension_attempts >= participant.study.comprehension_max_attempts:
            participant.page = PAGE_SCREENED_OUT
            participant.status = Participant.Status.SCREENED_OUT
        else:
            participant.page = PAGE_INSTRUCTIONS
        participant.save()
    return participant


def trial_mark_shown(*, participant: Participant) -> Participant:
    """Stamp when the current trial was first sent; a reload keeps the first stamp.

    One conditional update: of two requests at once, only the first stamps."""
    if participant.page != PAGE_TRIALS or participant.trial_shown_at is not None:
        return participant
    now = timezone.now()
    stamped = Participant.objects.filter(
        pk=participant.pk,
        page=PAGE_TRIALS,
        trial_position=participant.trial_position,
        trial_shown_at__isnull=True,
    ).update(trial_shown_at=now, last_seen_at=now)
    if stamped:
        participant.trial_shown_at = participant.last_seen_at = now
    return participant


def response_record(
    *,
    participant: Participant,
    trial_position: int,
    answer: str,
    confidence: int | None,
    client_response_ms: int | None,
    viewport: str = "",
    interactions: list[dict] = (),
    stimulus_missing: bool = False,
) -> Response | None:
    """Save the answer to the participant's current trial and move on.

    Returns None, saving nothing, when `trial_position` is not the current trial: a
    double-click, a reload of a POST or a stale second tab.
    """
    with transaction.atomic():
        participant = _locked(participant)
        if participant.page != PAGE_TRIALS or trial_position != participant.trial_position:
            return None
        if client_response_ms is not None and not 0 <= client_response_ms < 24 * 3600 * 1000:
            raise InvalidAnswer("client response time out of range")
        _check_interactions(interactions)
        frozen = frozen_study(participant.study)
        item = frozen.items[participant.trial_item_ids[trial_position]]
        if item.role == StudyItem.Role.ATTENTION:
            # An instructed answer has nothing to be confident about: the check asks none.
            if confidence is not None:
                raise InvalidAnswer("an attention check asks no confidence")
        elif confidence not in CONFIDENCE_SCALE:
            raise InvalidAnswer(f"confidence must be one of {CONFIDENCE_SCALE}")
        choices = {c.value: c for c in frozen.choices}
        if answer not in choices:
            raise InvalidAnswer("the answer is not one of the offered choices")
        correct_answer = frozen.correct_answers[item.pk]
        response = Response.objects.create(
            participant=participant,
            item=item,
            phase=item.role,
            trial_position=trial_position,
            answer=answer,
            answer_text=choices[answer].text,
            correct_answer=correct_answer,
            is_correct=answer == correct_answer,
            confidence=confidence,
            client_response_ms=client_response_ms,
            server_shown_at=participant.trial_shown_at or timezone.now(),
            explanation_shown=frozen.explanations.get((participant.condition_id, item.image_id)),
            viewport=viewport[:20],
            interactions=list(interactions),
            stimulus_missing=stimulus_missing,
        )
        participant.trial_position += 1
        participant.trial_shown_at = None
        if item.role == StudyItem.Role.TRAINING:
            participant.page = PAGE_FEEDBACK
            participant.feedback_response = response
        else:
            _advance_past_trial(participant)
        participant.save(
            update_fields=["trial_position", "trial_shown_at", "page", "feedback_response"]
        )
    return response


INTERACTION_EVENTS = {
    "heatmap_hidden",
    "heatmap_shown",
    "explanation_zoomed",
    "explanation_unzoomed",
    "gallery_opened",
    "gallery_closed",
}
MAX_INTERACTIONS = 200


def _check_interactions(interactions) -> None:
    if not isinstance(interactions, list | tuple) or len(interactions) > MAX_INTERACTIONS:
        raise InvalidAnswer(f"interactions must be a list of at most {MAX_INTERACTIONS} events")
    for event in interactions:
        if (
            not isinstance(event, dict)
            or set(event) != {"event", "ms"}
            or event["event"] not in INTERACTION_EVENTS
            or not isinstance(event["ms"], int)
            or event["ms"] < 0
        ):
            raise InvalidAnswer(f"unknown interaction event {event!r}")


def trial_correct_answer(*, study: Study, item: StudyItem) -> str:
    """The value that counts as correct on a launched study's item: the instructed one on an
    attention check, else what the study's question type says (see `item_correct_value`)."""
    return frozen_study(study).correct_answers[item.pk]


def _advance_past_trial(participant: Participant) -> None:
    participant.page = PAGE_TRIALS
    participant.feedback_response = None
    if participant.trial_position >= len(participant.trial_item_ids):
        participant.page = PAGE_QUESTIONNAIRE


def feedback_acknowledge(*, participant: Participant) -> Participant:
    """Leave the feedback on a practice trial for the next trial."""
    with transaction.atomic():
        participant = _locked(participant)
        if participant.page == PAGE_FEEDBACK:
            _advance_past_trial(participant)
            participant.save()
    return participant


def questionnaire_submit(*, participant: Participant, answers: dict) -> Participant:
    """Save the questionnaire (already validated) and complete the participation."""
    with transaction.atomic():
        participant = _locked(participant)
        if participant.page == PAGE_QUESTIONNAIRE:
            participant.questionnaire = answers
            participant.page = PAGE_COMPLETE
            participant.status = Participant.Status.COMPLETED
            participant.completed_at = timezone.now()
            participant.save()
            participants_apply_exclusions(
                study=participant.study, participants=Participant.objects.filter(pk=participant.pk)
            )
    participant.refresh_from_db()
    return participant


def completion_url(*, participant: Participant) -> str | None:
    """Where a participant who has ended goes next: the platform's URL with the code for how
    they ended, if the study has one."""
    if participant.platform != Study.Platform.PROLIFIC:
        return None
    code = {
        Participant.Status.COMPLETED: participant.study.completion_code,
        Participant.Status.DECLINED: participant.study.no_consent_code,
        Participant.Status.SCREENED_OUT: participant.study.failed_comprehension_code,
    }.get(participant.status)
    return PROLIFIC_COMPLETION_URL.format(code=code) if code else None


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


def simulated_participants_delete(
    *, study: Study, requested_by=None, reason: str = ""
) -> SimulatedDeletion:
    """Delete every simulated participant of the study with their answers, and leave an
    audit entry. People's data are not touched."""
    with transaction.atomic():
        simulated = Participant.objects.select_for_update().filter(study=study, simulated=True)
        participant_ids = list(simulated.values_list("pk", flat=True))
        if not participant_ids:
            raise StudyConfigError(f"study {study.slug!r} has no simulated participants")
        responses_deleted, _ = Response.objects.filter(participant_id__in=participant_ids).delete()
        Participant.objects.filter(pk__in=participant_ids).delete()
        return SimulatedDeletion.objects.create(
            study=study,
            participants_deleted=len(participant_ids),
            responses_deleted=responses_deleted,
            requested_by=requested_by,
            reason=reason,
        )


def _exclusion_reasons(*, rules: dict, failed_attention: int, main_answers: list) -> list[str]:
    """Why the rules exclude a participant; `main_answers` holds (answer, response ms) pairs,
    the time as study.timing.response_ms gives it."""
    reasons = []
    limit = rules.get("max_failed_attention_checks")
    if limit is not None and failed_attention > limit:
        reasons.append(f"failed {failed_attention} attention checks (more than {limit})")
    times = [ms for _, ms in main_answers]
    fastest = rules.get("min_median_response_ms")
    if fastest is not None and times and statistics.median(times) < fastest:
        reasons.append(
            f"median response time {statistics.median(times):.0f} ms (below {fastest} ms)"
        )
    share = rules.get("max_same_answer_share")
    if share is not None and main_answers:
        answer, count = Counter(answer for answer, _ in main_answers).most_common(1)[0]
        if count / len(main_answers) > share:
            reasons.append(
                f"answered {answer!r} on {count} of {len(main_answers)} main trials "
                f"(more than {share:.0%})"
            )
    return reasons


def participants_apply_exclusions(
    *, study: Study, participants: QuerySet | None = None, chunk_size: int = 500
) -> int:
    """Apply the study's declared exclusion rules, storing the verdict and its reasons on each
    participant (all of the study's, or those given). Deterministic, so running it again
    changes nothing; returns how many participants changed."""
    rules = study.exclusion_rules or {}
    participants = participants if participants is not None else study.participants.all()
    chosen = participants.filter(study=study)
    participants = chosen.annotate(
        failed_attention=Count(
            "responses",
            filter=Q(responses__phase=StudyItem.Role.ATTENTION, responses__is_correct=False),
        )
    )
    # One ordered pass over the main answers beside the ordered participants (a merge join),
    # rather than a query per participant.
    answers = (
        Response.objects.filter(participant__in=chosen.values("pk"), phase=StudyItem.Role.MAIN)
        .order_by("participant_id", "trial_position")
        .values_list(
            "participant_id",
            "answer",
            "client_response_ms",
            "server_shown_at",
            "server_received_at",
        )
        .iterator(chunk_size=chunk_size)
    )
    pending = next(answers, None)
    changed = 0
    batch: list[Participant] = []
    for participant in participants.order_by("pk").iterator(chunk_size=chunk_size):
        main_answers = []
        while pending is not None and pending[0] <= participant.pk:
            if pending[0] == participant.pk:
                _, answer, client_ms, shown_at, received_at = pending
                server_ms = timing.server_response_ms(shown_at, received_at)
                main_answers.append((answer, timing.response_ms(client_ms, server_ms)))
            pending = next(answers, None)
        reasons = _exclusion_reasons(
            rules=rules,
            failed_attention=participant.failed_attention,
            main_answers=main_answers,
        )
        if reasons != participant.exclusion_reasons or bool(reasons) != participant.excluded:
            participant.excluded = bool(reasons)
            participant.exclusion_reasons = reasons
            batch.append(participant)
        if len(batch) >= chunk_size:
            changed += Participant.objects.bulk_update(batch, ["excluded", "exclusion_reasons"])
            batch = []
    if batch:
        changed += Participant.objects.bulk_update(batch, ["excluded", "exclusion_reasons"])
    return changed


def study_set_show_accuracy(*, study: Study, show: bool) -> Study:
    """Show or hide accuracy so far on the dashboard of a running study (not part of the
    frozen design: it changes nothing participants see)."""
    study.show_accuracy = show
    study.save(update_fields=["show_accuracy"])
    return study


def comparison_png(*, explanation: Explanation) -> bytes:
    """The A/B picture of a SAG explanation's first comparative pair, as PNG bytes.

    Drawn from the stored search and the photo, so a participant's page never waits on the
    model; the pair's confidences stay on the server.
    """
    photo_file = explanation.image.file  # the snapshot's, shared: open a handle of its own
    with photo_file.storage.open(photo_file.name, "rb") as handle, PILImage.open(handle) as photo:
        figure = render.sag_pair_figure(photo.convert("RGB"), explanation.data, 0)
    buffer = io.BytesIO()
    figure.save(buffer, format="PNG")
    return buffer.getvalue()
