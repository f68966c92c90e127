"""Writes for the engine: importing images, registering and training classifiers,
computing predictions and explanations into records, and fitting concept models (XNN).

The PyTorch work is done by the pure core (`classifiers`, `training`, `methods`, `render`);
this module moves data between it and the database and storage.
"""

import dataclasses
import hashlib
import io
import logging
import platform
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import PIL
import PIL.Image
import torch
import torchvision
from django.conf import settings
from django.core.files.base import ContentFile, File
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from explain_engine import classifiers, render, training
from explain_engine.artifacts import ExplanationArtifacts, artifacts_for, concept_artifacts
from explain_engine.datasets.cub import display_name, read_cub
from explain_engine.methods import REGISTRY, get_method
from explain_engine.methods.xnn import XNN
from explain_engine.models import (
    Classifier,
    ClassLabel,
    ConceptModel,
    Explanation,
    Image,
    ImageSet,
    PrecomputeJob,
    Prediction,
)

logger = logging.getLogger(__name__)

STIMULUS_JPEG_QUALITY = 95
PREDICTION_TOP_K = 5


# What a damaged or unreadable image file raises when it is opened and decoded.
UNREADABLE_IMAGE_ERRORS = (PIL.UnidentifiedImageError, OSError, SyntaxError)


class EngineInputError(ValueError):
    """Input the engine cannot use (a bad path, a mismatched checkpoint); nothing was saved."""


# ---------------------------------------------------------------------------- images


def _stimulus_bytes(path: Path) -> tuple[bytes, int, int]:
    """Re-encode an image as a baseline JPEG without metadata (EXIF can hold GPS, camera
    and original file names)."""
    with PIL.Image.open(path) as source:
        source.load()
        rgb = source.convert("RGB")
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=STIMULUS_JPEG_QUALITY)
    return buffer.getvalue(), rgb.width, rgb.height


def image_set_import_cub(*, root: Path, name: str, classes: list[str] | None = None) -> ImageSet:
    """Import a CUB-200-2011-layout data set; a second import of the same set adds only what
    is missing."""
    dataset = read_cub(Path(root), classes=classes)
    image_set, _ = ImageSet.objects.get_or_create(
        name=name, defaults={"source_path": str(Path(root).resolve())}
    )
    present = {image.class_name for image in dataset.images}
    labels = {}
    with transaction.atomic():
        # Positions follow classes.txt, so importing more classes later keeps earlier ones.
        for position, source_name in enumerate(dataset.class_names):
            if source_name not in present:
                continue
            label, _ = ClassLabel.objects.get_or_create(
                image_set=image_set,
                source_name=source_name,
                defaults={"display_name": display_name(source_name), "position": position},
            )
            labels[source_name] = label

    existing = set(image_set.images.values_list("source_id", flat=True))
    for cub_image in dataset.images:
        if cub_image.image_id in existing:
            continue
        data, width, height = _stimulus_bytes(dataset.image_path(cub_image))
        image = Image(
            image_set=image_set,
            class_label=labels[cub_image.class_name],
            split=Image.Split.TRAIN if cub_image.is_train else Image.Split.TEST,
            source_id=cub_image.image_id,
            source_path=cub_image.relative_path,
            sha256=hashlib.sha256(data).hexdigest(),
            width=width,
            height=height,
            bbox=list(cub_image.bbox) if cub_image.bbox else None,
            parts={part: list(xy) for part, xy in cub_image.parts.items()},
        )
        # The name given here is discarded by the opaque upload_to; only the suffix is kept.
        image.file.save("stimulus.jpg", ContentFile(data), save=False)
        image.save()
    return image_set


# ------------------------------------------------------------------------ classifiers


def _class_order(image_set: ImageSet) -> list[str]:
    return list(image_set.classes.order_by("position").values_list("source_name", flat=True))


