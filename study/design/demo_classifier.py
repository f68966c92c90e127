"""The demo's classifier, shipped with the project so that a newcomer's demo does not spend
minutes of CPU training it.

`python manage.py train_demo_classifier` trains it from scratch exactly as the demo would
(`classifier_train`, seed 0, `training.DEMO_TRAINING`, on the demo's synthetic gulls) and
writes the checkpoint and a record of how it was made into `SHIPPED_DIR`. Training on the
CPU is deterministic for a seed, so the command reproduces the shipped file byte for byte
(same PyTorch version; the record names it).

The demo registers the shipped checkpoint instead of training only when its record still
holds: the checkpoint's sha256, the demo's training settings, and a fingerprint of the image
set it was trained on (each photo's path, split and sha256). Otherwise (the birds drawn
differently, other settings, a damaged file) the demo trains, as it did before, and says why.
"""

import hashlib
import json
from pathlib import Path

import torch

from explain_engine import training
from explain_engine.classifiers import sha256_file
from explain_engine.models import Classifier, ImageSet
from explain_engine.services.classifiers import classifier_register

SHIPPED_DIR = Path(__file__).resolve().parent / "demo_classifier"
CHECKPOINT = "checkpoint.pt"
RECORD = "record.json"
SEED = 0
COMMAND = "python manage.py train_demo_classifier"


def image_set_fingerprint(image_set: ImageSet) -> str:
    """sha256 over every photo's source path, split and content sha256, in source order."""
    digest = hashlib.sha256()
    rows = image_set.images.order_by("source_id").values_list("source_path", "split", "sha256")
    for source_path, split, sha256 in rows:
        digest.update(f"{source_path}\t{split}\t{sha256}\n".encode())
    return digest.hexdigest()


def _training_settings() -> dict:
    # Through JSON, so that a record read back compares equal (tuples become lists).
    return json.loads(json.dumps({**training.DEMO_TRAINING, "seed": SEED}))


def shipped_classifier_write(*, classifier: Classifier, directory: Path | None = None) -> dict:
    """Write `classifier`'s checkpoint and its record into `directory` (default
    `SHIPPED_DIR`); returns the record."""
    directory = directory or SHIPPED_DIR
    directory.mkdir(parents=True, exist_ok=True)
    with classifier.checkpoint.open("rb") as source:
        (directory / CHECKPOINT).write_bytes(source.read())
    record = {
        "sha256": classifier.checkpoint_sha256,
        "architecture": classifier.architecture,
        "input_size": classifier.input_size,
        "mean": classifier.normalization_mean,
        "std": classifier.normalization_std,
        "class_order": classifier.class_order,
        "test_accuracy": classifier.test_accuracy,
        "train_accuracy": classifier.training.get("train_accuracy"),
        "training": {key: classifier.training[key] for key in _training_settings()},
        "image_set_fingerprint": image_set_fingerprint(classifier.image_set),
        "torch": torch.__version__,
        # the kernels PyTorch picked: the same seed gives the same bytes only with the same
        # ones (an AVX2 machine and this AVX-512 one wrote different checkpoints)
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "made_by": COMMAND,
    }
    (directory / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def shipped_classifier_mismatch(*, image_set: ImageSet, directory: Path | None = None) -> str:
    """Why the shipped checkpoint cannot stand in for training on `image_set` ('' if it can)."""
    directory = directory or SHIPPED_DIR
    if not (directory / RECORD).is_file() or not (directory / CHECKPOINT).is_file():
        return f"no shipped checkpoint in {directory}"
    record = json.loads((directory / RECORD).read_text())
    if sha256_file(directory / CHECKPOINT) != record["sha256"]:
        return "the shipped checkpoint's sha256 is not the one its record names"
    if record["training"] != _training_settings():
        return "the demo's training settings changed since the checkpoint was made"
    if record["image_set_fingerprint"] != image_set_fingerprint(image_set):
        return "the synthetic gulls differ from those the checkpoint was trained on"
    return ""


def shipped_classifier_register(
    *, image_set: ImageSet, name: str, directory: Path | None = None
) -> Classifier:
    """Register the shipped checkpoint as `name` (check `shipped_classifier_mismatch` first)."""
    directory = directory or SHIPPED_DIR
    record = json.loads((directory / RECORD).read_text())
    return classifier_register(
        name=name,
        image_set=image_set,
        architecture=record["architecture"],
        checkpoint_path=directory / CHECKPOINT,
        input_size=record["input_size"],
        mean=tuple(record["mean"]),
        std=tuple(record["std"]),
        class_order=record["class_order"],
        test_accuracy=record["test_accuracy"],
        training_record={
            **record["training"],
            "train_accuracy": record["train_accuracy"],
            "shipped": f"{directory.name}/{CHECKPOINT}, made by `{record['made_by']}`",
        },
    )
