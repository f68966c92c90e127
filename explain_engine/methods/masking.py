"""Low-resolution masks: upsampling, compositing and smoothness terms.

Shared by I-GOS / iGOS++ (`igos.py`), the deletion / insertion metrics (`metrics.py`) and
SAG (which reveals 7x7 patch sets with the same upsample + composite).

Convention (I-GOS): a mask M in [0, 1]^(s x s) with **1 = keep the image, 0 = replace it by
the baseline**; upsampling is bilinear with ``align_corners=True`` everywhere, so the
corner cells sit on the corner pixels and each cell is a soft "tent", not a hard square.

Pure PyTorch; never imports Django.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "bilateral_tv_norm",
    "composite",
    "tv_norm",
    "upsample_mask",
]


def upsample_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling (``align_corners=True``) of (B, 1, s, s) or (B, s, s) to (B, 1, H, W)."""
    if mask.ndim == 3:
        mask = mask[:, None]
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask, size=tuple(size), mode="bilinear", align_corners=True)


def composite(images: Tensor, baseline: Tensor, mask: Tensor) -> Tensor:
    """``images * U(mask) + baseline * (1 - U(mask))``, U = `upsample_mask` to the image size.

    `mask` is (B, 1, s, s) or (B, s, s) with 1 = keep the image; `images` and `baseline` are
    (B, C, H, W). This is Phi(I, I~, M) of I-GOS; swapping `images` and `baseline` gives
    iGOS++'s insertion composite (only the low-mask regions show the image).
    """
    up = upsample_mask(mask, images.shape[-2:])
    return images * up + baseline * (1.0 - up)


def tv_norm(mask: Tensor, beta: float = 2.0) -> Tensor:
    """Total variation of (B, 1, s, s) masks: mean |vertical diff|^beta + mean |horizontal|^beta.

    Means, not sums, as in the I-GOS code; returns (B,). A 1x1 mask has no pairs and TV 0.
    """
    total = mask.new_zeros(mask.shape[0])
    if mask.shape[-2] > 1:
        total = total + (mask[..., 1:, :] - mask[..., :-1, :]).abs().pow(beta).flatten(1).mean(1)
    if mask.shape[-1] > 1:
        total = total + (mask[..., :, 1:] - mask[..., :, :-1]).abs().pow(beta).flatten(1).mean(1)
    return total


def bilateral_tv_norm(
    images: Tensor, mask: Tensor, *, sigma: float = 0.01, beta: float = 2.0
) -> Tensor:
    """iGOS++'s bilateral total variation of each mask (B, 1, s, s) on its image (B, C, H, W).

    ``BTV = 1/2 * (TV_low + BTV_vertical + BTV_horizontal)`` with TV_low = `tv_norm` (beta 2)
    of the low-resolution mask and, over neighbouring pixel pairs (p, q) of the upsampled mask
    U(M), ``BTV_dir = mean over pairs of exp(-d(p, q) / sigma) * |U(M)_p - U(M)_q|^beta``,
    where ``d(p, q)`` is the squared colour difference of the (normalized) image averaged over
    channels. The authors' code averages over channels before squaring for one direction and
    after the exponential for the other (an asymmetry that looks accidental); here both
    directions use the same weight. Returns (B,).
    """
    up = upsample_mask(mask, images.shape[-2:])
    total = tv_norm(mask, 2.0)
    if images.shape[-2] > 1:
        colour = (images[..., 1:, :] - images[..., :-1, :]).pow(2).mean(dim=1, keepdim=True)
        diff = (up[..., 1:, :] - up[..., :-1, :]).abs().pow(beta)
        total = total + (torch.exp(-colour / sigma) * diff).flatten(1).mean(1)
    if images.shape[-1] > 1:
        colour = (images[..., :, 1:] - images[..., :, :-1]).pow(2).mean(dim=1, keepdim=True)
        diff = (up[..., :, 1:] - up[..., :, :-1]).abs().pow(beta)
        total = total + (torch.exp(-colour / sigma) * diff).flatten(1).mean(1)
    return 0.5 * total