def classifier_train(
    *,
    image_set: ImageSet,
    name: str,
    seed: int = 0,
    architecture: str | None = None,
    epochs: int | None = None,
    input_size: int | None = None,
    progress=None,
) -> Classifier:
    """Train a classifier from scratch on the image set's train split, test it on its test
    split, and register it with its checkpoint."""
    options = dict(training.DEMO_TRAINING)
    if architecture is not None:
        options["architecture"] = architecture
    if epochs is not None:
        options["epochs"] = epochs
    if input_size is not None:
        options["input_size"] = input_size
    class_order = _class_order(image_set)
    index_of = {source_name: index for index, source_name in enumerate(class_order)}

    def items(split: str) -> list[tuple[Path, int]]:
        rows = image_set.images.filter(split=split).select_related("class_label")
        return [(Path(image.file.path), index_of[image.class_label.source_name]) for image in rows]

    train_items, test_items = items(Image.Split.TRAIN), items(Image.Split.TEST)
    if not train_items or not test_items:
        raise EngineInputError(
            f"image set {image_set.name!r} needs images in both splits "
            f"(train: {len(train_items)}, test: {len(test_items)})"
        )
    result = training.train_classifier(
        train_items,
        test_items,
        num_classes=len(class_order),
        seed=seed,
        progress=progress,
        **options,
    )
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint_path = Path(scratch) / "checkpoint.pt"
        training.save_checkpoint(result.model, checkpoint_path)
        return classifier_register(
            name=name,
            image_set=image_set,
            architecture=options["architecture"],
            checkpoint_path=checkpoint_path,
            input_size=result.preprocessing.input_size,
            mean=result.preprocessing.mean,
            std=result.preprocessing.std,
            test_accuracy=result.test_accuracy,
            training_record={
                **options,
                "seed": seed,
                "train_accuracy": result.train_accuracy,
                "seconds": result.seconds,
                "history": result.history,
            },
        )


def classifier_register(
    *,
    name: str,
    image_set: ImageSet,
    architecture: str,
    checkpoint_path: Path,
    input_size: int,
    mean: tuple[float, float, float] = classifiers.IMAGENET_MEAN,
    std: tuple[float, float, float] = classifiers.IMAGENET_STD,
    class_order: list[str] | None = None,
    test_accuracy: float | None = None,
    training_record: dict | None = None,
) -> Classifier:
    """Register an existing state_dict checkpoint, after proving it loads into the
    architecture with one output per class."""
    class_order = class_order or _class_order(image_set)
    known = set(_class_order(image_set))
    unknown = [source_name for source_name in class_order if source_name not in known]
    if unknown:
        raise EngineInputError(f"classes not in image set {image_set.name!r}: {unknown[:5]}")
    if Classifier.objects.filter(name=name).exists():
        raise EngineInputError(f"a classifier named {name!r} already exists")
    checkpoint_path = Path(checkpoint_path)
    if not checkpoint_path.is_file():
        raise EngineInputError(f"checkpoint {checkpoint_path} does not exist")
    try:
        classifiers.load_model(architecture, len(class_order), checkpoint_path)
        preprocessing = classifiers.Preprocessing(input_size=input_size, mean=mean, std=std)
    except ValueError as error:
        raise EngineInputError(str(error)) from error
    classifier = Classifier(
        name=name,
        image_set=image_set,
        architecture=architecture,
        checkpoint_sha256=classifiers.sha256_file(checkpoint_path),
        class_order=class_order,
        input_size=preprocessing.input_size,
        normalization_mean=list(preprocessing.mean),
        normalization_std=list(preprocessing.std),
        test_accuracy=test_accuracy,
        training=training_record or {},
    )
    with checkpoint_path.open("rb") as handle:
        classifier.checkpoint.save("checkpoint.pt", File(handle), save=False)
    classifier.save()
    return classifier


def engine_device() -> torch.device:
    if settings.EXPLAINSTUDY_DEVICE == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(settings.EXPLAINSTUDY_DEVICE)


