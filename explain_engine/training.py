"""Training a classifier on a small labelled image set, and saving its checkpoint.

Pure PyTorch (no Django). The sets this is meant for are small (a few hundred images), so
every image is decoded once, resized, normalized and kept in memory as one tensor; each
epoch then augments the cached tensors (train split only): a mild random resized crop and a
horizontal flip, no colour changes (colour is what tells the gull species apart), then
random patch occlusion (`occlude`): a share ``occlusion`` of the images has a random set of
cells of a 7 x 7 grid replaced, half of them by black (the canvas SAG reveals patches on)
and half by the heavy blur I-GOS deletes to, composited exactly as those methods composite
their masks. Partial views are then in the training distribution, so an explanation that
hides or reveals patches asks the model about images like those it learned from. Where the
images carry ground truth of which sets of marks decide the class (the synthetic gulls), a
share ``mark_reveal`` is first shown only through one such set (`reveal_mark_sets`).

Deterministic for a given seed on the CPU: the model is initialized from ``seed`` and
shuffling and augmentation draw from their own ``torch.Generator``; the caller's global RNG
state is saved and restored. (On CUDA some kernels are not deterministic.)

Example::

    keeps = ground_truth.train_mark_keeps(dataset, truth, OCCLUSION_GRID, 128)
    result = train_classifier(
        train, test, num_classes=8, seed=0, mark_keeps=keeps, **DEMO_TRAINING
    )
    sha256 = save_checkpoint(result.model, media / "classifier.pt")
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn
from torch.nn import functional as F

from explain_engine.classifiers import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocessing,
    build_model,
    predict,
    sha256_file,
)
from explain_engine.methods.baselines import blur_baseline
from explain_engine.methods.masking import composite

__all__ = [
    "DEFAULT_LEARNING_RATE",
    "DEFAULT_OCCLUSION",
    "DEMO_TRAINING",
    "OCCLUSION_GRID",
    "OcclusionPlan",
    "TrainingResult",
    "occlude",
    "occlusion_plan",
    "reveal_mark_sets",
    "save_checkpoint",
    "train_classifier",
]

DEFAULT_LEARNING_RATE = 3e-3
#: Share of training images that get random patch occlusion (`occlude`), in the demo too.
DEFAULT_OCCLUSION = 0.5
#: Occlusion cells per side: SAG's 7 x 7 patch grid.
OCCLUSION_GRID = 7
#: Range of the share of cells an occluded image has hidden (drawn per image), wide so that
#: both SAG's few revealed patches and I-GOS's few deleted ones occur.
OCCLUDED_SHARE = (0.1, 0.95)

#: Share of the demo's training images shown only through one set of field marks
#: (``mark_reveal``): with it the demo classifier decides from either set alone, so SAG finds
#: both (``benchmarks/mark_sets.py``, ``benchmarks/ground_truth.py``).
DEMO_MARK_REVEAL = 0.8

#: Settings for the embedded demo, chosen with ``benchmarks/train_demo_classifier.py`` and
#: ``benchmarks/mark_sets.py`` on the synthetic gulls (8 classes x 60 images plus 2 distant
#: test photos each, 336 train / 160 test), seed 0: all 144 ordinary test photos right and
#: 6 of the 16 distant ones, in 2 min 6 s on a 2-core CPU (README, demo section).
DEMO_TRAINING: dict[str, object] = dict(
    architecture="small_cnn",
    input_size=128,
    epochs=90,
    batch_size=32,
    learning_rate=DEFAULT_LEARNING_RATE,
    occlusion=DEFAULT_OCCLUSION,
    mark_reveal=DEMO_MARK_REVEAL,
)

# Augmentation: area kept and aspect ratio of the random crop (mild, so the small parts
# that distinguish the species are rarely cut off).
CROP_SCALE = (0.7, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
WEIGHT_DECAY = 5e-4
LABEL_SMOOTHING = 0.1


@dataclass
class TrainingResult:
    """A trained model (eval mode, on the CPU) and how it got there.

    ``history`` has one entry per epoch: ``epoch`` (1-based), ``loss`` (mean training loss),
    ``accuracy`` (on the augmented training batches, model in training mode),
    ``learning_rate`` (at the epoch's end) and ``seconds``. ``train_accuracy`` and
    ``test_accuracy`` are measured after training, in eval mode, on unaugmented images.
    """

    model: nn.Module
    preprocessing: Preprocessing
    test_accuracy: float
    train_accuracy: float
    history: list[dict] = field(default_factory=list)
    architecture: str = ""
    seconds: float = 0.0


def _load_images(items: Sequence[tuple[Path, int]], preprocessing: Preprocessing) -> Tensor:
    tensors = []
    for path, _label in items:
        with Image.open(path) as image:
            tensors.append(preprocessing.to_tensor(image))
    return torch.stack(tensors)


def _labels(items: Sequence[tuple[Path, int]], num_classes: int, split: str) -> Tensor:
    labels = torch.tensor([label for _path, label in items], dtype=torch.long)
    bad = [(str(p), lab) for p, lab in items if not 0 <= lab < num_classes]
    if bad:
        raise ValueError(
            f"{split} labels must be in [0, {num_classes}); {len(bad)} are not, e.g. {bad[0]}"
        )
    return labels


def _augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """Random resized crop (same output size) and horizontal flip, drawn from ``generator``.

    One ``grid_sample`` call for the whole batch: each output pixel is bilinearly sampled
    from a crop window covering ``CROP_SCALE`` of the image area with an aspect ratio in
    ``CROP_RATIO``, mirrored with probability 1/2.
    """
    n = images.shape[0]
    area = torch.empty(n).uniform_(*CROP_SCALE, generator=generator)
    log_ratio = torch.empty(n).uniform_(
        math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), generator=generator
    )
    ratio = torch.exp(log_ratio)
    width = torch.sqrt(area * ratio).clamp(max=1.0)
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    # Window centre, in grid_sample's [-1, 1] coordinates, keeping the window inside.
    centre_x = (torch.rand(n, generator=generator) * 2 - 1) * (1 - width)
    centre_y = (torch.rand(n, generator=generator) * 2 - 1) * (1 - height)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = width * flip
    theta[:, 0, 2] = centre_x
    theta[:, 1, 1] = height
    theta[:, 1, 2] = centre_y
    theta = theta.to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass(frozen=True)
class OcclusionPlan:
    """Which cells of which images `occlude` hides, and with what.

    ``keep``: (N, 1, grid, grid), 1 = the image shows, 0 = the cell is hidden (all ones for
    an image left whole). ``blurred``: (N,) bool, True = hidden cells show the blurred image,
    False = black.
    """

    keep: Tensor
    blurred: Tensor


def occlusion_plan(
    n: int, generator: torch.Generator, *, probability: float, grid: int = OCCLUSION_GRID
) -> OcclusionPlan:
    """Draw an `OcclusionPlan` for `n` images: each image is occluded with `probability`;
    an occluded one hides each cell with a share drawn from ``OCCLUDED_SHARE``, and is black
    or blurred with even odds. The draws do not depend on `probability`'s value."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"occlusion probability must lie in [0, 1], got {probability!r}")
    occluded = torch.rand(n, generator=generator) < probability
    blurred = torch.rand(n, generator=generator) < 0.5
    share = torch.empty(n).uniform_(*OCCLUDED_SHARE, generator=generator)
    hidden = torch.rand(n, grid * grid, generator=generator) < share[:, None]
    keep = (~(hidden & occluded[:, None])).float().view(n, 1, grid, grid)
    return OcclusionPlan(keep=keep, blurred=blurred & occluded)


def occlude(images: Tensor, plan: OcclusionPlan, black: Tensor) -> Tensor:
    """Apply `plan` to normalized `images` (N, 3, H, W): hidden cells become `black` (the
    normalized black pixel, (3,)) or I-GOS's blur baseline, through the same bilinear
    upsampling and compositing (`masking.composite`) that SAG and I-GOS use."""
    baseline = black.view(1, 3, 1, 1).to(images).expand_as(images)
    blurred = plan.blurred.to(images.device)
    if blurred.any():
        baseline = baseline.clone()
        baseline[blurred] = blur_baseline(images[blurred])
    return composite(images, baseline, plan.keep.to(images))


def reveal_mark_sets(
    images: Tensor,
    keeps: Tensor,
    black: Tensor,
    generator: torch.Generator,
    *,
    probability: float,
) -> tuple[Tensor, Tensor]:
    """Show each of the normalized `images` (N, 3, H, W) with `probability` only through one
    of its keep masks `keeps` (N, sets, grid, grid), drawn at random, on `black` (the
    normalized black pixel, (3,)), through the bilinear upsampling SAG reveals with
    (`masking.composite`). Returns the images and which were revealed (N,). The draws do not
    depend on `probability`'s value."""
    n = images.shape[0]
    revealed = torch.rand(n, generator=generator) < probability
    chosen = torch.randint(0, keeps.shape[1], (n,), generator=generator)
    if not revealed.any():
        return images, revealed
    keep = torch.ones(n, 1, *keeps.shape[2:])
    keep[revealed] = keeps[revealed, chosen[revealed]].unsqueeze(1)
    baseline = black.view(1, 3, 1, 1).to(images).expand_as(images)
    return composite(images, baseline, keep.to(images)), revealed


def _batches(order: Tensor, batch_size: int) -> list[Tensor]:
    batches = list(torch.split(order, batch_size))
    # BatchNorm cannot train on a batch of one image: fold it into the previous batch.
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def _accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int) -> float:
    probabilities = predict(model, images, batch_size=batch_size)
    return (probabilities.argmax(dim=1) == labels).float().mean().item()


