"""What a study shows, read from the database: the explanation a condition shows for an
image, and the reference gallery of labelled examples. The frozen snapshot keeps both."""

from collections.abc import Iterable
from dataclasses import dataclass

from explain_engine.models import Explanation, Image, Prediction
from study.models import Condition, Study


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
class GalleryEntry:
    label_text: str
    image: Image


def reference_gallery_from_database(study: Study) -> list[GalleryEntry]:
    """One labelled example per class, from the train split, never a study item: the
    species-identification task is learnable without giving trials away. Read from the
    database (for the study's snapshot; participants read the snapshot's copy)."""
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
