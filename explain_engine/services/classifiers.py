"""Classifiers: training and registering them, and the per-process model cache (a stored
checkpoint as a local file, loaded once on the engine's device)."""

import platform
import tempfile
import uuid
from functools import lru_cache
from pathlib import Path

import numpy as np
import PIL
import PIL.Image
import torch
import torchvision
from django.conf import settings
from django.core.files.base import File

from explain_engine import classifiers, ground_truth, training
from explain_engine.datasets.synthetic_birds import GROUND_TRUTH_FILE, read_ground_truth
from explain_engine.models import (
    Classifier,
    Image,
    ImageSet,
)
from explain_engine.services.errors import EngineInputError


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
    occlusion: float | None = None,
    mark_reveal: float = 0.0,
    progress=None,
) -> Classifier:
    """Train a classifier from scratch on the image set's train split, test it on its test
    split, and register it with its checkpoint. Settings left None are the demo's
    (`training.DEMO_TRAINING`); ``occlusion`` is the share of training images given random
    patch occlusion. ``mark_reveal`` is the share shown through one set of field marks
    (the demo passes its own); it needs the synthetic gulls' ground truth in the image set's
    source folder, and is refused without it."""
    options = dict(training.DEMO_TRAINING)
    if architecture is not None:
        options["architecture"] = architecture
    if epochs is not None:
        options["epochs"] = epochs
    if input_size is not None:
        options["input_size"] = input_size
    if occlusion is not None:
        options["occlusion"] = occlusion
    class_order = _class_order(image_set)
    index_of = {source_name: index for index, source_name in enumerate(class_order)}

    def items(split: str) -> list[tuple[Path, int]]:
        rows = (
            image_set.images.filter(split=split).select_related("class_label").order_by("source_id")
        )
        return [(Path(image.file.path), index_of[image.class_label.source_name]) for image in rows]

    train_items, test_items = items(Image.Split.TRAIN), items(Image.Split.TEST)
    if not train_items or not test_items:
        raise EngineInputError(
            f"image set {image_set.name!r} needs images in both splits "
            f"(train: {len(train_items)}, test: {len(test_items)})"
        )
    options["mark_reveal"] = mark_reveal
    mark_keeps = _mark_keeps(image_set, int(options["input_size"])) if mark_reveal else None
    if mark_reveal and mark_keeps is None:
        raise EngineInputError(
            f"mark_reveal needs the ground truth of which marks decide the class "
            f"({GROUND_TRUTH_FILE}), which image set {image_set.name!r} lacks"
        )
    result = training.train_classifier(
        train_items,
        test_items,
        num_classes=len(class_order),
        seed=seed,
        progress=progress,
        mark_keeps=mark_keeps,
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


def _mark_keeps(image_set: ImageSet, input_size: int) -> torch.Tensor | None:
    """`ground_truth.mark_set_keeps` for the train split, in its order, where the image set's
    source folder holds the synthetic gulls' ground truth; else None."""
    root = Path(image_set.source_path)
    if not (root / GROUND_TRUTH_FILE).is_file():
        return None
    source_ids = (
        image_set.images.filter(split=Image.Split.TRAIN)
        .order_by("source_id")
        .values_list("source_id", flat=True)
    )
    return ground_truth.images_mark_keeps(
        read_ground_truth(root), list(source_ids), training.OCCLUSION_GRID, input_size
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
    return local_file(
        classifier.checkpoint, f"{classifier.checkpoint_sha256}.pt", classifier.checkpoint_sha256
    )


def local_file(field_file, cache_name: str, sha256: str | None = None) -> str:
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


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
    }