def _resolve_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def train_classifier(
    train_items: list[tuple[Path, int]],
    test_items: list[tuple[Path, int]],
    *,
    architecture: str,
    num_classes: int,
    input_size: int,
    epochs: int,
    seed: int,
    batch_size: int = 32,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    occlusion: float = DEFAULT_OCCLUSION,
    mark_reveal: float = 0.0,
    mark_keeps: Tensor | None = None,
    device: str | None = None,
    progress: Callable[[dict], None] | None = None,
) -> TrainingResult:
    """Train ``architecture`` from scratch (``weights=None``) on ``train_items``.

    Items are ``(image path, class index)``. AdamW with a one-cycle learning-rate schedule
    peaking at ``learning_rate``, label-smoothed cross-entropy, preprocessing with
    ImageNet's mean and std at ``input_size``; ``occlusion`` is the share of augmented
    training images given random patch occlusion (0 turns it off; see `occlude`).
    ``mark_reveal`` is the share of training images that show, on black, only the cells of
    one sufficient set of field marks, drawn at random (``mark_keeps[i, s]``, the keep mask
    of set s on train image i, from `ground_truth.mark_set_keeps`), before the crop and flip
    and instead of the random occlusion: so that the classifier decides from either set
    alone, as the data's ground truth says it can (see `reveal_mark_sets`).
    ``progress`` is called after every epoch with
    that epoch's history entry plus ``epochs`` (the total). ``device`` defaults to CUDA when
    present, else the CPU; the returned model is on the CPU in eval mode.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
    if isinstance(occlusion, bool) or not isinstance(occlusion, int | float):
        raise ValueError(f"occlusion must be a number in [0, 1], got {occlusion!r}")
    if not 0.0 <= occlusion <= 1.0:
        raise ValueError(f"occlusion must be a number in [0, 1], got {occlusion!r}")
    if isinstance(mark_reveal, bool) or not 0.0 <= mark_reveal <= 1.0:
        raise ValueError(f"mark_reveal must be a number in [0, 1], got {mark_reveal!r}")
    if mark_reveal and mark_keeps is None:
        raise ValueError("mark_reveal needs mark_keeps, the cells of each set of field marks")
    if mark_keeps is not None and (
        mark_keeps.dim() != 4 or mark_keeps.shape[0] != len(train_items)
    ):
        raise ValueError(
            f"mark_keeps must be (train images, sets, grid, grid) with {len(train_items)} "
            f"train images, got shape {tuple(mark_keeps.shape)}"
        )
    if len(train_items) < 2:
        raise ValueError(f"need at least 2 training images, got {len(train_items)}")
    if not test_items:
        raise ValueError("test_items is empty")
    started = time.perf_counter()
    preprocessing = Preprocessing(input_size=input_size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    black = (0.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    train_labels = _labels(train_items, num_classes, "train")
    test_labels = _labels(test_items, num_classes, "test")
    target = _resolve_device(device)

    fork_devices = []
    if target.type == "cuda":
        fork_devices = [torch.cuda.current_device() if target.index is None else target.index]
    with torch.random.fork_rng(devices=fork_devices):
        torch.default_generator.manual_seed(seed)
        if target.type == "cuda":
            with torch.cuda.device(target):
                torch.cuda.manual_seed(seed)
        model = build_model(architecture, num_classes).to(target)
        generator = torch.Generator().manual_seed(seed)

        train_images = _load_images(train_items, preprocessing)
        test_images = _load_images(test_items, preprocessing)
        train_on_device = train_images.to(target)
        train_labels_on_device = train_labels.to(target)

        steps_per_epoch = len(_batches(torch.arange(len(train_items)), batch_size))
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=learning_rate, weight_decay=WEIGHT_DECAY
        )
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=learning_rate, total_steps=epochs * steps_per_epoch
        )
        loss_fn = nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)

        history: list[dict] = []
        model.train()
        for epoch in range(1, epochs + 1):
            epoch_started = time.perf_counter()
            total_loss, correct = 0.0, 0
            order = torch.randperm(len(train_items), generator=generator)
            for indices in _batches(order, batch_size):
                on_device = indices.to(target)
                images = train_on_device[on_device]
                revealed = torch.zeros(len(indices), dtype=torch.bool)
                if mark_keeps is not None:
                    images, revealed = reveal_mark_sets(
                        images, mark_keeps[indices], black, generator, probability=mark_reveal
                    )
                images = _augment(images, generator)
                plan = occlusion_plan(len(indices), generator, probability=occlusion)
                plan.keep[revealed] = 1.0
                plan.blurred[revealed] = False
                images = occlude(images, plan, black)
                labels = train_labels_on_device[on_device]
                logits = model(images)
                loss = loss_fn(logits, labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total_loss += loss.item() * len(indices)
                correct += (logits.argmax(dim=1) == labels).sum().item()
            entry = {
                "epoch": epoch,
                "loss": total_loss / len(train_items),
                "accuracy": correct / len(train_items),
                "learning_rate": schedule.get_last_lr()[0],
                "seconds": time.perf_counter() - epoch_started,
            }
            history.append(entry)
            if progress is not None:
                progress({**entry, "epochs": epochs})

        model.eval()
        train_accuracy = _accuracy(model, train_images, train_labels, batch_size)
        test_accuracy = _accuracy(model, test_images, test_labels, batch_size)

    return TrainingResult(
        model=model.cpu().eval(),
        preprocessing=preprocessing,
        test_accuracy=test_accuracy,
        train_accuracy=train_accuracy,
        history=history,
        architecture=architecture,
        seconds=time.perf_counter() - started,
    )


def save_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> str:
    """Save ``model.state_dict()`` to ``path`` (atomically) and return the file's sha256.

    Load it back with ``classifiers.load_model(architecture, num_classes, path)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(model.state_dict(), stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return sha256_file(path)
