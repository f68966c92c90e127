"""Perturbation baselines shared by the path and mask methods (integrated gradients, I-GOS).

Images reaching the methods are already normalized for the model (``(pixel - mean) / std``
per channel). A Gaussian blur commutes with that per-channel affine map (the kernel sums to
one), so blurring the normalized image equals normalizing the blurred pixel image. A black
pixel-space image is *not* zeros in normalized space: zeros there are the dataset mean colour.

Pure PyTorch; never imports Django.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["REFERENCE_SIZE", "blur_baseline", "gaussian_blur", "zeros_baseline"]

#: Image side at which the I-GOS blur parameters (kernel 51, sigma 50) are specified.
REFERENCE_SIZE = 224


def gaussian_blur(images: Tensor, *, kernel_size: int, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, C, H, W), per channel, with reflect-101 borders.

    Matches OpenCV ``GaussianBlur(img, (k, k), sigma)`` with its default border (the blur used
    by the I-GOS code): weights ``exp(-x^2 / (2 sigma^2))`` normalized to sum to one. Borders
    fall back to edge replication when the kernel radius reaches the image size.
    """
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W); got {tuple(images.shape)}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer; got {kernel_size}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive; got {sigma}")
    if kernel_size == 1:
        return images.clone()
    radius = kernel_size // 2
    channels, height, width = images.shape[1:]
    offsets = torch.arange(kernel_size, device=images.device, dtype=images.dtype) - radius
    kernel = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    kernel = kernel / kernel.sum()
    mode = "reflect" if radius < min(height, width) else "replicate"
    padded = F.pad(images, (radius, radius, radius, radius), mode=mode)
    horizontal = kernel.view(1, 1, 1, kernel_size).expand(channels, 1, 1, kernel_size)
    vertical = kernel.view(1, 1, kernel_size, 1).expand(channels, 1, kernel_size, 1)
    out = F.conv2d(padded, horizontal, groups=channels)
    return F.conv2d(out, vertical, groups=channels)


def blur_baseline(
    images: Tensor, *, kernel_size_at_224: int = 51, sigma_at_224: float = 50.0
) -> Tensor:
    """The I-GOS baseline: a heavy Gaussian blur, its size scaled with the input.

    Kernel 51 and sigma 50 at 224 px (the I-GOS / iGOS++ default); for other sizes both scale
    by ``min(H, W) / 224``, the kernel rounded to the nearest odd integer (at least 1). At
    64 px this gives kernel 15, sigma 14.3.
    """
    scale = min(images.shape[-2:]) / REFERENCE_SIZE
    kernel_size = max(1, 2 * math.floor(kernel_size_at_224 * scale / 2) + 1)
    return gaussian_blur(images, kernel_size=kernel_size, sigma=sigma_at_224 * scale)


def zeros_baseline(images: Tensor) -> Tensor:
    """All zeros in normalized space, i.e. the dataset-mean colour in pixel space."""
    return torch.zeros_like(images)
