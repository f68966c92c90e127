"""Reads for the study side: what a participant sees next, progress, and exports."""

import hashlib
import json
import statistics
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from django.db.models import Count, Q, QuerySet

from explain_engine.models import Explanation, Image, Prediction
from study import timing
from study.forms import QUESTIONNAIRE_FIELDS, QuestionnaireForm
from study.frozen import (
    ParticipantAssignment,
    frozen_study,
    frozen_study_by_hash,
    participant_assignment,
)
from study.models import Condition, Participant, PlatformIdentity, Response, Study, StudyItem
from study.platforms import mturk_submit_url
from study.question_types import (
    QUESTION_TYPES,
    Choice,
    attention_check_choice,
    sag_comparison,
    study_choices,
)
from study.services import CONFIDENCE_SCALE
from study.shortcut_audit import AuditCondition, AuditItem, AuditReport, shortcut_audit
from study.stimulus_tokens import stimulus_resolve

if TYPE_CHECKING:
    from study.analysis import ResponseCollector, StudyReport


def explanation_for(*, condition: Condition, image: Image) -> Explanation | None:
    """The finished explanation a condition shows for an image: of the model's own prediction."""
    if not condition.explanation_method:
        return None
    prediction = Prediction.objects.filter(
        classifier_id=condition.study.classifier_id, image=image
    ).first()
    if prediction is None:
        return None
    return explanations_for(condition=condition, predictions=[prediction]).get(image.pk)


def explanations_for(
    *, condition: Condition, predictions: Iterable[Prediction]
) -> dict[int, Explanation]:
    """`explanation_for` of several images at once, by image id, given the model's
    predictions for them (one query)."""
    targets = {prediction.image_id: prediction for prediction in predictions}
    if not condition.explanation_method or not targets:
        return {}
    found: dict[int, Explanation] = {}
    candidates = Explanation.objects.filter(
        classifier_id__in={prediction.classifier_id for prediction in targets.values()},
        image_id__in=targets,
        method=condition.explanation_method,
        params_hash=condition.explanation_params_hash,
        status=Explanation.Status.DONE,
    ).order_by("pk")
    for explanation in candidates:
        prediction = targets[explanation.image_id]
        if (
            explanation.classifier_id == prediction.classifier_id
            and explanation.target_index == prediction.predicted_index
        ):
            found.setdefault(explanation.image_id, explanation)
    return found


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


@dataclass(frozen=True)
class GalleryEntry:
    label_text: str
    image: Image


def reference_gallery(*, study: Study) -> list[GalleryEntry]:
    """One labelled example per class, from the train split, never a study item: the
    species-identification task is learnable without giving trials away."""
    return frozen_study(study).gallery


def reference_gallery_from_database(study: Study) -> list[GalleryEntry]:
    """`reference_gallery`, read from the database (for the study's snapshot)."""
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


def participant_assignment_by_code(*, slug: str, code: str) -> ParticipantAssignment | None:
    """The assignment of the participant with `code` in study `slug` (see
    `study.frozen.participant_assignment`): enough to decide which files they may see."""
    assignment = participant_assignment(code)
    if assignment is None or assignment.frozen.study.slug != slug:
        return None
    return assignment


def participant_image(*, assignment: ParticipantAssignment, code: str, token: str) -> Image | None:
    """The image the participant's `token` stands for, if the participant is shown it: one
    of their trials' or the reference gallery's (see study.stimulus_tokens)."""
    frozen = assignment.frozen
    candidates = [
        item.image for item in frozen.items.values() if item.image_id in assignment.trial_image_ids
    ] + [entry.image for entry in frozen.gallery]
    return stimulus_resolve(code=code, kind="image", token=token, candidates=candidates)


def participant_explanation(
    *, assignment: ParticipantAssignment, code: str, token: str
) -> Explanation | None:
    """The explanation the participant's `token` stands for, if their condition shows it on
    one of their trials."""
    frozen = assignment.frozen
    candidates = [
        frozen.explanations[key]
        for key in ((assignment.condition_id, image_id) for image_id in assignment.trial_image_ids)
        if key in frozen.explanations
    ]
    return stimulus_resolve(code=code, kind="explanation", token=token, candidates=candidates)


