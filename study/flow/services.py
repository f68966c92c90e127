"""Writes for the participant's steps: consent, instructions, comprehension, each answer,
feedback, the questionnaire, and where an ended participant goes next.

Every function here either completes its write or raises; a participant's state only
moves forward, so a repeated or stale request changes nothing. Which page follows which is
`study.flow.sequence`'s.
"""

from django.db import transaction
from django.utils import timezone

from study.design.frozen import frozen_study
from study.design.question_types import CONFIDENCE_SCALE
from study.flow.sequence import (
    PAGE_COMPREHENSION,
    PAGE_CONSENT,
    PAGE_DECLINED,
    PAGE_FEEDBACK,
    PAGE_INSTRUCTIONS,
    PAGE_QUESTIONNAIRE,
    PAGE_SCREENED_OUT,
    PAGE_TRIALS,
    page_after,
)
from study.models import Participant, Response, Study, StudyItem
from study.results.exclusions import participants_apply_exclusions


class InvalidAnswer(ValueError):
    """A submitted answer that does not fit the trial; nothing is saved."""


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
            participant.page = page_after(PAGE_CONSENT, participant)
        else:
            participant.status = Participant.Status.DECLINED
            participant.page = PAGE_DECLINED
        participant.save()
    return participant


def participant_finish_instructions(*, participant: Participant) -> Participant:
    with transaction.atomic():
        participant = _locked(participant)
        if participant.page == PAGE_INSTRUCTIONS:
            participant.page = page_after(PAGE_INSTRUCTIONS, participant)
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
            participant.page = page_after(PAGE_COMPREHENSION, participant)
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


def _checked_choices(frozen, *, item, answer: str, confidence: int | None) -> dict:
    """The study's choices by value, once the answer is one of them and the confidence is
    what the trial asks (none on an attention check)."""
    if item.role == StudyItem.Role.ATTENTION:
        # An instructed answer has nothing to be confident about: the check asks none.
        if confidence is not None:
            raise InvalidAnswer("an attention check asks no confidence")
    elif confidence not in CONFIDENCE_SCALE:
        raise InvalidAnswer(f"confidence must be one of {CONFIDENCE_SCALE}")
    choices = {choice.value: choice for choice in frozen.choices}
    if answer not in choices:
        raise InvalidAnswer("the answer is not one of the offered choices")
    return choices


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
        choices = _checked_choices(frozen, item=item, answer=answer, confidence=confidence)
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
        participant.page = page_after(PAGE_TRIALS, participant)


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
            participant.page = page_after(PAGE_QUESTIONNAIRE, participant)
            participant.status = Participant.Status.COMPLETED
            participant.completed_at = timezone.now()
            participant.save()
            participants_apply_exclusions(
                study=participant.study, participants=Participant.objects.filter(pk=participant.pk)
            )
    participant.refresh_from_db()
    return participant


PROLIFIC_COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc={code}"


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
