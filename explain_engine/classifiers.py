"""Image classifiers: building, preprocessing, checkpoints and batched prediction.

Pure PyTorch (no Django), so a GPU worker or a notebook can use it alone.

Architectures are torchvision's, always built with ``weights=None`` (nothing is ever
downloaded), plus ``small_cnn``, a small ResNet-style network defined here that trains in
about a minute on a 2-core CPU (see ``benchmarks/train_demo_classifier.py``).

Every supported model keeps its convolutional trunk somewhere Grad-CAM-style methods can
find it; ``small_cnn`` keeps it as ``model.features`` (an ``nn.Sequential`` whose last entry
is the last convolutional block), like torchvision's VGG and MobileNet.

Example::

    model = build_model("small_cnn", num_classes=8)
    prep = Preprocessing(input_size=128, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    batch = torch.stack([prep.to_tensor(Image.open(p)) for p in paths])
    probabilities = predict(model, batch, batch_size=64)   # (N, 8), rows sum to 1
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from PIL import Image
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from explain_engine.methods.base import model_device, scoped_model_state

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SUPPORTED_ARCHITECTURES",
    "CheckpointMismatchError",
    "Preprocessing",
    "SmallCNN",
    "build_model",
    "load_model",
    "predict",
    "sha256_file",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_TORCHVISION_ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "vgg16", "mobilenet_v3_small")

#: Architecture names accepted by ``build_model`` and ``load_model``.
SUPPORTED_ARCHITECTURES: tuple[str, ...] = ("small_cnn", *_TORCHVISION_ARCHITECTURES)


class CheckpointMismatchError(ValueError):
    """A checkpoint's state_dict does not fit the architecture it was loaded into."""


# --------------------------------------------------------------------------- models


