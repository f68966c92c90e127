"""Reads for the participant's pages: who the participant is, the trial on screen, the
feedback on a practice trial, the MTurk submission form, and which files they may see.
All of it comes from the launched study's snapshot (`study.design.frozen`)."""

from dataclasses import dataclass

from explain_engine.models import Explanation, Image, Prediction
from study.design.frozen import (
    ParticipantAssignment,
    frozen_study,
    frozen_study_by_hash,
    participant_assignment,
)
from study.design.question_types import (
    QUESTION_TYPES,
    Choice,
    Comparison,
    attention_check_choice,
)
from study.design.stimuli import GalleryEntry
from study.flow.figures import REFLOWED
from study.flow.stimulus_tokens import stimulus_resolve
from study.models import Participant, PlatformIdentity, Response, Study, StudyItem
from study.platforms import mturk_submit_url


@dataclass(frozen=True)
class Trial:
    position: int
    count: int
    phase: str
    phase_position: int  # 0-based within the practice or the main block
    phase_count: int
    item: StudyItem
    prompt: str
    choices: list[Choice]
    explanation: Explanation | None
    ai_prediction: Prediction | None  # shown when the question or the condition asks for it
    next_item: StudyItem | None  # its images are prefetched while this trial is answered
    next_explanation: Explanation | None
    comparison: Explanation | None = None  # the SAG search whose pair the question shows


def preview_allowed(*, study: Study, user) -> bool:
    """Whether `user` may walk a preview of `study`: a researcher who sees it (an owner, or
    staff). A preview's link opened by anyone else shows nothing."""
    if not user.is_authenticated:
        return False
    return user.is_staff or study.owners.filter(pk=user.pk).exists()


def participant_by_code(*, slug: str, code: str) -> Participant | None:
    """The participant with `code` in study `slug`, with the study and condition attached
    from the launched study's snapshot: one query."""
    try:
        participant = Participant.objects.get(code=code)
    except Participant.DoesNotExist:
        return None
    frozen = frozen_study_by_hash(
        study_id=participant.study_id, config_hash=participant.study_config_hash
    )
    if frozen.study.slug != slug:
        return None
    participant.study = frozen.study
    participant.condition = frozen.conditions[participant.condition_id]
    return participant


def trial_current(*, participant: Participant) -> Trial:
    frozen = frozen_study(participant.study)
    question_type = QUESTION_TYPES[frozen.study.question_type]
    condition = participant.condition
    item_ids = participant.trial_item_ids
    item = frozen.items[item_ids[participant.trial_position]]
    next_position = participant.trial_position + 1
    next_item = frozen.items[item_ids[next_position]] if next_position < len(item_ids) else None
    shows_ai = question_type.shows_ai_prediction or condition.show_ai_prediction
    is_practice = item.role == StudyItem.Role.TRAINING
    phase_ids = [
        pk for pk in item_ids if (frozen.items[pk].role == StudyItem.Role.TRAINING) == is_practice
    ]
    prompt = question_type.prompt
    if item.role == StudyItem.Role.ATTENTION:
        instructed = attention_check_choice(item=item, choices=frozen.choices)
        prompt = (
            f"Attention check: please choose \u201c{instructed.text}\u201d, "
            "whatever the picture shows."
        )
    comparison = frozen.comparisons.get(item.image_id)
    return Trial(
        position=participant.trial_position,
        count=len(item_ids),
        phase=item.role,
        phase_position=phase_ids.index(item.pk),
        phase_count=len(phase_ids),
        item=item,
        prompt=prompt,
        choices=frozen.choices,
        explanation=frozen.explanations.get((condition.pk, item.image_id)),
        ai_prediction=frozen.predictions.get(item.image_id) if shows_ai else None,
        next_item=next_item,
        next_explanation=(
            frozen.explanations.get((condition.pk, next_item.image_id)) if next_item else None
        ),
        comparison=comparison.explanation if comparison else None,
    )


@dataclass(frozen=True)
class Feedback:
    response: Response
    correct_text: str
    explanation: Explanation | None
    comparison: Explanation | None = None  # the pair the practice question showed


def feedback_for(*, participant: Participant) -> Feedback:
    response = Response.objects.select_related("item__image", "explanation_shown").get(
        pk=participant.feedback_response_id
    )
    frozen = frozen_study(participant.study)
    texts = {c.value: c.text for c in frozen.choices}
    comparison = frozen.comparisons.get(response.item.image_id)
    return Feedback(
        response=response,
        correct_text=texts[response.correct_answer],
        explanation=response.explanation_shown,
        comparison=comparison.explanation if comparison else None,
    )


@dataclass(frozen=True)
class MTurkSubmission:
    url: str
    assignment_id: str
    completion_code: str


def mturk_submission_for(*, participant: Participant) -> MTurkSubmission | None:
    """The form that ends a completed MTurk participant's HIT, posted to Amazon."""
    if participant.platform != Study.Platform.MTURK:
        return None
    if participant.status != Participant.Status.COMPLETED:
        return None
    identity = PlatformIdentity.objects.get(participant=participant)
    return MTurkSubmission(
        url=mturk_submit_url(identity.submit_to),
        assignment_id=identity.session_id,
        completion_code=participant.study.completion_code,
    )


def reference_gallery(*, study: Study) -> list[GalleryEntry]:
    """One labelled example per class, from the train split, never a study item: the
    species-identification task is learnable without giving trials away."""
    return frozen_study(study).gallery


def participant_assignment_by_code(*, slug: str, code: str) -> ParticipantAssignment | None:
    """The assignment of the participant with `code` in study `slug` (see
    `study.design.frozen.participant_assignment`): enough to decide which files they may see."""
    assignment = participant_assignment(code)
    if assignment is None or assignment.frozen.study.slug != slug:
        return None
    return assignment


def participant_image(*, assignment: ParticipantAssignment, code: str, token: str) -> Image | None:
    """The image the participant's `token` stands for, if the participant is shown it: one
    of their trials' or the reference gallery's (see study.flow.stimulus_tokens)."""
    frozen = assignment.frozen
    candidates = [
        item.image for item in frozen.items.values() if item.image_id in assignment.trial_image_ids
    ] + [entry.image for entry in frozen.gallery]
    return stimulus_resolve(code=code, kind="image", token=token, candidates=candidates)


def participant_explanation(
    *, assignment: ParticipantAssignment, code: str, token: str
) -> Explanation | None:
    """The explanation the participant's `token` stands for, if their condition shows it on
    one of their trials as a stored figure: never a SAG or XNN figure, which the page lays
    out from its parts (the stored XNN panel holds the prototypes, training photos of the
    AI's answer, that a condition hiding the answer leaves out; study.flow.figures)."""
    frozen = assignment.frozen
    candidates = [
        frozen.explanations[key]
        for key in ((assignment.condition_id, image_id) for image_id in assignment.trial_image_ids)
        if key in frozen.explanations and frozen.explanations[key].method not in REFLOWED
    ]
    return stimulus_resolve(code=code, kind="explanation", token=token, candidates=candidates)


def participant_comparison(
    *, assignment: ParticipantAssignment, code: str, token: str
) -> Comparison | None:
    """The comparison the participant's `token` stands for (by its SAG search), if one of
    their comparative trials draws its pair from it."""
    comparisons = assignment.frozen.comparisons
    for image_id in assignment.trial_image_ids:
        comparison = comparisons.get(image_id)
        if comparison is not None and stimulus_resolve(
            code=code, kind="comparison", token=token, candidates=[comparison.explanation]
        ):
            return comparison
    return None
