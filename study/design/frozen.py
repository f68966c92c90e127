"""A launched study's frozen design, loaded once per web process.

Launch checks that every item has the model's prediction and every condition its finished
explanation, then freezes the design: its hash (`Study.config_hash`, copied onto each
participant) covers the conditions, the items and their images, labels, predictions and the
explanations each condition shows. Participant requests read all of that from a snapshot
kept here, so a trial page or an answer costs the same few queries whatever the study's
size. A snapshot is keyed by study and design hash, so it can never describe another design;
one whose study no longer has that hash (edited in the admin since) is built afresh each
time, and so is a draft's.

A participant's assignment (study, condition, trials) is fixed at entry, so the photo and
explanation requests, about two in five of a participant's requests, are authorized from a
short-lived copy of it kept here too, without a query.
"""

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from explain_engine.models import Explanation, Image, Prediction
from study.design.question_types import (
    QUESTION_TYPES,
    Choice,
    Comparison,
    comparisons_stored,
    item_correct_value,
    sag_comparisons,
)
from study.design.stimuli import GalleryEntry, explanations_for, reference_gallery_from_database
from study.models import Condition, Participant, Study, StudyItem

# A web process serves a handful of live studies; this bounds what a long-lived one keeps.
MAX_SNAPSHOTS = 32
# Assignments kept per process (about 200 bytes each), and for how long: a withdrawn
# participant's code or an admin's edit of an assignment reaches every process within this.
MAX_ASSIGNMENTS = 20_000
ASSIGNMENT_SECONDS = 300


@dataclass(frozen=True)
class FrozenStudy:
    """Model instances that every request of this process shares: read them, never change
    them, and open their files through the storage (`file.storage.open(file.name)`), since
    a field file's own `open` rewinds the one handle all requests share."""

    study: Study  # its classifier loaded
    conditions: dict[int, Condition]  # by pk, each with `study` set
    items: dict[int, StudyItem]  # by pk, each with its image
    predictions: dict[int, Prediction]  # by image id, with the predicted label
    explanations: dict[tuple[int, int], Explanation]  # by (condition id, image id)
    explanations_by_public_id: dict[str, Explanation]
    correct_answers: dict[int, str | None]  # by item id; None while a draft lacks what decides it
    choices: list[Choice]
    gallery: list[GalleryEntry]
    comparisons: dict[int, Comparison]  # by image id; empty unless the question compares
    images: dict[str, Image]  # the items' and the gallery's, by public id


@dataclass(frozen=True)
class ParticipantAssignment:
    """What a participant was given at entry and keeps: the design they entered, their
    condition and the photos of their trials."""

    frozen: FrozenStudy
    condition_id: int
    trial_image_ids: frozenset[int]
    kept_until: float  # time.monotonic()


_snapshots: OrderedDict[tuple[int, str], FrozenStudy] = OrderedDict()
_snapshots_lock = threading.Lock()
_assignments: OrderedDict[str, ParticipantAssignment] = OrderedDict()
_assignments_lock = threading.Lock()


def frozen_study(study: Study) -> FrozenStudy:
    """The snapshot of `study` as launched; of a draft, built from the database now."""
    if not study.config_hash:
        return _build(study)
    return frozen_study_by_hash(study_id=study.pk, config_hash=study.config_hash)


def frozen_study_by_hash(*, study_id: int, config_hash: str) -> FrozenStudy:
    """The snapshot of the design with `config_hash` of study `study_id`; built from the
    study's current rows if it is not kept (and kept only if they still have that hash)."""
    key = (study_id, config_hash)
    with _snapshots_lock:
        snapshot = _snapshots.get(key)
        if snapshot is not None:
            _snapshots.move_to_end(key)
            return snapshot
    study = Study.objects.select_related("classifier").get(pk=study_id)
    snapshot = _build(study)
    if config_hash and study.config_hash == config_hash:
        with _snapshots_lock:
            _snapshots[key] = snapshot
            while len(_snapshots) > MAX_SNAPSHOTS:
                _snapshots.popitem(last=False)
    return snapshot