class _ResidualBlock(nn.Module):
    """conv3x3-bn-relu-conv3x3-bn plus a (projected) shortcut, then ReLU.

    ReLUs are not in-place, so backward hooks on the block's output are safe.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SmallCNN(nn.Module):
    """A small ResNet-style classifier for CPU training (architecture name ``small_cnn``).

    ``features`` is a stem (conv3x3, stride 2) and three residual blocks (each stride 2), so
    the last feature map is input_size / 16 on a side (8x8 at 128 px) with ``widths[-1]``
    channels; then global average pooling and a linear head (``classifier``).
    ``features[-1]`` is the last convolutional block, the natural Grad-CAM target.
    About 0.3 M parameters: on the synthetic gulls, twice the width memorized the training
    images before finding the small bill spot, and trained slower.
    """

    def __init__(self, num_classes: int, widths: tuple[int, int, int, int] = (16, 32, 64, 128)):
        super().__init__()
        stem, *stages = widths
        blocks: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(3, stem, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(stem),
                nn.ReLU(),
            )
        ]
        in_channels = stem
        for out_channels in stages:
            blocks.append(_ResidualBlock(in_channels, out_channels, stride=2))
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def build_model(architecture: str, num_classes: int) -> nn.Module:
    """A freshly initialized (untrained, ``weights=None``) classifier with ``num_classes`` outputs.

    Uses the global torch RNG for initialization; seed it for a reproducible model.
    """
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture {architecture!r}; supported: "
            f"{', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if architecture == "small_cnn":
        return SmallCNN(num_classes)
    return torchvision.models.get_model(architecture, weights=None, num_classes=num_classes)


# ---------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class Preprocessing:
    """How images become model input: RGB, resized to a square, scaled to [0, 1], normalized.

    ``input_size`` is the side of the square the model is given; ``mean`` and ``std`` are
    per-channel (RGB) values on the [0, 1] scale. The demo classifier uses ImageNet's
    (``IMAGENET_MEAN``, ``IMAGENET_STD``), the usual convention for torchvision models.
    """

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if isinstance(self.input_size, bool) or not isinstance(self.input_size, int):
            raise ValueError(f"input_size must be an integer, got {self.input_size!r}")
        if self.input_size < 1:
            raise ValueError(f"input_size must be positive, got {self.input_size}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"mean and std need 3 values each, got {self.mean}, {self.std}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std values must be positive, got {self.std}")
        # Accept lists (e.g. read back from JSON) but store tuples, so instances stay hashable.
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        shape = (3, 1, 1) if like.dim() == 3 else (1, 3, 1, 1)
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device).view(shape)
        std = torch.tensor(self.std, dtype=like.dtype, device=like.device).view(shape)
        return mean, std

    @staticmethod
    def _check_image_tensor(tensor: Tensor) -> None:
        if tensor.dim() not in (3, 4) or tensor.shape[-3] != 3:
            raise ValueError(
                f"expected a (3, H, W) or (B, 3, H, W) tensor, got {tuple(tensor.shape)}"
            )

    def to_tensor(self, image: Image.Image) -> Tensor:
        """A float32 tensor (3, input_size, input_size), normalized, from a PIL image."""
        rgb = image.convert("RGB")
        pixels = TF.to_dtype(TF.pil_to_tensor(rgb), torch.float32, scale=True)
        pixels = TF.resize(
            pixels,
            [self.input_size, self.input_size],
            interpolation=TF.InterpolationMode.BILINEAR,
            antialias=True,
        )
        return self.normalize(pixels.clamp_(0.0, 1.0))

    def normalize(self, tensor: Tensor) -> Tensor:
        """(x - mean) / std for a tensor in [0, 1], shaped (3, H, W) or (B, 3, H, W)."""
        self._check_image_tensor(tensor)
        mean, std = self._stats(tensor)
        return (tensor - mean) / std

    def denormalize(self, tensor: Tensor) -> Tensor:
        """Back to [0, 1] (clamped) from normalized input, (3, H, W) or (B, 3, H, W)."""
        self._check_image_tensor(tensor)
        mean, std = self._stats(tensor)
        return (tensor * std + mean).clamp(0.0, 1.0)


# ------------------------------------------------------------------------ checkpoints


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _describe_mismatch(
    expected: Mapping[str, Tensor], found: Mapping[str, object], limit: int = 5
) -> str:
    problems = []
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    wrong_shape = [
        f"{key}: checkpoint {tuple(found[key].shape)}, model {tuple(value.shape)}"
        for key, value in expected.items()
        if key in found
        and isinstance(found[key], Tensor)
        and tuple(found[key].shape) != tuple(value.shape)
    ]
    not_tensors = [key for key in expected if key in found and not isinstance(found[key], Tensor)]
    for label, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches", wrong_shape),
        ("non-tensor values", not_tensors),
    ):
        if items:
            shown = "; ".join(items[:limit])
            more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
            problems.append(f"{len(items)} {label}: {shown}{more}")
    return ". ".join(problems)


def load_model(
    architecture: str, num_classes: int, checkpoint_path: str | os.PathLike[str]
) -> nn.Module:
    """Build ``architecture`` and load a saved ``state_dict`` into it; returned in eval mode, CPU.

    The file is read with ``torch.load(weights_only=True)``, so it must hold a plain
    state_dict (as written by ``training.save_checkpoint``), never a pickled module.
    Raises ``CheckpointMismatchError`` naming the checkpoint and what does not fit.
    """
    model = build_model(architecture, num_classes)
    state = torch.load(Path(checkpoint_path), map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise CheckpointMismatchError(
            f"Checkpoint {os.fspath(checkpoint_path)!r} does not hold a state_dict "
            f"(found {type(state).__name__})"
        )
    mismatch = _describe_mismatch(model.state_dict(), state)
    if mismatch:
        raise CheckpointMismatchError(
            f"Checkpoint {os.fspath(checkpoint_path)!r} does not fit {architecture} with "
            f"{num_classes} classes: {mismatch}"
        )
    model.load_state_dict(state)
    return model.eval()


# ------------------------------------------------------------------------- prediction


def predict(model: nn.Module, images: Tensor, *, batch_size: int) -> Tensor:
    """Softmax probabilities (N, C) on the CPU for normalized images (N, 3, H, W).

    Runs in eval mode without gradients, ``batch_size`` images at a time on the model's
    device; the model's training flags are restored afterwards. ``images`` is not modified.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("images is empty")
    device = model_device(model)
    outputs = []
    with scoped_model_state(model), torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            batch = images[start : start + batch_size].to(device)
            outputs.append(torch.softmax(model(batch).float(), dim=1).cpu())
    return torch.cat(outputs)
