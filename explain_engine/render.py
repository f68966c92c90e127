"""Heatmap figures for participants and researchers, and the raw-map file format.

Pure PIL / NumPy plus Matplotlib's colormap table (no pyplot, no backend, no global state).
Never imports Django or PyTorch.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from explain_engine.methods.xnn import XNNResult

__all__ = [
    "ConceptItem",
    "heatmap_overlay",
    "load_saliency_npy",
    "save_saliency_npy",
    "xnn_concept_item",
    "xnn_concept_panel",
]

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


_POSITIVE = (214, 39, 40)
_NEGATIVE = (31, 90, 200)
_RULE = (150, 150, 150)


def xnn_concept_panel(
    image: Image.Image,
    concept_heatmaps: np.ndarray,
    contributions: np.ndarray,
    prototype_images: list[list[Image.Image]],
    class_name: str,
) -> Image.Image:
    """An XNN explanation: the image, then one row per concept (about 700 px wide).

    Each row shows where the concept is in the image (its heatmap over the image, see
    `heatmap_overlay`), its contribution to the class score as a bar from a zero line
    (positive red to the right, negative blue to the left, lengths scaled by the largest
    |contribution|, with the number) and the training images that show the concept most.

    Args:
        image: the explained image.
        concept_heatmaps: (k, h, w) maps in [0, 1], one per concept.
        contributions: (k,) each concept's contribution (activation × weight) to the score
            of `class_name`, in the same order.
        prototype_images: k lists of prototype images (any number each, may be empty).
        class_name: the class whose score the contributions make up.
    """
    maps = np.asarray(concept_heatmaps, dtype=np.float32)
    values = np.asarray(contributions, dtype=np.float64).reshape(-1)
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"concept_heatmaps must be (k, H, W); got shape {maps.shape}")
    k = maps.shape[0]
    if values.shape != (k,) or not np.isfinite(values).all():
        raise ValueError(f"contributions must be {k} finite numbers; got shape {values.shape}")
    if len(prototype_images) != k:
        raise ValueError(f"need {k} prototype lists, one per concept; got {len(prototype_images)}")

    pad, gap, thumb, tile, bar_width = 12, 14, 150, 104, 200
    n_protos = max(1, max(len(row) for row in prototype_images))
    width = pad + thumb + gap + bar_width + gap + n_protos * (tile + 6) - 6 + pad
    title_font = ImageFont.load_default(size=20)
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=13)
    hero = 200
    heading_h = 22
    row_h = max(thumb, tile) + 16
    height = pad + 28 + hero + gap + heading_h + k * row_h + pad
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)

    draw.text(
        (pad, pad), f"Why the AI scores this image as {class_name}", fill=_TEXT, font=title_font
    )
    top = pad + 28
    canvas.paste(image.convert("RGB").resize((hero, hero), Image.Resampling.BILINEAR), (pad, top))
    total = float(values.sum())
    lines = [
        f"The AI found {k} concepts.",
        "Each row shows where a concept is",
        "in this image, how much it adds to",
        f"the score for {class_name}",
        "(red: for it, blue: against it),",
        "and training images that show it most.",
        f"Sum of contributions: {total:+.2f}",
    ]
    for i, line in enumerate(lines):
        draw.text((pad + hero + 2 * gap, top + 8 + i * 22), line, fill=_TEXT, font=font)

    y = top + hero + gap
    bar_left = pad + thumb + gap
    proto_left = bar_left + bar_width + gap
    draw.text((pad, y), "Where in this image", fill=_TEXT, font=small)
    draw.text((bar_left, y), "Contribution", fill=_TEXT, font=small)
    draw.text((proto_left, y), "Training images with this concept", fill=_TEXT, font=small)
    y += heading_h
    scale = float(np.abs(values).max())
    half = bar_width // 2 - 4
    for j in range(k):
        draw.line([(pad, y), (width - pad, y)], fill=(225, 225, 225))
        overlay = heatmap_overlay(image.resize((thumb, thumb)), maps[j], legend=False)
        canvas.paste(overlay, (pad, y + 8))

        centre = bar_left + bar_width // 2
        mid = y + 8 + thumb // 2
        draw.text((bar_left, y + 12), f"Concept {j + 1}", fill=_TEXT, font=font)
        length = 0 if scale == 0 else round(half * abs(values[j]) / scale)
        colour = _POSITIVE if values[j] > 0 else _NEGATIVE
        if length > 0:
            x0, x1 = (centre, centre + length) if values[j] > 0 else (centre - length, centre)
            draw.rectangle([x0, mid - 11, x1, mid + 11], fill=colour)
        draw.line([(centre, mid - 18), (centre, mid + 18)], fill=_RULE, width=2)
        label = f"{values[j]:+.2f}"
        label_w = draw.textlength(label, font=font)
        if values[j] >= 0:
            lx = min(centre + length + 4, bar_left + bar_width - label_w)
            ly = mid + 14 if lx < centre + length else mid - 8
        else:
            lx = max(centre - length - 4 - label_w, bar_left)
            ly = mid + 14 if lx + label_w > centre - length else mid - 8
        draw.text((lx, ly), label, fill=colour if values[j] != 0 else _TEXT, font=font)

        for p, proto in enumerate(prototype_images[j]):
            tile_img = proto.convert("RGB").resize((tile, tile), Image.Resampling.BILINEAR)
            canvas.paste(tile_img, (proto_left + p * (tile + 6), y + 8 + (thumb - tile) // 2))
        y += row_h
    return canvas


@dataclasses.dataclass
class ConceptItem:
    """What one image's XNN explanation leaves behind (see `xnn_concept_item`).

    Attributes:
        panel_png: the participant's panel (`xnn_concept_panel`) as PNG bytes.
        data: JSON-safe numbers behind it (see `xnn_concept_item`).
        heatmaps: (k, H, W) float32 in [0, 1], one map per concept at the model's input size.
    """

    panel_png: bytes
    data: dict[str, Any]
    heatmaps: np.ndarray


def xnn_concept_item(
    result: XNNResult,
    index: int,
    image: Image.Image,
    prototype_images: Sequence[Sequence[Image.Image]],
    *,
    class_names: Sequence[str],
    prototype_ids: Sequence[Sequence[Any]],
) -> ConceptItem:
    """One image of an `XNN.explain` batch as a panel PNG, its data and its concept maps.

    The panel shows the contributions to the image's target class (``result.targets``).
    ``data`` holds: ``classes`` (the classifier's output indices explained, in column order)
    and their ``class_names``; ``target_class`` (an output index); per class the
    classifier's ``logits``, the XNN's ``rebuilt_scores`` and the head ``bias``;
    ``heatmap_method`` ("cmwp" or "gradcam") and ``heatmap_layer``; and ``concepts``, one
    dict per concept: ``activation``, ``contributions`` (one per explained class, in column
    order; with the bias they sum to the rebuilt score) and ``prototype_ids``.

    Args:
        result: what `XNN.explain` returned for a batch holding the image.
        index: the image's position in that batch.
        image: the stimulus as shown to participants.
        prototype_images: per concept, its prototype tiles (e.g. training images with that
            concept's heatmap over them), best first.
        class_names: a name per classifier output index.
        prototype_ids: per concept, ids of its prototype images, in the same order.
    """
    batch = int(result.activations.shape[0])
    if not 0 <= index < batch:
        raise ValueError(f"index must be in [0, {batch - 1}]; got {index}")
    k = int(result.activations.shape[1])
    if len(prototype_ids) != k or len(prototype_images) != k:
        raise ValueError(f"need prototype images and ids for each of the {k} concepts")
    for images, ids in zip(prototype_images, prototype_ids, strict=True):
        if len(images) != len(ids):
            raise ValueError("each concept needs as many prototype ids as prototype images")
    missing = [c for c in result.classes if not 0 <= c < len(class_names)]
    if missing:
        raise ValueError(f"no class name for output indices {missing}")
    column = int(result.targets[index])
    target_class = result.classes[column]
    heatmaps = result.heatmaps[index].numpy().astype(np.float32)
    contributions = result.contributions[index].double().numpy()  # (C, k)
    panel = xnn_concept_panel(
        image, heatmaps, contributions[column], prototype_images, class_names[target_class]
    )
    buffer = io.BytesIO()
    panel.save(buffer, format="PNG")
    data = {
        "classes": list(result.classes),
        "class_names": [class_names[c] for c in result.classes],
        "target_class": target_class,
        "logits": result.logits[index].tolist(),
        "rebuilt_scores": result.rebuilt_scores[index].tolist(),
        "bias": result.bias.tolist(),
        "heatmap_method": result.heatmap_method,
        "heatmap_layer": result.heatmap_layer,
        "concepts": [
            {
                "activation": float(result.activations[index, j]),
                "contributions": contributions[:, j].tolist(),
                "prototype_ids": list(prototype_ids[j]),
            }
            for j in range(k)
        ],
    }
    return ConceptItem(panel_png=buffer.getvalue(), data=data, heatmaps=heatmaps)


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