def participant_assignment(code: str) -> ParticipantAssignment | None:
    """The assignment of the participant with `code`, or None if there is none; read from
    the database at most once every ASSIGNMENT_SECONDS per process."""
    now = time.monotonic()
    with _assignments_lock:
        assignment = _assignments.get(code)
        if assignment is not None and assignment.kept_until > now:
            _assignments.move_to_end(code)
            return assignment
    row = (
        Participant.objects.filter(code=code)
        .values_list("study_id", "study_config_hash", "condition_id", "trial_item_ids")
        .first()
    )
    if row is None:
        return None
    study_id, config_hash, condition_id, trial_item_ids = row
    frozen = frozen_study_by_hash(study_id=study_id, config_hash=config_hash)
    assignment = ParticipantAssignment(
        frozen=frozen,
        condition_id=condition_id,
        trial_image_ids=frozenset(frozen.items[pk].image_id for pk in trial_item_ids),
        kept_until=now + ASSIGNMENT_SECONDS,
    )
    with _assignments_lock:
        _assignments[code] = assignment
        _assignments.move_to_end(code)
        while len(_assignments) > MAX_ASSIGNMENTS:
            _assignments.popitem(last=False)
    return assignment


def frozen_studies_forget() -> None:
    """Drop every kept snapshot and assignment (tests reuse primary keys and codes)."""
    with _snapshots_lock:
        _snapshots.clear()
    with _assignments_lock:
        _assignments.clear()


def study_choices(study: Study) -> list[Choice]:
    """The answer choices of a study's question, as every trial offers them."""
    return frozen_study(study).choices


def _comparisons(study: Study, items) -> dict[int, Comparison]:
    """The comparative question's pair for each item's image that has one, by image id:
    those stored at launch, else (a draft) drawn now so that the larger picture is the more
    confident in about half (`sag_comparisons`)."""
    images = {item.image_id: item.image for item in items}
    comparisons = comparisons_stored(items) or sag_comparisons(
        classifier=study.classifier, items=items
    )
    for image_id, comparison in comparisons.items():
        comparison.explanation.image = images[image_id]
    return comparisons


def _build(study: Study) -> FrozenStudy:
    """The snapshot of `study` read from the database: its rows, each with what requests
    read of it attached, so no request follows a relation with a query."""
    classifier = study.classifier
    question_type = QUESTION_TYPES[study.question_type]
    conditions = {condition.pk: condition for condition in study.conditions.all()}
    for condition in conditions.values():
        condition.study = study
    items = {
        item.pk: item
        for item in StudyItem.objects.filter(study=study).select_related(
            "image", "comparison_explanation"
        )
    }
    images_by_id = {item.image_id: item.image for item in items.values()}
    predictions = _predictions(classifier, images_by_id)
    explanations = _explanations(conditions.values(), predictions, images_by_id)
    choices = question_type.choices(classifier=classifier)
    comparisons = _comparisons(study, items.values()) if question_type.needs_comparison else {}
    gallery = reference_gallery_from_database(study)
    return FrozenStudy(
        study=study,
        conditions=conditions,
        items=items,
        predictions=predictions,
        explanations=explanations,
        explanations_by_public_id={str(e.public_id): e for e in explanations.values()},
        correct_answers={
            item.pk: item_correct_value(
                question_type=question_type,
                item=item,
                choices=choices,
                prediction=predictions.get(item.image_id),
                comparison=comparisons.get(item.image_id),
            )
            for item in items.values()
        },
        choices=choices,
        gallery=gallery,
        comparisons=comparisons,
        images={
            str(image.public_id): image
            for image in [item.image for item in items.values()] + [e.image for e in gallery]
        },
    )


def _predictions(classifier, images_by_id: dict) -> dict:
    """The classifier's prediction of each item's photo, with its relations attached."""
    predictions = {
        prediction.image_id: prediction
        for prediction in Prediction.objects.select_related("predicted_label").filter(
            classifier=classifier, image_id__in=images_by_id
        )
    }
    for prediction in predictions.values():
        prediction.classifier = classifier
        prediction.image = images_by_id[prediction.image_id]
    return predictions


def _explanations(conditions, predictions: dict, images_by_id: dict) -> dict:
    """Each (condition, photo)'s finished explanation, with its photo attached."""
    explanations = {
        (condition.pk, image_id): explanation
        for condition in conditions
        for image_id, explanation in explanations_for(
            condition=condition, predictions=predictions.values()
        ).items()
    }
    for explanation in explanations.values():
        explanation.image = images_by_id[explanation.image_id]
    return explanations