@lru_cache(maxsize=4)
def _loaded_model(
    checkpoint_path: str, checkpoint_sha256: str, architecture: str, num_classes: int, device: str
) -> torch.nn.Module:
    # Keyed by the checkpoint's hash, so a worker keeps each classifier loaded across tasks.
    model = classifiers.load_model(architecture, num_classes, checkpoint_path)
    return model.to(device).eval()


def _checkpoint_local_path(classifier: Classifier) -> str:
    return _local_file(
        classifier.checkpoint, f"{classifier.checkpoint_sha256}.pt", classifier.checkpoint_sha256
    )


def _local_file(field_file, cache_name: str, sha256: str | None = None) -> str:
    """A stored file as a local path (torch needs one): itself on the local disk, else a
    copy in the worker's cache under `cache_name` (object storage has no paths), checked
    against `sha256` when given. Names are never reused, so a cached copy stays valid."""
    try:
        return field_file.path
    except NotImplementedError:
        pass
    cached = Path(settings.EXPLAINSTUDY_CHECKPOINT_CACHE) / cache_name
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{uuid.uuid4().hex}.part")
        with field_file.open("rb") as source, partial.open("wb") as target:
            for chunk in source.chunks():
                target.write(chunk)
        if sha256 is not None and classifiers.sha256_file(partial) != sha256:
            partial.unlink()
            raise EngineInputError(f"{field_file.name} does not match its sha256")
        partial.replace(cached)
    return str(cached)


def classifier_model(classifier: Classifier) -> tuple[torch.nn.Module, classifiers.Preprocessing]:
    model = _loaded_model(
        _checkpoint_local_path(classifier),
        classifier.checkpoint_sha256,
        classifier.architecture,
        len(classifier.class_order),
        str(engine_device()),
    )
    preprocessing = classifiers.Preprocessing(
        input_size=classifier.input_size,
        mean=tuple(classifier.normalization_mean),
        std=tuple(classifier.normalization_std),
    )
    return model, preprocessing


def _image_tensor(image: Image, preprocessing: classifiers.Preprocessing) -> torch.Tensor:
    with image.file.open("rb") as handle, PIL.Image.open(handle) as pil:
        return preprocessing.to_tensor(pil)


# ------------------------------------------------------------------------ predictions


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
            readable.append((image, _image_tensor(image, preprocessing)))
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


# ------------------------------------------------------------------------ explanations
#
# The pipeline: a job plans its rows (one per image and method), then batches of rows of one
# method and parameters go to workers. A worker claims its batch with a conditional update
# that gives the rows a fresh claim token, explains the images as one stacked batch, and
# stores each result with another conditional update on that token: the artifacts and the
# "done" mark land together, and only for the latest claim. A claim of a dead worker is taken
# over by the redelivered task (or, once its lease has expired, by a re-run of the job).


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
    }


def method_for(*, classifier: Classifier, slug: str, params: dict):
    """The method `slug` with `params` as it runs on `classifier`.

    Parameters that describe the classifier rather than the method (the input normalization
    that SAG's black baseline needs) are filled in from the classifier unless given, so a
    study's condition and the precomputed explanations agree on the parameter hash.
    """
    method_class = REGISTRY.get(slug)
    fields = set()
    if method_class is not None and dataclasses.is_dataclass(method_class):
        fields = {field.name for field in dataclasses.fields(method_class)}
    from_classifier = {}
    if {"pixel_mean", "pixel_std"} <= fields:
        from_classifier = {
            "pixel_mean": list(classifier.normalization_mean),
            "pixel_std": list(classifier.normalization_std),
        }
    try:
        return get_method(slug, **{**from_classifier, **params})
    except ValueError as error:
        raise EngineInputError(str(error)) from error


