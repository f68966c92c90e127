"""Concept models (fitted XNNs): fitting one, getting a fitted one, loading it, its
prototype tiles, and explaining one image with it."""

import dataclasses
import io
from collections.abc import Callable, Iterator
from functools import lru_cache

import PIL
import PIL.Image
import torch
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from explain_engine import classifiers, render
from explain_engine.methods import get_method
from explain_engine.methods.xnn import XNN
from explain_engine.models import (
    Classifier,
    ConceptModel,
    Image,
)
from explain_engine.services.classifiers import (
    classifier_model,
    engine_device,
    library_versions,
    local_file,
)
from explain_engine.services.errors import EngineInputError
from explain_engine.services.images import UNREADABLE_IMAGE_ERRORS, image_tensor

#: Prototype images kept per concept (the panel shows them all).
PROTOTYPES_PER_CONCEPT = 3


def _readable_batches(
    images: list[Image],
    preprocessing: classifiers.Preprocessing,
    batch_size: int,
    unreadable: dict[int, str],
) -> Iterator[torch.Tensor]:
    """The images as (b, 3, H, W) batches, read one batch at a time; an image that cannot be
    read is left out and noted in `unreadable` (id -> reason)."""
    batch: list[torch.Tensor] = []
    for image in images:
        try:
            batch.append(image_tensor(image, preprocessing))
        except UNREADABLE_IMAGE_ERRORS as error:
            unreadable[image.pk] = f"{type(error).__name__}: {error}"
            continue
        if len(batch) == batch_size:
            yield torch.stack(batch)
            batch = []
    if batch:
        yield torch.stack(batch)


def _concept_method(classifier: Classifier, classes: list[int] | None, params: dict):
    """The explained output indices (sorted; None = all) and the XNN with `params` for them."""
    num_outputs = len(classifier.class_order)
    chosen = list(range(num_outputs)) if classes is None else sorted({int(c) for c in classes})
    unknown = [c for c in chosen if not 0 <= c < num_outputs]
    if unknown or not chosen:
        raise EngineInputError(
            f"classes must be output indices of {classifier.name!r} (0..{num_outputs - 1}); "
            f"got {classes}"
        )
    try:
        return chosen, get_method("xnn", **{**params, "classes": chosen})
    except ValueError as error:
        raise EngineInputError(str(error)) from error


def _stored(classifier: Classifier, chosen: list[int], xnn: XNN) -> ConceptModel | None:
    return ConceptModel.objects.filter(
        classifier=classifier, classes=chosen, params_hash=xnn.params_hash()
    ).first()


def concept_model_fitted(
    *, classifier: Classifier, classes: list[int] | None = None, **params
) -> ConceptModel:
    """The concept model fitted for these classes and parameters (as `concept_model_fit`
    takes them), without fitting one.

    Raises:
        EngineInputError: none is fitted (a precompute job's fit step or `fit_xnn` fits it),
            or the classes or parameters are bad.
    """
    chosen, xnn = _concept_method(classifier, classes, params)
    concept_model = _stored(classifier, chosen, xnn)
    if concept_model is None:
        raise EngineInputError(
            f"no concept model of {classifier.name!r} is fitted for classes {chosen} and "
            "these parameters; its precompute job (or fit_xnn) fits it"
        )
    return concept_model


def concept_model_fit(
    *,
    classifier: Classifier,
    classes: list[int] | None = None,
    progress: Callable[[dict], None] | None = None,
    accept_weak_fit: bool = False,
    **params,
) -> ConceptModel:
    """Fit an XNN on the classifier's train split and save it; fitted once per classifier,
    class subset and parameters (an existing record with the same ones is returned as is).

    Args:
        classifier: the classifier to explain; its image set gives the splits.
        classes: output indices explained together; None = all. Their order does not matter.
        progress: called with `XNN.fit_features`' progress dicts while it trains.
        accept_weak_fit: keep a fit that fails XNN's success rule or R² bar (recorded on
            the record as ``accepted_weak_fit``); otherwise it is refused.
        params: the other `XNN` parameters (k, layer, epochs, seed, ...); their defaults
            otherwise. A study condition's stored parameters can be passed as they are.

    The faithfulness (R², arg-max agreement) is measured on the test split, which the XNN
    never sees, and the prototypes are the train images activating each concept most.

    Raises:
        EngineInputError: unknown class, bad parameter, an image set missing a split, or a
            weak fit refused (the message names the success rule and the R²).
    """
    chosen, xnn = _concept_method(classifier, classes, params)
    existing = _stored(classifier, chosen, xnn)
    if existing is not None:
        return existing

    images = classifier.image_set.images.order_by("pk")
    train = list(images.filter(split=Image.Split.TRAIN))
    test = list(images.filter(split=Image.Split.TEST))
    if len(train) < 2 or not test:
        raise EngineInputError(
            f"image set {classifier.image_set.name!r} needs train and test images to fit a "
            f"concept model (train: {len(train)}, test: {len(test)})"
        )
    model, preprocessing = classifier_model(classifier)
    device = engine_device()
    batch_size = xnn.batch_size
    unreadable: dict[int, str] = {}
    try:
        report = xnn.fit(
            model,
            _readable_batches(train, preprocessing, batch_size, unreadable),
            holdout=_readable_batches(test, preprocessing, batch_size, unreadable),
            progress=progress,
            accept_weak_fit=accept_weak_fit,
        )
        readable_train = [image for image in train if image.pk not in unreadable]
        order = xnn.prototypes(
            model,
            _readable_batches(readable_train, preprocessing, batch_size, unreadable),
            top_n=min(PROTOTYPES_PER_CONCEPT, len(readable_train)),
        )
    except ValueError as error:  # a weak fit refused, a layer name the model does not have
        raise EngineInputError(str(error)) from error

    concept_model = ConceptModel(
        classifier=classifier,
        classes=chosen,
        k=xnn.k,
        layer=report.layer,
        params=xnn.params(),
        params_hash=xnn.params_hash(),
        r2=report.holdout_r2,
        argmax_agreement=report.holdout_agreement,
        fit_report={
            **dataclasses.asdict(report),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "train_images": len(readable_train),
            "test_images": len(test) - sum(image.pk in unreadable for image in test),
            "unreadable_images": {str(pk): reason for pk, reason in unreadable.items()},
            "library_versions": library_versions(),
        },
        prototypes=[
            [[readable_train[i].pk for i in row] for row in per_model]
            for per_model in order.tolist()
        ],
        accepted_weak_fit=report.accepted_weak_fit,
        diversity=report.diversity,
    )
    state = io.BytesIO()
    torch.save(xnn.state_dict(), state)
    concept_model.file.save("concept_model.pt", ContentFile(state.getvalue()), save=False)
    try:
        with transaction.atomic():
            concept_model.save()
    except IntegrityError:
        # Another worker fitted the same one meanwhile: keep theirs, drop our file.
        concept_model.file.delete(save=False)
        return ConceptModel.objects.get(
            classifier=classifier, classes=chosen, params_hash=concept_model.params_hash
        )
    return concept_model


