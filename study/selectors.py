"""Reads for the study side: what a participant sees next, progress, and exports."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Count, Q

from explain_engine.models import Explanation, Image, Prediction
from study.forms import QUESTIONNAIRE_FIELDS
from study.models import Condition, Participant, PlatformIdentity, Response, Study, StudyItem
from study.platforms import mturk_submit_url
from study.question_types import QUESTION_TYPES, Choice, attention_check_choice
from study.services import CONFIDENCE_SCALE

if TYPE_CHECKING:
    from study.analysis import StudyReport


def explanation_for(*, condition: Condition, image: Image) -> Explanation | None:
    """The finished explanation a condition shows for an image: of the model's own prediction."""
    if not condition.explanation_method:
        return None
    classifier = condition.study.classifier
    prediction = Prediction.objects.filter(classifier=classifier, image=image).first()
    if prediction is None:
        return None
    return Explanation.objects.filter(
        classifier=classifier,
        image=image,
        method=condition.explanation_method,
        params_hash=condition.explanation_params_hash,
        target_index=prediction.predicted_index,
        status=Explanation.Status.DONE,
    ).first()


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


def trial_current(*, participant: Participant) -> Trial:
    study = participant.study
    question_type = QUESTION_TYPES[study.question_type]
    item = StudyItem.objects.select_related("image").get(
        pk=participant.trial_item_ids[participant.trial_position]
    )
    shows_ai = question_type.shows_ai_prediction or participant.condition.show_ai_prediction
    roles = dict(
        StudyItem.objects.filter(pk__in=participant.trial_item_ids).values_list("pk", "role")
    )
    is_practice = item.role == StudyItem.Role.TRAINING
    phase_ids = [
        pk
        for pk in participant.trial_item_ids
        if (roles[pk] == StudyItem.Role.TRAINING) == is_practice
    ]
    choices = question_type.choices(classifier=study.classifier)
    prompt = question_type.prompt
    next_position = participant.trial_position + 1
    next_item = None
    if next_position < len(participant.trial_item_ids):
        next_item = StudyItem.objects.select_related("image").get(
            pk=participant.trial_item_ids[next_position]
        )
    if item.role == StudyItem.Role.ATTENTION:
        instructed = attention_check_choice(item_id=item.pk, choices=choices)
        prompt = (
            f"Attention check: please choose \u201c{instructed.text}\u201d, "
            "whatever the picture shows."
        )
    return Trial(
        position=participant.trial_position,
        count=len(participant.trial_item_ids),
        phase=item.role,
        phase_position=phase_ids.index(item.pk),
        phase_count=len(phase_ids),
        item=item,
        prompt=prompt,
        choices=choices,
        explanation=explanation_for(condition=participant.condition, image=item.image),
        ai_prediction=Prediction.objects.select_related("predicted_label")
        .filter(classifier=study.classifier, image=item.image)
        .first()
        if shows_ai
        else None,
        next_item=next_item,
        next_explanation=explanation_for(condition=participant.condition, image=next_item.image)
        if next_item
        else None,
    )


@dataclass(frozen=True)
class Feedback:
    response: Response
    correct_text: str
    explanation: Explanation | None