def participant_comparison(
    *, assignment: ParticipantAssignment, code: str, token: str
) -> Explanation | None:
    """The SAG search the participant's `token` stands for, if one of their comparative
    trials draws its pair from it."""
    comparisons = assignment.frozen.comparisons
    candidates = [
        comparisons[image_id].explanation
        for image_id in assignment.trial_image_ids
        if image_id in comparisons
    ]
    return stimulus_resolve(code=code, kind="comparison", token=token, candidates=candidates)


def studies_visible_to(*, user) -> QuerySet[Study]:
    """The studies a researcher may see: those they own; staff see every study."""
    if user.is_staff:
        return Study.objects.all()
    return Study.objects.filter(owners=user)


def study_is_owned_by(*, study: Study, user) -> bool:
    return study.owners.filter(pk=user.pk).exists()


def study_launch_problems(*, study: Study) -> list[str]:
    """What stops the study from launching: items without the model's prediction, conditions
    without a finished explanation of the prediction for every item. Empty = launchable."""
    problems = []
    items = list(study.items.select_related("image"))
    if not study.conditions.exists():
        problems.append("the study has no conditions")
    if not any(item.role == StudyItem.Role.MAIN for item in items):
        problems.append("the study has no main trial items")
    image_ids = {item.image_id for item in items}
    predicted = dict(
        Prediction.objects.filter(classifier=study.classifier, image_id__in=image_ids).values_list(
            "image_id", "predicted_index"
        )
    )
    unpredicted = [item for item in items if item.image_id not in predicted]
    if unpredicted:
        problems.append(
            f"{len(unpredicted)} item(s) have no prediction from {study.classifier.name!r}, "
            f"e.g. image {unpredicted[0].image.public_id}; run `manage.py precompute "
            f"--study {study.slug}`"
        )
    for condition in study.conditions.exclude(explanation_method="").order_by("pk"):
        explained = set(
            Explanation.objects.filter(
                classifier=study.classifier,
                image_id__in=image_ids,
                method=condition.explanation_method,
                params_hash=condition.explanation_params_hash,
                status=Explanation.Status.DONE,
            ).values_list("image_id", "target_index")
        )
        missing = [
            item for item in items if (item.image_id, predicted.get(item.image_id)) not in explained
        ]
        if missing:
            problems.append(
                f"condition {condition.name!r}: {len(missing)} of {len(items)} item(s) have "
                f"no finished {condition.explanation_method} explanation, e.g. image "
                f"{missing[0].image.public_id}; run `manage.py precompute --study {study.slug}`"
            )
    if QUESTION_TYPES[study.question_type].needs_comparison:
        without_pair = [
            item
            for item in items
            if sag_comparison(classifier=study.classifier, image=item.image) is None
        ]
        if without_pair:
            problems.append(
                f"{len(without_pair)} item(s) have no SAG comparison pair for the comparative "
                f"question, e.g. image {without_pair[0].image.public_id}; run `manage.py "
                f"precompute --study {study.slug}`, or replace items whose search found no "
                "pair with a clear confidence gap"
            )
    return problems


def study_shortcut_audit(*, study: Study) -> AuditReport:
    """The shortcut audit of the study's main items as they stand (see study.shortcut_audit).

    Items whose correct answer a draft cannot decide yet (no prediction, no pair) are left
    out; the launch problems name them."""
    frozen = frozen_study(study)
    question_type = QUESTION_TYPES[study.question_type]
    values = {choice.value for choice in frozen.choices}
    sag_conditions = [c for c in frozen.conditions.values() if c.explanation_method == "sag"]
    items = []
    for item in sorted(frozen.items.values(), key=lambda item: item.pk):
        correct = frozen.correct_answers.get(item.pk)
        if item.role != StudyItem.Role.MAIN or correct is None:
            continue
        prediction = frozen.predictions.get(item.image_id)
        ai_answer = str(prediction.predicted_label_id) if prediction else None
        comparison = frozen.comparisons.get(item.image_id)
        pair_sizes, readable_in = None, set()
        if comparison is not None:
            pair = comparison.explanation.data["pairs"][comparison.pair_index]
            pair_sizes = (len(pair["a_patches"]), len(pair["b_patches"]))
            for condition in sag_conditions:
                shown = frozen.explanations.get((condition.pk, item.image_id))
                drawn = {
                    frozenset(node["patches"])
                    for node in (shown.data if shown else {}).get("nodes", [])
                }
                if {frozenset(pair["a_patches"]), frozenset(pair["b_patches"])} <= drawn:
                    readable_in.add(condition.name)
        items.append(
            AuditItem(
                correct=correct,
                ai_answer=ai_answer if ai_answer in values else None,
                pair_sizes=pair_sizes,
                readable_in=frozenset(readable_in),
            )
        )
    conditions = [
        AuditCondition(
            name=condition.name,
            shows_ai_answer=condition.show_ai_prediction or question_type.shows_ai_prediction,
            has_figure=bool(condition.explanation_method),
        )
        for condition in sorted(frozen.conditions.values(), key=lambda c: c.pk)
    ]
    return shortcut_audit(
        choices=[choice.value for choice in frozen.choices],
        choice_names=[choice.text for choice in frozen.choices],
        items=items,
        conditions=conditions,
        comparative=question_type.needs_comparison,
        margin_points=study.shortcut_margin_points,
    )