@lru_cache(maxsize=8)
def _loaded_concept_model(path: str) -> XNN:
    # Keyed by the file's opaque (never reused) name, so a worker reads each one once.
    return XNN.load(path)


def concept_model_load(concept_model: ConceptModel) -> XNN:
    """The fitted XNN of a record (cached per process; treat it as read-only)."""
    cache_name = f"concept-model-{concept_model.pk}-{concept_model.params_hash}.pt"
    return _loaded_concept_model(local_file(concept_model.file, cache_name))


@lru_cache(maxsize=8)
def _prototype_tiles(
    concept_model_id: int, name: str, column: int
) -> tuple[tuple[PIL.Image.Image, ...], ...]:
    concept_model = ConceptModel.objects.select_related("classifier").get(pk=concept_model_id)
    xnn = concept_model_load(concept_model)
    model, preprocessing = classifier_model(concept_model.classifier)
    rows = concept_model.prototype_ids(column)
    ids = sorted({pk for row in rows for pk in row})
    by_id = Image.objects.in_bulk(ids)
    pictures = {}
    for pk in ids:
        with by_id[pk].file.open("rb") as handle, PIL.Image.open(handle) as pil:
            pictures[pk] = pil.convert("RGB")
    batch = torch.stack([preprocessing.to_tensor(pictures[pk]) for pk in ids])
    # the concepts of explained class `column` (its own SRAE's in per-class mode)
    targets = torch.full((len(ids),), concept_model.classes[column], dtype=torch.long)
    heatmaps = xnn.explain(model, batch, targets).heatmaps.numpy()
    row_of = {pk: row for row, pk in enumerate(ids)}
    return tuple(
        tuple(
            render.heatmap_overlay(pictures[pk], heatmaps[row_of[pk], concept], legend=False)
            for pk in row
        )
        for concept, row in enumerate(rows)
    )


def concept_model_prototype_tiles(
    concept_model: ConceptModel, column: int = 0
) -> list[list[PIL.Image.Image]]:
    """Per concept shown for explained class `column` (an index into ``classes``), its
    prototype training images with that concept's heatmap over them.

    Recomputed from the record (the heatmaps are deterministic) and cached per process.
    """
    tiles = _prototype_tiles(concept_model.pk, concept_model.file.name, column)
    return [list(row) for row in tiles]


def concept_model_explain(
    *, concept_model: ConceptModel, image: Image, target_index: int | None = None
) -> render.ConceptItem:
    """One image explained by a concept model: its panel PNG, data and concept maps.

    `target_index` is the output index whose score the panel breaks down (one of the
    explained classes); None = the classifier's arg-max over the explained classes.
    """
    classifier = concept_model.classifier
    if target_index is not None and target_index not in concept_model.classes:
        raise EngineInputError(
            f"class {target_index} is not explained by this concept model "
            f"(classes {concept_model.classes})"
        )
    xnn = concept_model_load(concept_model)
    model, preprocessing = classifier_model(classifier)
    with image.file.open("rb") as handle, PIL.Image.open(handle) as pil:
        stimulus = pil.convert("RGB")
    targets = None if target_index is None else torch.tensor([target_index])
    result = xnn.explain(model, preprocessing.to_tensor(stimulus).unsqueeze(0), targets)
    labels = {label.source_name: label for label in classifier.image_set.classes.all()}
    column = int(result.targets[0])
    return render.xnn_concept_item(
        result,
        0,
        stimulus,
        concept_model_prototype_tiles(concept_model, column),
        class_names=[labels[name].display_name for name in classifier.class_order],
        prototype_ids=concept_model.prototype_ids(column),
    )