def precompute_job_create(
    *,
    classifier: Classifier,
    methods: list[tuple[str, dict]],
    images: list[Image],
    batch_size: int | None = None,
) -> PrecomputeJob:
    """Record what is asked; checks every method and its parameters before anything runs."""
    if not images:
        raise EngineInputError("no images to explain")
    if batch_size is None:
        batch_size = settings.EXPLAINSTUDY_BATCH_SIZE
    if batch_size < 1:
        raise EngineInputError(f"batch size must be at least 1, not {batch_size}")
    foreign = [image.pk for image in images if image.image_set_id != classifier.image_set_id]
    if foreign:
        raise EngineInputError(f"images {foreign[:5]} are not in the classifier's image set")
    resolved = []
    for slug, params in methods:
        method = method_for(classifier=classifier, slug=slug, params=params)
        resolved.append({"method": slug, "params": method.params()})
    return PrecomputeJob.objects.create(
        classifier=classifier,
        methods=resolved,
        image_ids=[image.pk for image in images],
        batch_size=batch_size,
    )


def precompute_job_plan(*, job: PrecomputeJob) -> list[int]:
    """Compute the predictions the job needs, then create its explanation rows (one per
    image and method, explaining the predicted class). Returns the ids still to compute."""
    images = list(Image.objects.filter(pk__in=job.image_ids))
    failures = predictions_compute(classifier=job.classifier, images=images)
    PrecomputeJob.objects.filter(pk=job.pk).update(image_failures=failures)
    job.image_failures = failures
    images = [image for image in images if image.pk not in failures]
    predicted = dict(
        Prediction.objects.filter(classifier=job.classifier, image__in=images).values_list(
            "image_id", "predicted_index"
        )
    )
    for spec in job.methods:
        if getattr(REGISTRY[spec["method"]], "needs_fit", False):
            # Fitted here, once, before any worker explains with it.
            concept_model_fit(classifier=job.classifier, **spec["params"])
    rows = []
    hashes = set()
    for spec in job.methods:
        method = get_method(spec["method"], **spec["params"])
        params, params_hash = method.params(), method.params_hash()
        hashes.add(params_hash)
        rows.extend(
            Explanation(
                classifier=job.classifier,
                image=image,
                method=method.slug,
                target_index=predicted[image.pk],
                params=params,
                params_hash=params_hash,
                job=job,
                checkpoint_sha256=job.classifier.checkpoint_sha256,
            )
            for image in images
        )
    # Rows that exist already (an earlier job, a rerun) are kept as they are.
    Explanation.objects.bulk_create(rows, ignore_conflicts=True)
    PrecomputeJob.objects.filter(pk=job.pk).update(
        status=PrecomputeJob.Status.RUNNING, finished_at=None, error=""
    )
    wanted = Explanation.objects.filter(classifier=job.classifier, image__in=images).exclude(
        status=Explanation.Status.DONE
    )
    return list(wanted.filter(params_hash__in=hashes).values_list("pk", flat=True))


def explanation_batches(*, explanation_ids: list[int], batch_size: int) -> list[list[int]]:
    """Split explanations into worker batches, each of one classifier, method and parameters."""
    rows = (
        Explanation.objects.filter(pk__in=explanation_ids)
        .order_by("classifier_id", "method", "params_hash", "pk")
        .values_list("pk", "classifier_id", "method", "params_hash")
    )
    groups: dict[tuple, list[int]] = {}
    for pk, *key in rows:
        groups.setdefault(tuple(key), []).append(pk)
    return [
        ids[start : start + batch_size]
        for ids in groups.values()
        for start in range(0, len(ids), batch_size)
    ]


@dataclass(frozen=True)
class ClaimedBatch:
    token: uuid.UUID
    explanation_ids: list[int]