def feedback_for(*, participant: Participant) -> Feedback:
    response = Response.objects.select_related("item__image", "explanation_shown").get(
        pk=participant.feedback_response_id
    )
    question_type = QUESTION_TYPES[participant.study.question_type]
    texts = {
        c.value: c.text for c in question_type.choices(classifier=participant.study.classifier)
    }
    return Feedback(
        response=response,
        correct_text=texts[response.correct_answer],
        explanation=response.explanation_shown,
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


@dataclass(frozen=True)
class GalleryEntry:
    label_text: str
    image: Image


def reference_gallery(*, study: Study) -> list[GalleryEntry]:
    """One labelled example per class, from the train split, never a study item: the
    species-identification task is learnable without giving trials away."""
    if study.question_type not in ("species_identification", "predict_ai"):
        return []
    item_images = study.items.values_list("image_id", flat=True)
    labels = {label.source_name: label for label in study.classifier.image_set.classes.all()}
    entries = []
    for source_name in study.classifier.class_order:
        label = labels[source_name]
        example = (
            label.images.filter(split=Image.Split.TRAIN)
            .exclude(pk__in=item_images)
            .order_by("source_id")
            .first()
        )
        if example is not None:
            entries.append(GalleryEntry(label_text=label.display_name, image=example))
    return entries


def participant_may_see_image(*, participant: Participant, image: Image) -> bool:
    if StudyItem.objects.filter(pk__in=participant.trial_item_ids, image=image).exists():
        return True
    return any(entry.image.pk == image.pk for entry in reference_gallery(study=participant.study))


def participant_may_see_explanation(*, participant: Participant, explanation: Explanation) -> bool:
    shown = explanation_for(condition=participant.condition, image=explanation.image)
    return (
        shown is not None
        and shown.pk == explanation.pk
        and participant_may_see_image(participant=participant, image=explanation.image)
    )


def study_config_snapshot(*, study: Study) -> dict:
    """Everything that defines what participants see, for the launch hash."""
    return {
        "slug": study.slug,
        "question_type": study.question_type,
        "platform": study.platform,
        "classifier_sha256": study.classifier.checkpoint_sha256,
        "consent_text": study.consent_text,
        "consent_version": study.consent_version,
        "instructions_text": study.instructions_text,
        "participants_per_condition": study.participants_per_condition,
        "conditions": [
            [c.name, c.explanation_method, c.explanation_params_hash, c.show_ai_prediction]
            for c in study.conditions.order_by("name")
        ],
        "items": sorted(
            [str(item.image.public_id), item.role] for item in study.items.select_related("image")
        ),
    }


@dataclass(frozen=True)
class ConditionProgress:
    name: str
    explanation_method: str
    active: int
    completed: int
    responses: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.responses if self.responses else None


def study_progress(*, study: Study) -> list[ConditionProgress]:
    conditions = study.conditions.annotate(
        active=Count(
            "participants", filter=Q(participants__status=Participant.Status.ACTIVE), distinct=True
        ),
        completed=Count(
            "participants",
            filter=Q(participants__status=Participant.Status.COMPLETED),
            distinct=True,
        ),
    )
    answer_counts = {
        row["participant__condition"]: row
        for row in Response.objects.filter(participant__study=study, phase=StudyItem.Role.MAIN)
        .values("participant__condition")
        .annotate(responses=Count("pk"), correct=Count("pk", filter=Q(is_correct=True)))
    }
    return [
        ConditionProgress(
            name=condition.name,
            explanation_method=condition.explanation_method or "none",
            active=condition.active,
            completed=condition.completed,
            responses=answer_counts.get(condition.pk, {}).get("responses", 0),
            correct=answer_counts.get(condition.pk, {}).get("correct", 0),
        )
        for condition in conditions
    ]


EXPORT_COLUMNS = (
    "study",
    "participant",
    "platform_pseudonym",
    "participant_status",
    "attention_checks_failed",
    "condition",
    "explanation_method",
    "phase",
    "trial_position",
    "item",
    "image",
    "true_label",
    "answer",
    "correct_answer",
    "is_correct",
    "confidence",
    "client_response_ms",
    "server_response_ms",
    "ai_prediction",
    "ai_confidence",
    "ai_correct",
    "explanation",
    "server_shown_at",
    "server_received_at",
    "viewport",
    "interactions",
    "study_config_hash",
    *(f"q_{name}" for name in QUESTIONNAIRE_FIELDS),
)


def study_export_rows(*, study: Study) -> Iterator[dict]:
    """One dict per response, joined with the item and the model's output on it."""
    predictions = {
        prediction.image_id: prediction
        for prediction in Prediction.objects.filter(classifier=study.classifier).select_related(
            "predicted_label"
        )
    }
    attention_failures = dict(
        Response.objects.filter(
            participant__study=study, phase=StudyItem.Role.ATTENTION, is_correct=False
        )
        .values("participant")
        .annotate(failed=Count("pk"))
        .values_list("participant", "failed")
    )
    responses = (
        Response.objects.filter(participant__study=study)
        .select_related(
            "participant__condition",
            "item__image__class_label",
            "explanation_shown",
        )
        .order_by("participant_id", "trial_position")
    )
    for response in responses.iterator(chunk_size=2000):
        participant = response.participant
        image = response.item.image
        prediction = predictions.get(image.pk)
        shown_to_received = response.server_received_at - response.server_shown_at
        yield {
            "study": study.slug,
            "participant": participant.pk,
            "platform_pseudonym": participant.platform_pseudonym,
            "participant_status": participant.status,
            "attention_checks_failed": attention_failures.get(participant.pk, 0),
            "condition": participant.condition.name,
            "explanation_method": participant.condition.explanation_method or "none",
            "phase": response.phase,
            "trial_position": response.trial_position,
            "item": response.item_id,
            "image": str(image.public_id),
            "true_label": image.class_label.display_name,
            "answer": response.answer_text,
            "correct_answer": response.correct_answer,
            "is_correct": int(response.is_correct),
            "confidence": response.confidence,
            "client_response_ms": response.client_response_ms,
            "server_response_ms": round(shown_to_received.total_seconds() * 1000),
            "ai_prediction": prediction.predicted_label.display_name if prediction else "",
            "ai_confidence": round(prediction.confidence, 4) if prediction else "",
            "ai_correct": int(prediction.predicted_label_id == image.class_label_id)
            if prediction
            else "",
            "explanation": str(response.explanation_shown.public_id)
            if response.explanation_shown
            else "",
            "server_shown_at": response.server_shown_at.isoformat(),
            "server_received_at": response.server_received_at.isoformat(),
            "viewport": response.viewport,
            "interactions": json.dumps(response.interactions, separators=(",", ":")),
            "study_config_hash": participant.study_config_hash,
            **{
                f"q_{name}": participant.questionnaire.get(name, "")
                for name in QUESTIONNAIRE_FIELDS
            },
        }


def study_analysis(
    *, study: Study, include_pilot: bool = False, include_excluded: bool = False
) -> "StudyReport":
    """The study's outcome statistics over its export rows (see study.analysis).

    Raises study.analysis.AnalysisError when there is no main-phase response to analyse.
    Rows without the participant_pilot / participant_excluded columns count as neither.
    """
    # Imported here: statsmodels and matplotlib take seconds to load, and only the
    # researcher's analysis needs them, never a participant's page.
    from study.analysis import analyze_responses

    rows = (
        {"participant_pilot": False, "participant_excluded": False, **row}
        for row in study_export_rows(study=study)
    )
    return analyze_responses(
        rows,
        n_choices=len(QUESTION_TYPES[study.question_type].choices(classifier=study.classifier)),
        confidence_levels=CONFIDENCE_SCALE,
        question_type=study.question_type,
        condition_order=list(study.conditions.values_list("name", flat=True)),
        include_pilot=include_pilot,
        include_excluded=include_excluded,
    )