def study_design(*, study: Study) -> dict:
    """Everything that defines what participants see and how they are judged: the frozen
    design. Its hash is the study's config hash; the export ships it as design.json."""
    classifier = study.classifier
    conditions = list(study.conditions.order_by("name"))
    predictions = {
        prediction.image_id: prediction
        for prediction in Prediction.objects.filter(
            classifier=classifier, image__study_items__study=study
        ).select_related("predicted_label")
    }
    items = []
    for item in study.items.select_related("image__class_label").order_by("pk"):
        prediction = predictions.get(item.image_id)
        explanations = {}
        for condition in conditions:
            if condition.explanation_method:
                explanation = explanation_for(condition=condition, image=item.image)
                explanations[condition.name] = str(explanation.public_id) if explanation else None
        items.append(
            {
                "item": item.pk,
                "role": item.role,
                "image": str(item.image.public_id),
                "image_sha256": item.image.sha256,
                "true_label": item.image.class_label.display_name,
                "ai_prediction": prediction.predicted_label.display_name if prediction else None,
                "ai_confidence": round(prediction.confidence, 6) if prediction else None,
                "explanations": explanations,
            }
        )
    return {
        "slug": study.slug,
        "title": study.title,
        "platform": study.platform,
        "question_type": study.question_type,
        "classifier": {
            "name": classifier.name,
            "architecture": classifier.architecture,
            "checkpoint_sha256": classifier.checkpoint_sha256,
            "class_order": classifier.class_order,
        },
        "participants_per_condition": study.participants_per_condition,
        "time_limit_minutes": study.time_limit_minutes,
        "conditions": [
            {
                "name": c.name,
                "explanation_method": c.explanation_method,
                "explanation_params": c.explanation_params,
                "explanation_params_hash": c.explanation_params_hash,
                "show_ai_prediction": c.show_ai_prediction,
                "show_ai_confidence": c.show_ai_confidence,
                "quota": c.quota or study.participants_per_condition,
            }
            for c in conditions
        ],
        "items": items,
        "texts": {
            "description": study.description,
            "consent": study.consent_text,
            "consent_version": study.consent_version,
            "instructions": study.instructions_text,
            "debrief": study.debrief_text,
        },
        "comprehension_questions": study.comprehension_questions,
        "comprehension_max_attempts": study.comprehension_max_attempts,
        "completion_codes": {
            "completed": study.completion_code,
            "no_consent": study.no_consent_code,
            "failed_comprehension": study.failed_comprehension_code,
        },
        "exclusion_rules": study.exclusion_rules,
        "shortcut_audit": {
            "margin_points": study.shortcut_margin_points,
            "override_reason": study.shortcut_override_reason,
        },
    }