def explanation_batch_claim(*, explanation_ids: list[int], take_over: bool) -> ClaimedBatch:
    """Take explanations for computing under a fresh claim token.

    Pending rows are always taken. A running row is taken over only when `take_over` (the
    task was redelivered or is retrying: its earlier claim is presumed lost) or when its
    claim is older than the lease. Done and failed rows are never taken.
    """
    token = uuid.uuid4()
    now = timezone.now()
    lease_expired = now - timedelta(seconds=settings.EXPLAINSTUDY_CLAIM_LEASE_SECONDS)
    abandoned = Q(status=Explanation.Status.RUNNING)
    if not take_over:
        abandoned &= Q(started_at__lt=lease_expired)
    Explanation.objects.filter(
        Q(status=Explanation.Status.PENDING) | abandoned, pk__in=explanation_ids
    ).update(
        status=Explanation.Status.RUNNING,
        claim_token=token,
        started_at=now,
        attempts=F("attempts") + 1,
    )
    claimed = Explanation.objects.filter(pk__in=explanation_ids, claim_token=token)
    return ClaimedBatch(token=token, explanation_ids=sorted(claimed.values_list("pk", flat=True)))


# Failures that will happen again on a retry: an unreadable image, a bad shape or value.
DETERMINISTIC_ERRORS = (*UNREADABLE_IMAGE_ERRORS, ValueError)


@dataclass
class _Item:
    explanation: Explanation
    stimulus: PIL.Image.Image
    tensor: torch.Tensor


def explanation_batch_compute(*, batch: ClaimedBatch) -> dict[str, int]:
    """Explain a claimed batch as one stacked tensor and store each result.

    CUDA running out of memory splits the batch in halves, down to single images; a
    deterministic error (unreadable image, bad shape or value) splits it the same way so that
    only the image that causes it fails, with the reason. Returns counts by outcome.
    """
    rows = list(
        Explanation.objects.filter(
            pk__in=batch.explanation_ids,
            claim_token=batch.token,
            status=Explanation.Status.RUNNING,
        ).select_related("classifier", "image")
    )
    outcome = {"done": 0, "failed": 0, "lost": 0}
    if not rows:
        return outcome
    classifier = rows[0].classifier
    model, preprocessing = classifier_model(classifier)
    device = engine_device()
    method, make_artifacts = _method_and_artifacts(classifier, rows[0].method, rows[0].params)
    provenance = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "library_versions": library_versions(),
        "checkpoint_sha256": classifier.checkpoint_sha256,
    }

    def fail(explanation: Explanation, reason: str) -> None:
        stored = explanation_fail(
            explanation_id=explanation.pk, claim_token=batch.token, reason=reason
        )
        outcome["failed" if stored else "lost"] += 1

    items = []
    for explanation in rows:
        try:
            with explanation.image.file.open("rb") as handle, PIL.Image.open(handle) as pil:
                stimulus = pil.convert("RGB")
            items.append(_Item(explanation, stimulus, preprocessing.to_tensor(stimulus)))
        except UNREADABLE_IMAGE_ERRORS as error:
            fail(explanation, f"{type(error).__name__}: {error}")

    def explain(group: list[_Item]) -> None:
        images = torch.stack([item.tensor for item in group])
        targets = torch.tensor([item.explanation.target_index for item in group])
        try:
            started = time.perf_counter()
            result = method.explain(model, images, targets)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - started
        except torch.cuda.OutOfMemoryError as error:
            torch.cuda.empty_cache()
            problem = f"CUDA out of memory even for one image: {error}"
        except DETERMINISTIC_ERRORS as error:
            problem = f"{type(error).__name__}: {error}"
        else:
            for index, item in enumerate(group):
                made = make_artifacts(result, index, item.stimulus)
                stored = explanation_store(
                    explanation=item.explanation,
                    artifacts=made,
                    claim_token=batch.token,
                    runtime_seconds=seconds / len(group),
                    **provenance,
                )
                outcome["done" if stored else "lost"] += 1
            return
        if len(group) == 1:
            fail(group[0].explanation, problem)
            return
        logger.info("splitting a batch of %d after %s", len(group), problem.split(":")[0])
        half = len(group) // 2
        explain(group[:half])
        explain(group[half:])

    if items:
        explain(items)
    return outcome


