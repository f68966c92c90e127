"""Heatmap figures for participants and researchers, and the raw-map file format.

Pure PIL / NumPy plus Matplotlib's colormap table (no pyplot, no backend, no global state).
Never imports Django or PyTorch.
"""

from __future__ import annotations

import os
from typing import IO

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["heatmap_overlay", "load_saliency_npy", "save_saliency_npy"]

LEGEND_LABELS = ("less important", "more important")
SHORT_LEGEND_LABELS = ("less", "more")
_BACKGROUND = (255, 255, 255)
_TEXT = (40, 40, 40)


def heatmap_overlay(
    image: Image.Image,
    saliency: np.ndarray,
    *,
    alpha_power: float = 0.8,
    legend: bool = True,
    colormap: str = "jet",
) -> Image.Image:
    """Blend a saliency map over `image` as a colour heatmap.

    The map is resized to the image (bilinear), coloured with `colormap` ("jet" as in the XNN
    and I-GOS figures; "turbo" is a perceptually smoother alternative) and blended per pixel
    as ``image * (1 - a**p) + colour * a**p`` with a the saliency and p `alpha_power`, so
    unimportant regions (a = 0) show the untouched image and the most important (a = 1) the
    pure colour.

    Args:
        image: the picture shown to participants (any PIL mode; the result is RGB).
        saliency: (h, w) array in [0, 1], 1 = most important; any size.
        alpha_power: p > 0; below 1 makes weak evidence more visible.
        legend: add a colour bar under the image, labelled "less important" on the left and
            "more important" on the right (shortened to "less"/"more" on narrow images).
        colormap: a name from ``matplotlib.colormaps``.

    Returns:
        An RGB image of the input's width; its height grows by the legend strip if any.
    """
    sal = np.asarray(saliency, dtype=np.float32)
    if sal.ndim != 2 or sal.size == 0:
        raise ValueError(f"saliency must be a non-empty 2-D array (H, W); got shape {sal.shape}")
    if not np.isfinite(sal).all():
        raise ValueError("saliency contains NaN or infinite values")
    if sal.min() < -1e-6 or sal.max() > 1 + 1e-6:
        raise ValueError(f"saliency must lie in [0, 1]; got [{sal.min():.4g}, {sal.max():.4g}]")
    if not alpha_power > 0:
        raise ValueError(f"alpha_power must be positive; got {alpha_power}")
    cmap = matplotlib.colormaps[colormap]

    rgb = image.convert("RGB")
    width, height = rgb.size
    if sal.shape != (height, width):
        sal = np.asarray(
            Image.fromarray(sal).resize((width, height), Image.Resampling.BILINEAR),
            dtype=np.float32,
        )
    sal = np.clip(sal, 0.0, 1.0)

    pixels = np.asarray(rgb, dtype=np.float64)
    colour = cmap(sal)[..., :3] * 255.0
    weight = (sal.astype(np.float64) ** alpha_power)[..., None]
    blended = pixels * (1.0 - weight) + colour * weight
    out = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
    if not legend:
        return out
    return _with_legend(out, cmap)


def _with_legend(figure: Image.Image, cmap) -> Image.Image:
    """`figure` with a labelled colour-bar strip appended below it."""
    width, height = figure.size
    font_size = max(9, round(width / 19))  # 12 px text under a 224 px image
    pad = max(3, font_size // 3)
    labels, font = _fit_labels(width - 2 * pad, font_size)
    ascent, descent = font.getmetrics()
    bar_height = max(6, font_size)
    strip_height = pad + bar_height + pad // 2 + ascent + descent + pad

    canvas = Image.new("RGB", (width, height + strip_height), _BACKGROUND)
    canvas.paste(figure, (0, 0))
    bar_width = max(1, width - 2 * pad)
    ramp = cmap(np.linspace(0.0, 1.0, bar_width))[:, :3] * 255.0
    bar = np.repeat(np.rint(ramp).astype(np.uint8)[None], bar_height, axis=0)
    canvas.paste(Image.fromarray(bar), (pad, height + pad))

    draw = ImageDraw.Draw(canvas)
    text_top = height + pad + bar_height + pad // 2
    draw.text((pad, text_top), labels[0], fill=_TEXT, font=font)
    right_width = draw.textlength(labels[1], font=font)
    draw.text((width - pad - right_width, text_top), labels[1], fill=_TEXT, font=font)
    return canvas


def _fit_labels(available: int, font_size: int):
    """The longest labels and largest font (down to 6 px) that fit side by side."""
    font = ImageFont.load_default(size=font_size)
    for size in range(font_size, 5, -1):
        font = ImageFont.load_default(size=size)
        for labels in (LEGEND_LABELS, SHORT_LEGEND_LABELS):
            gap = size
            needed = sum(font.getlength(label) for label in labels) + gap
            if needed <= available:
                return labels, font
    return SHORT_LEGEND_LABELS, font


def save_saliency_npy(file: str | os.PathLike[str] | IO[bytes], saliency: np.ndarray) -> None:
    """Save a raw (H, W) map as float32 ``.npy`` (``np.save``, no pickle)."""
    array = np.asarray(saliency, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"saliency must be a 2-D array (H, W); got shape {array.shape}")
    np.save(file, array, allow_pickle=False)


def load_saliency_npy(file: str | os.PathLike[str] | IO[bytes]) -> np.ndarray:
    """Load a map written by `save_saliency_npy` as a float32 (H, W) array."""
    array = np.load(file, allow_pickle=False)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D saliency map; got shape {array.shape}")
    return array.astype(np.float32, copy=False)