def study_config_hash(*, study: Study) -> str:
    design = json.dumps(study_design(study=study), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(design.encode()).hexdigest()


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


@dataclass(frozen=True)
class Column:
    name: str
    description: str


_QUESTIONNAIRE = QuestionnaireForm.base_fields  # the generic wording; see study.condition_texts
QUESTIONNAIRE_COLUMNS = tuple(
    Column(f"q_{name}", f"questionnaire: {_QUESTIONNAIRE[name].label} (blank: not asked)")
    for name in QUESTIONNAIRE_FIELDS
)
EXCLUSION_COLUMNS = (
    Column(
        "participant_pilot",
        "1 if the participant entered while the study was a pilot; left out of analyses by default",
    ),
    Column(
        "participant_simulated",
        "1 if a bot of simulate_participants, not a person (never a real participant's data)",
    ),
    Column("participant_excluded", "1 if the study's declared exclusion rules exclude them"),
    Column("exclusion_reasons", "why they are excluded, '; '-separated (blank: not excluded)"),
)

# The one declaration of the export's columns: the CSV writers and the codebook both read it.
RESPONSE_COLUMNS = (
    Column("study", "study slug"),
    Column("participant", "participant number within this database (not a platform id)"),
    Column("platform_pseudonym", "keyed hash of the platform worker id (blank: open link)"),
    Column("participant_status", "active, completed, declined, screened_out or timed_out"),
    *EXCLUSION_COLUMNS,
    Column("attention_checks_failed", "attention checks this participant answered wrongly"),
    Column("condition", "the participant's condition"),
    Column("explanation_method", "engine method slug of the condition ('none': no explanation)"),
    Column(
        "explanation_params_hash",
        "hash of the method's full parameters (blank: no explanation)",
    ),
    Column("phase", "training (practice with feedback), main, or attention (attention check)"),
    Column("trial_position", "0-based position of this trial in the participant's sequence"),
    Column("item", "study item id (an image in a role)"),
    Column("image", "opaque image id"),
    Column("true_label", "the image's true class"),
    Column("answer", "the answer as the participant read it"),
    Column("correct_answer", "the value that counted as correct (a label id, yes/no, ...)"),
    Column("is_correct", "1 if the answer was correct"),
    Column(
        "confidence",
        "the participant's confidence, 1 (guessing) to 5 (certain); blank on attention checks",
    ),
    Column(
        "client_response_ms",
        "ms from the stimulus being painted to the answer, measured in the browser",
    ),
    Column("server_response_ms", "ms from the server sending the trial to receiving the answer"),
    Column(
        "response_ms",
        "the response time analyses and exclusions use: client_response_ms where consistent "
        "with the server's (present and not longer), else server_response_ms",
    ),
    Column(
        "client_time_inconsistent",
        "1 if client_response_ms is missing or longer than server_response_ms (then ignored)",
    ),
    Column("ai_prediction", "the classifier's predicted class for the image"),
    Column("ai_confidence", "the classifier's softmax probability of its prediction"),
    Column("ai_correct", "1 if the classifier's prediction is the true class"),
    Column("explanation", "opaque id of the explanation shown (blank: none)"),
    Column("server_shown_at", "when the server sent the trial (ISO 8601, UTC)"),
    Column("server_received_at", "when the server received the answer (ISO 8601, UTC)"),
    Column("viewport", "browser viewport, WIDTHxHEIGHT in CSS px"),
    Column(
        "stimulus_missing",
        "1 if the answer was given while a photo or figure of the trial had not loaded",
    ),
    Column(
        "interactions",
        'JSON list of explanation interactions, [{"event": ..., "ms": ...}], ms from paint',
    ),
    Column("study_config_hash", "hash of the frozen study design the participant saw"),
    *QUESTIONNAIRE_COLUMNS,
)
EXPORT_COLUMNS = tuple(column.name for column in RESPONSE_COLUMNS)

PARTICIPANT_COLUMNS = (
    Column("study", "study slug"),
    Column("participant", "participant number within this database (not a platform id)"),
    Column("platform_pseudonym", "keyed hash of the platform worker id (blank: open link)"),
    Column("condition", "the participant's condition"),
    Column("explanation_method", "engine method slug of the condition ('none': no explanation)"),
    Column("participant_status", "active, completed, declined, screened_out or timed_out"),
    *EXCLUSION_COLUMNS,
    Column("page", "the last page of the flow the participant reached"),
    Column("started_at", "entry time (ISO 8601, UTC)"),
    Column("consented_at", "consent time (blank: did not consent)"),
    Column("completed_at", "completion time (blank: did not complete)"),
    Column("last_seen_at", "time of the participant's last request"),
    Column("duration_s", "seconds from entry to completion (blank: did not complete)"),
    Column("consent_version", "version of the consent text agreed to"),
    Column("comprehension_attempts", "attempts at the comprehension check"),
    Column(
        "comprehension_passed",
        "1 passed, 0 screened out, blank: no check in this study or not reached",
    ),
    Column("practice_trials", "practice trials answered"),
    Column("practice_correct", "practice trials answered correctly"),
    Column("main_trials", "main trials answered"),
    Column("main_correct", "main trials answered correctly"),
    Column("main_accuracy", "main_correct / main_trials (blank: none answered)"),
    Column(
        "median_response_ms",
        "median response_ms on main trials (the server's time, refined by a consistent client's)",
    ),
    Column("attention_checks", "attention checks answered"),
    Column("attention_checks_failed", "attention checks answered wrongly"),
    Column("study_config_hash", "hash of the frozen study design the participant saw"),
    *QUESTIONNAIRE_COLUMNS,
)
PARTICIPANT_EXPORT_COLUMNS = tuple(column.name for column in PARTICIPANT_COLUMNS)


def _exclusion_values(participant: Participant) -> dict:
    return {
        "participant_pilot": int(participant.is_pilot),
        "participant_simulated": int(participant.simulated),
        "participant_excluded": int(participant.excluded),
        "exclusion_reasons": "; ".join(participant.exclusion_reasons),
    }


def _questionnaire_values(participant: Participant) -> dict:
    return {f"q_{name}": participant.questionnaire.get(name, "") for name in QUESTIONNAIRE_FIELDS}


def study_export_rows(*, study: Study, chunk_size: int = 2000) -> Iterator[dict]:
    """One dict per response, joined with the participant, the item and the model's output.

    Streams in constant memory: responses are read as plain values in chunks, and only the
    participants of the current chunk are held (a participant's columns repeat on each of
    their rows). Items and predictions are per study, so they are read once.
    """
    items = {
        item.pk: item.image
        for item in study.items.select_related("image__class_label").only(
            "pk", "image__public_id", "image__class_label__display_name", "image__class_label_id"
        )
    }
    predictions = {
        prediction.image_id: prediction
        for prediction in Prediction.objects.filter(
            classifier=study.classifier, image_id__in=[image.pk for image in items.values()]
        ).select_related("predicted_label")
    }
    fields = (
        "participant_id", "item_id", "phase", "trial_position", "answer_text",
        "correct_answer", "is_correct", "confidence", "client_response_ms", "server_shown_at",
        "server_received_at", "viewport", "interactions", "explanation_shown__public_id",
        "stimulus_missing",
    )  # fmt: skip
    responses = (
        Response.objects.filter(participant__study=study)
        .order_by("participant_id", "trial_position")
        .values_list(*fields)
    )
    chunk: list[tuple] = []
    for values in responses.iterator(chunk_size=chunk_size):
        chunk.append(values)
        if len(chunk) == chunk_size:
            yield from _export_chunk(study, chunk, items, predictions)
            chunk = []
    yield from _export_chunk(study, chunk, items, predictions)


def _export_chunk(study: Study, chunk: list[tuple], items: dict, predictions: dict):
    participant_ids = {values[0] for values in chunk}
    participants = {
        participant.pk: participant
        for participant in Participant.objects.filter(pk__in=participant_ids)
        .select_related("condition")
        .annotate(
            failed_attention=Count(
                "responses",
                filter=Q(responses__phase=StudyItem.Role.ATTENTION, responses__is_correct=False),
            )
        )
    }
    columns = {}
    for pk, participant in participants.items():
        condition = participant.condition
        columns[pk] = {
            "study": study.slug,
            "participant": pk,
            "platform_pseudonym": participant.platform_pseudonym,
            "participant_status": participant.status,
            **_exclusion_values(participant),
            "attention_checks_failed": participant.failed_attention,
            "condition": condition.name,
            "explanation_method": condition.explanation_method or "none",
            "explanation_params_hash": condition.explanation_params_hash,
        }
    for (
        participant_id, item_id, phase, position, answer_text, correct_answer, is_correct,
        confidence, client_ms, shown_at, received_at, viewport, interactions, explanation_id,
        stimulus_missing,
    ) in chunk:  # fmt: skip
        participant = participants[participant_id]
        server_ms = timing.server_response_ms(shown_at, received_at)
        image = items[item_id]
        prediction = predictions.get(image.pk)
        yield {
            **columns[participant_id],
            "phase": phase,
            "trial_position": position,
            "item": item_id,
            "image": str(image.public_id),
            "true_label": image.class_label.display_name,
            "answer": answer_text,
            "correct_answer": correct_answer,
            "is_correct": int(is_correct),
            "confidence": confidence,
            "client_response_ms": client_ms,
            "server_response_ms": server_ms,
            "response_ms": timing.response_ms(client_ms, server_ms),
            "client_time_inconsistent": int(
                not timing.client_time_consistent(client_ms, server_ms)
            ),
            "ai_prediction": prediction.predicted_label.display_name if prediction else "",
            "ai_confidence": round(prediction.confidence, 4) if prediction else "",
            "ai_correct": int(prediction.predicted_label_id == image.class_label_id)
            if prediction
            else "",
            "explanation": str(explanation_id) if explanation_id else "",
            "server_shown_at": shown_at.isoformat(),
            "server_received_at": received_at.isoformat(),
            "viewport": viewport,
            "stimulus_missing": int(stimulus_missing),
            "interactions": json.dumps(interactions, separators=(",", ":")),
            "study_config_hash": participant.study_config_hash,
            **_questionnaire_values(participant),
        }


def study_analysis(
    *, study: Study, include_pilot: bool = False, include_excluded: bool = False
) -> "StudyReport":
    """The study's outcome statistics over its export rows (see study.analysis).

    Raises study.analysis.AnalysisError when there is no main-phase response to analyse.
    """
    collector = study_response_collector(
        study=study, include_pilot=include_pilot, include_excluded=include_excluded
    )
    for row in study_export_rows(study=study):
        collector.add(row)
    return study_analysis_collected(study=study, collector=collector)


def study_response_collector(
    *, study: Study, include_pilot: bool = False, include_excluded: bool = False
) -> "ResponseCollector":
    """An empty collector for `study_export_rows`, set up for this study's question."""
    # Imported here: statsmodels and matplotlib take seconds to load, and only the
    # researcher's analysis needs them, never a participant's page.
    from study.analysis import ResponseCollector

    return ResponseCollector(
        n_choices=len(study_choices(study)),
        confidence_levels=CONFIDENCE_SCALE,
        question_type=study.question_type,
        include_pilot=include_pilot,
        include_excluded=include_excluded,
    )


def study_analysis_collected(*, study: Study, collector: "ResponseCollector") -> "StudyReport":
    """`study_analysis` of the export rows given to `collector`."""
    from study.analysis import analyze_collected

    condition_order = list(study.conditions.values_list("name", flat=True))
    return analyze_collected(collector, condition_order=condition_order)


@dataclass(frozen=True)
class AnalysisOptions:
    """Whose responses the analysis counts; the dashboard carries them as GET parameters."""

    include_pilot: bool
    include_excluded: bool

    @property
    def query(self) -> str:
        return urlencode({name: int(value) for name, value in vars(self).items()})

    # The dashboard's toggle links.
    @property
    def query_pilot_toggled(self) -> str:
        return replace(self, include_pilot=not self.include_pilot).query

    @property
    def query_excluded_toggled(self) -> str:
        return replace(self, include_excluded=not self.include_excluded).query


def study_analysis_options(*, study: Study, params: Mapping[str, str]) -> AnalysisOptions:
    """The options a request asks for ('1' or '0' per option), the rest at their defaults:
    pilot participants count only while the study is a pilot (they are all its data then),
    excluded participants never. Raises ValueError naming a value that is not 0 or 1."""
    defaults = {
        "include_pilot": study.status == Study.Status.PILOT,
        "include_excluded": False,
    }
    options = {}
    for name, default in defaults.items():
        value = params.get(name)
        if value is None:
            options[name] = default
        elif value in ("0", "1"):
            options[name] = value == "1"
        else:
            raise ValueError(f"{name} must be 0 or 1, not {value!r}")
    return AnalysisOptions(**options)


@dataclass(frozen=True)
class DashboardAnalysis:
    options: AnalysisOptions
    report: "StudyReport | None"
    problem: str  # why there is no report ("" when there is one)
    plots: dict[str, str]  # plot name: what it shows, for the image's alternative text


def study_dashboard_analysis(*, study: Study, options: AnalysisOptions) -> DashboardAnalysis | None:
    """The outcome statistics for the dashboard, or None while accuracy is hidden (the
    analysis shows accuracy, so it is hidden the same way)."""
    if not study_accuracy_visible(study=study):
        return None
    from study.analysis import PLOT_TITLES, AnalysisError

    try:
        report = study_analysis(study=study, **vars(options))
    except AnalysisError as error:
        return DashboardAnalysis(options=options, report=None, problem=str(error), plots={})
    return DashboardAnalysis(options=options, report=report, problem="", plots=PLOT_TITLES)


def study_analysis_plot(*, study: Study, name: str, options: AnalysisOptions) -> str | None:
    """One plot of the dashboard's analysis as an SVG document; None when there is no such
    plot, nothing to analyse, or accuracy is hidden."""
    from study.analysis import PLOT_TITLES, report_svgs

    if name not in PLOT_TITLES:
        return None
    analysis = study_dashboard_analysis(study=study, options=options)
    if analysis is None or analysis.report is None:
        return None
    return report_svgs(analysis.report)[name]


# Pages a participant only reaches after passing the comprehension check.
_PAST_COMPREHENSION = {"trials", "feedback", "questionnaire", "complete"}


def _comprehension_passed(participant: Participant, study: Study, answered: int) -> int | str:
    if not study.comprehension_questions:
        return ""
    if participant.status == Participant.Status.SCREENED_OUT:
        return 0
    if participant.page in _PAST_COMPREHENSION or answered:
        return 1
    return ""


def study_participant_rows(*, study: Study, chunk_size: int = 500) -> Iterator[dict]:
    """One dict per participant: status, timings, accuracy, checks and questionnaire."""
    main, practice, attention = (
        StudyItem.Role.MAIN,
        StudyItem.Role.TRAINING,
        StudyItem.Role.ATTENTION,
    )
    participants = (
        Participant.objects.filter(study=study)
        .select_related("condition")
        .annotate(
            practice_trials=Count("responses", filter=Q(responses__phase=practice)),
            practice_correct=Count(
                "responses", filter=Q(responses__phase=practice, responses__is_correct=True)
            ),
            main_trials=Count("responses", filter=Q(responses__phase=main)),
            main_correct=Count(
                "responses", filter=Q(responses__phase=main, responses__is_correct=True)
            ),
            attention_checks=Count("responses", filter=Q(responses__phase=attention)),
            attention_checks_failed=Count(
                "responses", filter=Q(responses__phase=attention, responses__is_correct=False)
            ),
        )
        .order_by("pk")
    )
    for participant in participants.iterator(chunk_size=chunk_size):
        times = [
            timing.response_ms(client_ms, timing.server_response_ms(shown_at, received_at))
            for client_ms, shown_at, received_at in participant.responses.filter(
                phase=main
            ).values_list("client_response_ms", "server_shown_at", "server_received_at")
        ]
        answered = participant.practice_trials + participant.main_trials
        completed_at = participant.completed_at
        yield {
            "study": study.slug,
            "participant": participant.pk,
            "platform_pseudonym": participant.platform_pseudonym,
            "condition": participant.condition.name,
            "explanation_method": participant.condition.explanation_method or "none",
            "participant_status": participant.status,
            **_exclusion_values(participant),
            "page": participant.page,
            "started_at": participant.started_at.isoformat(),
            "consented_at": participant.consented_at.isoformat()
            if participant.consented_at
            else "",
            "completed_at": completed_at.isoformat() if completed_at else "",
            "last_seen_at": participant.last_seen_at.isoformat(),
            "duration_s": round((completed_at - participant.started_at).total_seconds(), 1)
            if completed_at
            else "",
            "consent_version": participant.consent_version,
            "comprehension_attempts": participant.comprehension_attempts,
            "comprehension_passed": _comprehension_passed(participant, study, answered),
            "practice_trials": participant.practice_trials,
            "practice_correct": participant.practice_correct,
            "main_trials": participant.main_trials,
            "main_correct": participant.main_correct,
            "main_accuracy": round(participant.main_correct / participant.main_trials, 4)
            if participant.main_trials
            else "",
            "median_response_ms": round(statistics.median(times)) if times else "",
            "attention_checks": participant.attention_checks,
            "attention_checks_failed": participant.attention_checks_failed,
            "study_config_hash": participant.study_config_hash,
            **_questionnaire_values(participant),
        }


@dataclass(frozen=True)
class ConditionStatus:
    name: str
    explanation_method: str
    quota: int
    started: int
    active: int
    completed: int
    timed_out: int
    returned: int  # declined consent or screened out by the comprehension check
    excluded: int
    main_responses: int
    main_correct: int

    @property
    def accuracy(self) -> float | None:
        return self.main_correct / self.main_responses if self.main_responses else None


@dataclass(frozen=True)
class ActivityEvent:
    at: datetime
    participant: int
    condition: str
    what: str


@dataclass(frozen=True)
class StudyDashboard:
    study: Study
    pilot_view: bool  # True: the counts are of pilot participants (the study is a pilot)
    conditions: list[ConditionStatus]
    other_mode_participants: int  # pilot participants of a live study, or the reverse
    median_duration_s: float | None
    accuracy_visible: bool
    recent: list[ActivityEvent]
    problems: list[str]

    @property
    def totals(self) -> dict[str, int]:
        fields = ("started", "active", "completed", "timed_out", "returned", "excluded")
        return {field: sum(getattr(row, field) for row in self.conditions) for field in fields}


RECENT_EVENTS = 20


def study_accuracy_visible(*, study: Study) -> bool:
    """Accuracy so far is hidden while the study runs unless the researcher asks for it, so
    that no one stops or changes a study on a peek; a pilot or a closed study shows it."""
    if study.status in (Study.Status.LIVE, Study.Status.PAUSED):
        return study.show_accuracy
    return True


def study_dashboard(*, study: Study) -> StudyDashboard:
    """Live numbers for the researcher: participants by condition and status, median
    duration, accuracy so far (when visible), recent activity and launch problems."""
    pilot_view = study.status == Study.Status.PILOT
    participants = Participant.objects.filter(study=study, is_pilot=pilot_view)
    status = Participant.Status

    def counted(*statuses) -> Count:
        return Count(
            "participants",
            filter=Q(
                participants__is_pilot=pilot_view,
                **({"participants__status__in": statuses} if statuses else {}),
            ),
            distinct=True,
        )

    conditions = study.conditions.order_by("pk").annotate(
        started=counted(),
        active=counted(status.ACTIVE),
        completed=counted(status.COMPLETED),
        timed_out=counted(status.TIMED_OUT),
        returned=counted(status.DECLINED, status.SCREENED_OUT),
        excluded=Count(
            "participants",
            filter=Q(participants__is_pilot=pilot_view, participants__excluded=True),
            distinct=True,
        ),
    )
    answers = {
        row["participant__condition"]: row
        for row in Response.objects.filter(
            participant__in=participants.filter(excluded=False), phase=StudyItem.Role.MAIN
        )
        .values("participant__condition")
        .annotate(responses=Count("pk"), correct=Count("pk", filter=Q(is_correct=True)))
    }
    rows = [
        ConditionStatus(
            name=c.name,
            explanation_method=c.explanation_method or "none",
            quota=c.quota or study.participants_per_condition,
            started=c.started,
            active=c.active,
            completed=c.completed,
            timed_out=c.timed_out,
            returned=c.returned,
            excluded=c.excluded,
            main_responses=answers.get(c.pk, {}).get("responses", 0),
            main_correct=answers.get(c.pk, {}).get("correct", 0),
        )
        for c in conditions
    ]
    durations = [
        (completed_at - started_at).total_seconds()
        for started_at, completed_at in participants.filter(
            status=status.COMPLETED, completed_at__isnull=False
        ).values_list("started_at", "completed_at")
    ]
    return StudyDashboard(
        study=study,
        pilot_view=pilot_view,
        conditions=rows,
        other_mode_participants=Participant.objects.filter(
            study=study, is_pilot=not pilot_view
        ).count(),
        median_duration_s=statistics.median(durations) if durations else None,
        accuracy_visible=study_accuracy_visible(study=study),
        recent=study_recent_activity(study=study),
        problems=study_launch_problems(study=study) if study.status == Study.Status.DRAFT else [],
    )


def study_recent_activity(*, study: Study, limit: int = RECENT_EVENTS) -> list[ActivityEvent]:
    """The latest entries, answers and endings, newest first."""
    participants = Participant.objects.filter(study=study).select_related("condition")
    events = [
        ActivityEvent(p.started_at, p.pk, p.condition.name, "entered")
        for p in participants.order_by("-started_at")[:limit]
    ]
    events += [
        ActivityEvent(p.completed_at, p.pk, p.condition.name, "completed")
        for p in participants.filter(completed_at__isnull=False).order_by("-completed_at")[:limit]
    ]
    ended = participants.filter(
        status__in=[
            Participant.Status.DECLINED,
            Participant.Status.SCREENED_OUT,
            Participant.Status.TIMED_OUT,
        ]
    )
    events += [
        ActivityEvent(p.last_seen_at, p.pk, p.condition.name, p.get_status_display().lower())
        for p in ended.order_by("-last_seen_at")[:limit]
    ]
    responses = (
        Response.objects.filter(participant__study=study)
        .select_related("participant__condition")
        .order_by("-server_received_at")[:limit]
    )
    events += [
        ActivityEvent(
            r.server_received_at,
            r.participant_id,
            r.participant.condition.name,
            f"answered {r.get_phase_display().lower()} trial {r.trial_position + 1}",
        )
        for r in responses
    ]
    return sorted(events, key=lambda event: event.at, reverse=True)[:limit]