def _method_and_artifacts(
    classifier: Classifier, slug: str, params: dict
) -> tuple[object, Callable[[object, int, PIL.Image.Image], ExplanationArtifacts]]:
    """The method to run for a batch, and how one image of its result becomes artifacts.

    An XNN is the classifier's fitted concept model (fitted when the job was planned); its
    panels need the prototypes and class names, which live in the database.
    """
    if slug != "xnn":
        return method_for(classifier=classifier, slug=slug, params=params), artifacts_for
    concept_model = concept_model_fit(classifier=classifier, **params)
    prototypes = concept_model_prototype_tiles(concept_model)
    labels = {label.source_name: label for label in classifier.image_set.classes.all()}
    class_names = [labels[name].display_name for name in classifier.class_order]

    def concept_artifacts_for(result, index: int, stimulus: PIL.Image.Image):
        item = render.xnn_concept_item(
            result,
            index,
            stimulus,
            prototypes,
            class_names=class_names,
            prototype_ids=concept_model.prototypes,
        )
        return concept_artifacts(item, concept_model_id=concept_model.pk)

    return concept_model_load(concept_model), concept_artifacts_for


def explanation_store(
    *,
    explanation: Explanation,
    artifacts: ExplanationArtifacts,
    claim_token: uuid.UUID,
    runtime_seconds: float,
    device: str,
    library_versions: dict[str, str],
    checkpoint_sha256: str,
) -> bool:
    """Write the artifacts and mark the explanation done, if the claim is still ours.

    The files are written first under fresh opaque names; the row then points at them in
    one conditional update. If the claim was taken over meanwhile, the files are deleted and
    nothing changes: the row keeps the other claim's result.
    """
    overlay_field = Explanation._meta.get_field("overlay")
    raw_map_field = Explanation._meta.get_field("raw_map")
    overlay_name = overlay_field.storage.save(
        overlay_field.generate_filename(explanation, "figure.png"),
        ContentFile(artifacts.figure_png),
    )
    raw_map_name = raw_map_field.storage.save(
        raw_map_field.generate_filename(explanation, f"analysis.{artifacts.analysis_suffix}"),
        ContentFile(artifacts.analysis),
    )
    comparison_name = ""
    if artifacts.comparison_png:
        comparison_name = overlay_field.storage.save(
            overlay_field.generate_filename(explanation, "comparison.png"),
            ContentFile(artifacts.comparison_png),
        )
    stored = Explanation.objects.filter(
        pk=explanation.pk, claim_token=claim_token, status=Explanation.Status.RUNNING
    ).update(
        overlay=overlay_name,
        raw_map=raw_map_name,
        comparison=comparison_name,
        data=artifacts.data,
        metrics=artifacts.metrics,
        runtime_seconds=runtime_seconds,
        device=device,
        library_versions=library_versions,
        checkpoint_sha256=checkpoint_sha256,
        status=Explanation.Status.DONE,
        error="",
        finished_at=timezone.now(),
    )
    if not stored:
        for name in (overlay_name, raw_map_name, comparison_name):
            if name:
                overlay_field.storage.delete(name)
    return stored == 1


def explanation_comparison_file(*, explanation: Explanation):
    """The A/B picture of a SAG explanation's first pair, a stored file.

    Precompute stores it with the search; a search stored before that is drawn here once,
    and the first process to store it wins (a loser deletes its copy), so later requests
    only read the file.
    """
    if explanation.comparison:
        return explanation.comparison
    photo_file = explanation.image.file  # a study snapshot's, shared: a handle of its own
    with photo_file.storage.open(photo_file.name, "rb") as handle, PIL.Image.open(handle) as photo:
        figure = render.sag_pair_figure(photo.convert("RGB"), explanation.data, 0)
    buffer = io.BytesIO()
    figure.save(buffer, format="PNG")
    field = Explanation._meta.get_field("comparison")
    name = field.storage.save(
        field.generate_filename(explanation, "comparison.png"), ContentFile(buffer.getvalue())
    )
    if not Explanation.objects.filter(pk=explanation.pk, comparison="").update(comparison=name):
        field.storage.delete(name)
        name = Explanation.objects.values_list("comparison", flat=True).get(pk=explanation.pk)
    explanation.comparison = name
    return explanation.comparison


