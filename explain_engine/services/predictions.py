"""Predictions: the classifier's top classes for each image, stored once."""

import torch

from explain_engine import classifiers
from explain_engine.models import (
    Classifier,
    Image,
    Prediction,
)
from explain_engine.services.classifiers import classifier_model
from explain_engine.services.images import UNREADABLE_IMAGE_ERRORS, image_tensor

PREDICTION_TOP_K = 5


def predictions_compute(
    *, classifier: Classifier, images: list[Image], batch_size: int = 32
) -> dict[int, str]:
    """Store the classifier's prediction for each image that has none.

    Returns the images that could not be read, id -> reason; the others are predicted.
    """
    done = set(
        Prediction.objects.filter(classifier=classifier, image__in=images).values_list(
            "image_id", flat=True
        )
    )
    todo = [image for image in images if image.pk not in done]
    if not todo:
        return {}
    model, preprocessing = classifier_model(classifier)
    labels = {label.source_name: label for label in classifier.image_set.classes.all()}
    ordered_labels = [labels[source_name] for source_name in classifier.class_order]
    failures: dict[int, str] = {}
    readable: list[tuple[Image, torch.Tensor]] = []
    for image in todo:
        try:
            readable.append((image, image_tensor(image, preprocessing)))
        except UNREADABLE_IMAGE_ERRORS as error:
            failures[image.pk] = f"{type(error).__name__}: {error}"
    for start in range(0, len(readable), batch_size):
        chunk = readable[start : start + batch_size]
        batch = torch.stack([tensor for _, tensor in chunk])
        probabilities = classifiers.predict(model, batch, batch_size=batch_size)
        top = probabilities.topk(min(PREDICTION_TOP_K, probabilities.shape[1]), dim=1)
        Prediction.objects.bulk_create(
            [
                Prediction(
                    classifier=classifier,
                    image=image,
                    predicted_index=int(indices[0]),
                    predicted_label=ordered_labels[int(indices[0])],
                    confidence=float(values[0]),
                    top_k=[
                        {"index": int(i), "probability": round(float(p), 6)}
                        for i, p in zip(indices, values, strict=True)
                    ],
                )
                for (image, _), values, indices in zip(chunk, top.values, top.indices, strict=True)
            ],
            ignore_conflicts=True,
        )
    return failures
