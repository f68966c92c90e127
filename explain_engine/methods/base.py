"""The parameter machinery of every method and the pipeline shared by every heatmap method.

`ExplanationMethod` holds what every method shares: keyword parameters as frozen dataclass
fields, validated at construction, with `params()` and `params_hash()` for provenance.
`SaliencyMethod.explain` owns everything that is not the method itself: argument checks,
device placement, scoped model state (eval mode, ``requires_grad`` flags, hooks, gradients),
the default target (the class predicted on the original image), its softmax score, batching,
per-image min-max normalization and packaging into a `SaliencyResult`. A method subclass
declares its parameters as dataclass fields and overrides `_attribute` (and, when it needs
per-call set-up such as resolving a layer, `_prepare`).

This module is pure PyTorch: it must never import Django.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

__all__ = [
    "ExplanationMethod",
    "SaliencyMethod",
    "SaliencyResult",
    "check_inputs",
    "model_device",
    "normalize_per_image",
    "params_hash",
    "resolve_targets",
    "scoped_model_state",
]


@dataclasses.dataclass
class SaliencyResult:
    """What `SaliencyMethod.explain` returns; every tensor is on the CPU.

    Attributes:
        saliency: (B, H, W) float32 in [0, 1], 1 = most important, per-image min-max
            normalized (an all-constant map becomes all zeros).
        targets: (B,) int64, the classes explained.
        scores: (B,) float32, the softmax probability of each target on the original image.
        extras: method-specific data (for example Grad-CAM's ``raw_cam`` and the resolved
            ``target_layer``); batched tensors have the batch as their first dimension.
    """

    saliency: Tensor
    targets: Tensor
    scores: Tensor
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExplanationMethod:
    """Parameters of any explanation method: construct with keywords, then `explain`.

    Subclasses are frozen keyword-only dataclasses: each field is a parameter with its
    default, `params()` returns them all, and `_check_params` validates them at
    construction. ``batch_size`` bounds the number of images in any one forward pass.
    """

    slug: ClassVar[str]
    #: A saliency method explains straight away; XNN (`needs_fit = True`) is fitted first.
    needs_fit: ClassVar[bool] = False

    batch_size: int = 32

    # ------------------------------------------------------------------ parameters

    def __post_init__(self) -> None:
        require_int(self.batch_size, "batch_size", minimum=1)
        self._check_params()

    def _check_params(self) -> None:  # noqa: B027 (optional hook, empty by default)
        """Validate method-specific parameters; raise ValueError. Override as needed."""

    def params(self) -> dict[str, Any]:
        """All parameters, defaults included, as a JSON-serializable dict."""
        return dataclasses.asdict(self)

    def params_hash(self) -> str:
        """sha256 of the slug and `params()` as canonical JSON (for provenance)."""
        return params_hash(self.slug, self.params())

    def _logits(self, model: nn.Module, images: Tensor) -> Tensor:
        """Logits of the original images, without gradient, in chunks of ``batch_size``."""
        with torch.no_grad():
            parts = [
                call_model(model, images[start : start + self.batch_size])
                for start in range(0, images.shape[0], self.batch_size)
            ]
        return torch.cat(parts)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SaliencyMethod(ExplanationMethod, abc.ABC):
    """Base class of the heatmap methods: construct with keyword parameters, then `explain`.

    Parameters work as in `ExplanationMethod`; a subclass overrides `_attribute` (and, when
    it needs per-call set-up, `_prepare`).
    """

    # ------------------------------------------------------------------ hooks

    def _prepare(self, model: nn.Module, images: Tensor) -> dict[str, Any]:
        """Per-call set-up before any attribution (model in eval mode, images on its device).

        Returns a context passed to every `_attribute` call; its entries are also copied into
        ``result.extras``, so keep them JSON-serializable (names, numbers).
        """
        return {}

    @abc.abstractmethod
    def _attribute(
        self, model: nn.Module, images: Tensor, targets: Tensor, context: dict[str, Any]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Raw saliency for one chunk of at most ``batch_size`` images.

        Called with the model in eval mode, all its parameters with ``requires_grad=False``
        and gradient mode enabled; `images` is a private copy on the model's device.
        Returns ``(raw, extras)``: `raw` (b, H, W), any real values (larger = more important,
        normalized by the caller) and per-image extras whose first dimension is b.
        Use `torch.autograd.grad`, not ``backward()``, so no parameter gradient is written.
        """

    # ------------------------------------------------------------------ pipeline

    def explain(
        self, model: nn.Module, images: Tensor, targets: Tensor | None = None
    ) -> SaliencyResult:
        """Explain `model`'s decision for each image.

        Args:
            model: a classifier returning logits (B, num_classes). Its training flags,
                ``requires_grad`` flags and parameter gradients are left as they were.
            images: float tensor (B, 3, H, W), already normalized for the model; never
                modified. Moved to the device of the model's parameters.
            targets: int64 tensor (B,) of classes to explain, or None for the class the
                model predicts on each original image.

        Raises:
            ValueError: on a malformed argument, checked before any forward pass (a target
                beyond the number of classes is caught after the first, no-grad, pass).
        """
        check_inputs(model, images, targets)
        device = model_device(model)
        with torch.inference_mode(False), torch.enable_grad(), scoped_model_state(model):
            x = images.detach().to(device=device, dtype=torch.float32, copy=True)
            logits = self._logits(model, x)
            t = resolve_targets(logits, targets)
            scores = logits.softmax(dim=1).gather(1, t[:, None])[:, 0]

            context = self._prepare(model, x)
            raw_chunks: list[Tensor] = []
            extra_chunks: dict[str, list[Tensor]] = {}
            for start in range(0, x.shape[0], self.batch_size):
                stop = start + self.batch_size
                raw, extras = self._attribute(model, x[start:stop], t[start:stop], context)
                expected = (x[start:stop].shape[0], *x.shape[2:])
                if tuple(raw.shape) != expected:
                    raise RuntimeError(
                        f"{type(self).__name__}._attribute returned shape {tuple(raw.shape)}, "
                        f"expected {expected}"
                    )
                raw_chunks.append(raw.detach().float().cpu())
                for key, value in extras.items():
                    extra_chunks.setdefault(key, []).append(value.detach().cpu())

        raw_all = torch.cat(raw_chunks)
        if not torch.isfinite(raw_all).all():
            raise RuntimeError(f"{type(self).__name__} produced a non-finite saliency map")
        result_extras: dict[str, Any] = dict(context)
        result_extras.update({key: torch.cat(parts) for key, parts in extra_chunks.items()})
        return SaliencyResult(
            saliency=normalize_per_image(raw_all),
            targets=t.cpu(),
            scores=scores.float().cpu(),
            extras=result_extras,
        )