def explanation_fail(*, explanation_id: int, claim_token: uuid.UUID, reason: str) -> bool:
    """Record why a claimed explanation cannot be computed; False if the claim was lost."""
    failed = Explanation.objects.filter(
        pk=explanation_id, claim_token=claim_token, status=Explanation.Status.RUNNING
    ).update(status=Explanation.Status.FAILED, error=reason[:2000], finished_at=timezone.now())
    return failed == 1


def explanation_batch_fail(*, batch: ClaimedBatch, reason: str) -> None:
    """Fail every row of the batch still held by its claim (an unexpected error)."""
    Explanation.objects.filter(
        pk__in=batch.explanation_ids,
        claim_token=batch.token,
        status=Explanation.Status.RUNNING,
    ).update(status=Explanation.Status.FAILED, error=reason[:2000], finished_at=timezone.now())


def precompute_job_refresh(*, job: PrecomputeJob) -> PrecomputeJob:
    """Mark the job finished once none of its explanations is pending or running."""
    open_rows = job.explanations.filter(
        status__in=[Explanation.Status.PENDING, Explanation.Status.RUNNING]
    )
    job.refresh_from_db()
    if job.status == PrecomputeJob.Status.RUNNING and not open_rows.exists():
        failed = job.explanations.filter(status=Explanation.Status.FAILED).count()
        problems = []
        if job.image_failures:
            problems.append(f"{len(job.image_failures)} image(s) unreadable")
        if failed:
            problems.append(f"{failed} explanation(s) failed")
        job.status = PrecomputeJob.Status.FAILED if problems else PrecomputeJob.Status.DONE
        job.error = "; ".join(problems)
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
    return job


# ------------------------------------------------------------------------ concept models

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
            batch.append(_image_tensor(image, preprocessing))
        except UNREADABLE_IMAGE_ERRORS as error:
            unreadable[image.pk] = f"{type(error).__name__}: {error}"
            continue
        if len(batch) == batch_size:
            yield torch.stack(batch)
            batch = []
    if batch:
        yield torch.stack(batch)


def concept_model_fit(
    *,
    classifier: Classifier,
    classes: list[int] | None = None,
    progress: Callable[[dict], None] | None = None,
    **params,
) -> ConceptModel:
    """Fit an XNN on the classifier's train split and save it; fitted once per classifier,
    class subset and parameters (an existing record with the same ones is returned as is).

    Args:
        classifier: the classifier to explain; its image set gives the splits.
        classes: output indices explained together; None = all. Their order does not matter.
        progress: called with `XNN.fit_features`' progress dicts while it trains.
        params: the other `XNN` parameters (k, layer, epochs, seed, ...); their defaults
            otherwise. A study condition's stored parameters can be passed as they are.

    The faithfulness (R², arg-max agreement) is measured on the test split, which the XNN
    never sees, and the prototypes are the train images activating each concept most.

    Raises:
        EngineInputError: unknown class, bad parameter, or an image set missing a split.
    """
    num_outputs = len(classifier.class_order)
    chosen = list(range(num_outputs)) if classes is None else sorted({int(c) for c in classes})
    unknown = [c for c in chosen if not 0 <= c < num_outputs]
    if unknown or not chosen:
        raise EngineInputError(
            f"classes must be output indices of {classifier.name!r} (0..{num_outputs - 1}); "
            f"got {classes}"
        )
    try:
        xnn = get_method("xnn", **{**params, "classes": chosen})
    except ValueError as error:
        raise EngineInputError(str(error)) from error
    existing = ConceptModel.objects.filter(
        classifier=classifier, classes=chosen, params_hash=xnn.params_hash()
    ).first()
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
    batch_size = xnn.inference_batch_size
    unreadable: dict[int, str] = {}
    try:
        report = xnn.fit(
            model,
            _readable_batches(train, preprocessing, batch_size, unreadable),
            holdout=_readable_batches(test, preprocessing, batch_size, unreadable),
            progress=progress,
        )
        readable_train = [image for image in train if image.pk not in unreadable]
        order = xnn.prototypes(
            model,
            _readable_batches(readable_train, preprocessing, batch_size, unreadable),
            top_n=min(PROTOTYPES_PER_CONCEPT, len(readable_train)),
        )
    except ValueError as error:  # e.g. a layer name the model does not have
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
        prototypes=[[readable_train[i].pk for i in row] for row in order.tolist()],
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
    return _loaded_concept_model(_local_file(concept_model.file, cache_name))


