"""Faithfulness metrics of saliency maps: deletion and insertion curves and their areas.

Petsiuk, Das, Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box Models",
BMVC 2018 (arXiv 1806.07421), in two named protocols (``reference/methods.md``, decision 1):

``"igos"`` (default; the I-GOS / iGOS++ evaluation):
    the saliency is taken at the mask resolution s (``resolution``; a map of another size is
    area-averaged to s x s cells), cells are ranked most important first, and
    ``max(1, s*s // 50)`` cells are flipped per step (about 50 steps; the last step takes
    the remainder). After each step the binary s x s map B of untouched cells is upsampled
    bilinearly (``align_corners=True``) to U(B); deletion shows ``I U(B) + I~ (1 - U(B))``,
    insertion ``I~ U(B) + I (1 - U(B))``, with I~ the blurred image (kernel 51, sigma 50 at
    224 px, scaled; `methods.baselines.blur_baseline`) for both. The area is the right
    Riemann sum ``sum_k p_k * (cells flipped at step k) / s^2``, without the starting point.
    Unlike the authors' code, the last step adds ``p_last * count``, not ``count``.

``"rise"``:
    pixels are the cells (a smaller map is upsampled bilinearly, ``align_corners=True``),
    W pixels are flipped per step (H steps, as RISE's ``step=224`` at 224 px); deletion
    replaces pixels by zeros (in the model's normalized space, as RISE does on its
    preprocessed tensors, i.e. the dataset mean colour), insertion starts from an 11x11,
    sigma-5 Gaussian blur (`methods.baselines.gaussian_blur`, reflect borders; RISE pads with
    zeros). The area is the trapezoid rule over the fraction of pixels flipped, in [0, 1].

Scores are softmax probabilities of the target class (default: the class predicted on the
original image). Every perturbed image is built lazily and evaluated in chunks of at most
``batch_size`` without gradient; the model's flags are restored afterwards.

Pure PyTorch; never imports Django.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .methods.base import call_model, model_device, require_int, scoped_model_state
from .methods.baselines import blur_baseline, gaussian_blur, zeros_baseline
from .methods.masking import composite, upsample_mask

__all__ = ["PROTOCOLS", "DeletionInsertion", "deletion_insertion"]

PROTOCOLS = ("igos", "rise")
#: I-GOS protocol: about this many steps.
IGOS_STEPS = 50
#: RISE insertion blur.
RISE_BLUR_KERNEL = 11
RISE_BLUR_SIGMA = 5.0


@dataclasses.dataclass
class DeletionInsertion:
    """Deletion and insertion results; every tensor is on the CPU.

    Attributes:
        deletion_auc, insertion_auc: (B,) float64 areas (deletion: lower is better,
            insertion: higher is better).
        deletion_curve, insertion_curve: (B, K + 1) float64 target probabilities, the first
            column before any cell is flipped (original image for deletion, baseline for
            insertion), then one per step.
        fractions: (K + 1,) float64 fraction of cells flipped at each curve point, 0 ... 1.
        targets: (B,) int64 classes scored.
        protocol: "igos" or "rise". resolution: cells per side (rise: the image height).
    """

    deletion_auc: Tensor
    insertion_auc: Tensor
    deletion_curve: Tensor
    insertion_curve: Tensor
    fractions: Tensor
    targets: Tensor
    protocol: str
    resolution: int


def deletion_insertion(
    model: nn.Module,
    images: Tensor,
    saliency: Tensor,
    targets: Tensor | None = None,
    *,
    protocol: Literal["igos", "rise"] = "igos",
    resolution: int | None = None,
    batch_size: int = 64,
) -> DeletionInsertion:
    """Deletion and insertion curves and areas of `saliency` for `model` on `images`.

    Args:
        model: classifier returning logits (B, num_classes); its flags are left as they were.
        images: (B, 3, H, W) normalized for the model; never modified.
        saliency: (B, h, w), 1 = most important (any real values; only the order matters).
            Ties are broken by raster order.
        targets: (B,) classes to score, or None for the class predicted on each image.
        protocol: "igos" or "rise" (see the module docstring).
        resolution: igos only: cells per side; None takes the saliency's own size (which
            must then be square). rise: must be None.
        batch_size: perturbed images per forward pass.

    Example::

        >>> result = IGOSPlusPlus(resolution=28).explain(model, images)
        >>> scores = deletion_insertion(model, images, 1 - result.extras["mask"])
        >>> scores.deletion_auc.mean(), scores.insertion_auc.mean()
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {list(PROTOCOLS)}; got {protocol!r}")
    require_int(batch_size, "batch_size", minimum=1)
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a tensor (B, 3, H, W); got {_shape(images)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be a floating-point tensor; got dtype {images.dtype}")
    n, _, height, width = images.shape
    if not isinstance(saliency, Tensor) or saliency.ndim != 3 or saliency.shape[0] != n:
        raise ValueError(
            f"saliency must be a tensor (B, h, w) with B = {n}; got {_shape(saliency)}"
        )
    if not torch.isfinite(saliency).all():
        raise ValueError("saliency contains NaN or infinite values")
    if targets is not None and (
        not isinstance(targets, Tensor)
        or tuple(targets.shape) != (n,)
        or targets.is_floating_point()
    ):
        raise ValueError(
            f"targets must be an integer tensor of shape ({n},); got {_shape(targets)}"
        )

    sal = saliency.detach().double()
    if protocol == "igos":
        if resolution is None:
            if sal.shape[1] != sal.shape[2]:
                raise ValueError(
                    f"the igos protocol needs square cells: pass resolution, or a square "
                    f"saliency; got {tuple(sal.shape[1:])}"
                )
            resolution = int(sal.shape[1])
        require_int(resolution, "resolution", minimum=1)
        cells = (resolution, resolution)
        if tuple(sal.shape[1:]) != cells:
            sal = F.adaptive_avg_pool2d(sal[:, None], cells)[:, 0]
        per_step = max(1, resolution * resolution // IGOS_STEPS)
    else:
        if resolution is not None:
            raise ValueError("the rise protocol works on pixels; resolution must be None")
        cells = (height, width)
        if tuple(sal.shape[1:]) != cells:
            sal = upsample_mask(sal[:, None], cells)[:, 0]
        per_step = width
        resolution = height

    device = model_device(model)
    total = cells[0] * cells[1]
    flipped = torch.arange(0, total + per_step, per_step).clamp(max=total)  # (K + 1,)
    flipped = torch.unique_consecutive(flipped)
    fractions = flipped.double() / total
    order = torch.sort(-sal.flatten(1), dim=1, stable=True).indices  # most important first
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(total).expand(n, total).contiguous())

    with torch.inference_mode(False), torch.no_grad(), scoped_model_state(model):
        x = images.detach().to(device=device, dtype=torch.float32)
        if targets is None:
            t = torch.cat(
                [
                    call_model(model, x[i : i + batch_size]).argmax(1)
                    for i in range(0, n, batch_size)
                ]
            )
        else:
            t = targets.detach().to(device=device, dtype=torch.long)
        if protocol == "igos":
            deleted = inserted_start = blur_baseline(x)
        else:
            deleted = zeros_baseline(x)
            inserted_start = gaussian_blur(x, kernel_size=RISE_BLUR_KERNEL, sigma=RISE_BLUR_SIGMA)
        rank = rank.to(device)
        flipped_dev = flipped.to(device)
        curves = []
        for keep_image, fill_image in ((x, deleted), (inserted_start, x)):
            # Deletion: untouched cells keep the image; insertion: untouched cells keep the
            # blurred canvas and flipped cells show the image.
            count = n * len(flipped)
            probs = torch.empty(count, dtype=torch.float64, device=device)
            for start in range(0, count, batch_size):
                index = torch.arange(start, min(start + batch_size, count), device=device)
                owner, k = index // len(flipped), index % len(flipped)
                untouched = (rank[owner] >= flipped_dev[k][:, None]).float().view(-1, 1, *cells)
                batch = composite(keep_image[owner], fill_image[owner], untouched)
                out = call_model(model, batch).softmax(dim=1)
                probs[start : start + len(index)] = out.gather(1, t[owner][:, None])[:, 0].double()
            curves.append(probs.view(n, len(flipped)).cpu())

    widths = fractions[1:] - fractions[:-1]
    if protocol == "igos":
        aucs = [(curve[:, 1:] * widths).sum(1) for curve in curves]
    else:
        aucs = [(0.5 * (curve[:, 1:] + curve[:, :-1]) * widths).sum(1) for curve in curves]
    return DeletionInsertion(
        deletion_auc=aucs[0],
        insertion_auc=aucs[1],
        deletion_curve=curves[0],
        insertion_curve=curves[1],
        fractions=fractions,
        targets=t.cpu(),
        protocol=protocol,
        resolution=int(resolution),
    )


def _shape(value: object) -> object:
    return tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