# ---------------------------------------------------------------------- helpers


def params_hash(slug: str, params: dict[str, Any]) -> str:
    """sha256 of a method's slug and its parameters as canonical JSON (key order ignored)."""
    payload = json.dumps({"method": slug, "params": params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def resolve_targets(logits: Tensor, targets: Tensor | None) -> Tensor:
    """The classes to explain on the logits' device: `targets`, or the predicted classes.

    Raises:
        ValueError: a target beyond the number of classes of the model.
    """
    if targets is None:
        return logits.argmax(dim=1)
    t = targets.detach().to(device=logits.device, dtype=torch.long, copy=True)
    num_classes = logits.shape[1]
    if int(t.max()) >= num_classes:
        raise ValueError(
            f"targets must be class indices in [0, {num_classes - 1}] for this "
            f"model ({num_classes} classes); got max {int(t.max())}"
        )
    return t


def call_model(model: nn.Module, images: Tensor) -> Tensor:
    """Run `model` and check it returned logits of shape (B, num_classes)."""
    out = model(images)
    if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != images.shape[0]:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"model must return logits of shape (B, num_classes) = ({images.shape[0]}, C); "
            f"got {got}"
        )
    return out


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU if it has neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@contextmanager
def scoped_model_state(model: nn.Module) -> Iterator[None]:
    """Eval mode, parameters frozen, for the duration; every flag and ``.grad`` restored.

    Each submodule's own ``training`` flag is restored (not ``model.train(previous)``, which
    would overwrite a mixed state), as are each parameter's ``requires_grad`` and ``grad``.
    Exceptions propagate.
    """
    modules = list(model.modules())
    training = [m.training for m in modules]
    params = list(model.parameters())
    requires_grad = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    try:
        model.eval()
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for module, flag in zip(modules, training, strict=True):
            module.training = flag
        for p, flag, grad in zip(params, requires_grad, grads, strict=True):
            p.requires_grad_(flag)
            p.grad = grad


def normalize_per_image(raw: Tensor) -> Tensor:
    """Min-max normalize each map of (B, H, W) to [0, 1]; a constant map becomes zeros."""
    flat = raw.reshape(raw.shape[0], -1).float()
    lo = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - lo
    safe = torch.where(span > 0, span, torch.ones_like(span))
    out = torch.where(span > 0, (flat - lo) / safe, torch.zeros_like(flat))
    return out.clamp_(0.0, 1.0).reshape(raw.shape)


def require_int(value: Any, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")


def check_inputs(model: Any, images: Any, targets: Any) -> None:
    """Raise ValueError naming the problem with `model`, `images` (B, 3, H, W) or `targets`."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(images, Tensor):
        raise ValueError(f"images must be a torch.Tensor; got {type(images).__name__}")
    if not images.is_floating_point():
        raise ValueError(f"images must be a floating-point tensor; got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W); got {tuple(images.shape)}")
    if images.shape[0] == 0 or images.shape[2] < 2 or images.shape[3] < 2:
        raise ValueError(
            f"images must hold at least one image of at least 2x2 pixels; got {tuple(images.shape)}"
        )
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")
    if targets is None:
        return
    if not isinstance(targets, Tensor):
        raise ValueError(
            f"targets must be a LongTensor of shape (B,) or None; got {type(targets).__name__}"
        )
    if targets.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"targets must be an integer (int64) tensor; got dtype {targets.dtype}")
    if tuple(targets.shape) != (images.shape[0],):
        raise ValueError(
            f"targets must have shape (B,) = ({images.shape[0]},) to match images; "
            f"got {tuple(targets.shape)}"
        )
    if int(targets.min()) < 0:
        raise ValueError(f"targets must be non-negative class indices; got {targets.tolist()}")