@lru_cache(maxsize=8)
def _prototype_tiles(concept_model_id: int, name: str) -> tuple[tuple[PIL.Image.Image, ...], ...]:
    concept_model = ConceptModel.objects.select_related("classifier").get(pk=concept_model_id)
    xnn = concept_model_load(concept_model)
    model, preprocessing = classifier_model(concept_model.classifier)
    ids = sorted({pk for row in concept_model.prototypes for pk in row})
    by_id = Image.objects.in_bulk(ids)
    pictures = {}
    for pk in ids:
        with by_id[pk].file.open("rb") as handle, PIL.Image.open(handle) as pil:
            pictures[pk] = pil.convert("RGB")
    batch = torch.stack([preprocessing.to_tensor(pictures[pk]) for pk in ids])
    heatmaps = xnn.explain(model, batch).heatmaps.numpy()
    row_of = {pk: row for row, pk in enumerate(ids)}
    return tuple(
        tuple(
            render.heatmap_overlay(pictures[pk], heatmaps[row_of[pk], concept], legend=False)
            for pk in row
        )
        for concept, row in enumerate(concept_model.prototypes)
    )


def concept_model_prototype_tiles(concept_model: ConceptModel) -> list[list[PIL.Image.Image]]:
    """Per concept, its prototype training images with that concept's heatmap over them.

    Recomputed from the record (the heatmaps are deterministic) and cached per process.
    """
    tiles = _prototype_tiles(concept_model.pk, concept_model.file.name)
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
    return render.xnn_concept_item(
        result,
        0,
        stimulus,
        concept_model_prototype_tiles(concept_model),
        class_names=[labels[name].display_name for name in classifier.class_order],
        prototype_ids=concept_model.prototypes,
    )


def precompute_jobs_refresh(*, explanation_ids: list[int]) -> None:
    """Refresh the jobs these explanations belong to."""
    job_ids = set(
        Explanation.objects.filter(pk__in=explanation_ids, job__isnull=False).values_list(
            "job_id", flat=True
        )
    )
    for job in PrecomputeJob.objects.filter(pk__in=job_ids):
        precompute_job_refresh(job=job)


def precompute_job_retry_failed(*, job: PrecomputeJob, method: str | None = None) -> int:
    """Put the job's failed explanations (of one method, or all) back to pending and reopen
    the job; running it again then computes them and retries its unreadable images.
    Returns how many explanations were reset."""
    slugs = {spec["method"] for spec in job.methods}
    if method is not None and method not in slugs:
        raise EngineInputError(
            f"job {job.pk} has no method {method!r}; its methods: {', '.join(sorted(slugs))}"
        )
    failed = job.explanations.filter(status=Explanation.Status.FAILED)
    if method is not None:
        failed = failed.filter(method=method)
    reset = failed.update(
        status=Explanation.Status.PENDING, error="", claim_token=None, finished_at=None
    )
    PrecomputeJob.objects.filter(pk=job.pk).update(
        status=PrecomputeJob.Status.PENDING, error="", finished_at=None, sent_at=None
    )
    return reset


def precompute_job_mark_sent(*, job_id: int) -> None:
    """The broker took the job's first task: it no longer waits to be sent."""
    PrecomputeJob.objects.filter(pk=job_id, sent_at__isnull=True).update(sent_at=timezone.now())
