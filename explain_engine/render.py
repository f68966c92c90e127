"""Heatmap figures, SAG graphs and XNN panels for participants and researchers, and the
raw-map file format.

Pure PIL / NumPy plus Matplotlib's colormap table (no pyplot, no backend, no global state).
Never imports Django or PyTorch.
"""

from __future__ import annotations

import dataclasses
import io
import os
import zipfile
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from explain_engine.captions import (
    heatmap_captions,
    sag_captions,
    sag_pair_captions,
    xnn_captions,
)

if TYPE_CHECKING:
    from explain_engine.methods.sag import SAGGraph
    from explain_engine.methods.xnn import XNNResult

__all__ = [
    "ConceptItem",
    "absent_concept_square",
    "contribution_label",
    "heatmap_overlay",
    "load_saliency_npy",
    "sag_figure",
    "sag_layout",
    "sag_node_tile",
    "sag_pair_figure",
    "sag_reveal",
    "save_saliency_npy",
    "xnn_concept_item",
    "xnn_concept_panel",
    "xnn_panel_layout",
]

LEGEND_LABELS = heatmap_captions().drawn["legend"]
SHORT_LEGEND_LABELS = heatmap_captions().drawn["short_legend"]
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


def contribution_label(value: float) -> str:
    """An XNN contribution (or their sum) as shown: signed, two decimals; "0.00" where it
    rounds to zero (an absent concept's contribution is 0 x its weight, often -0.0, which
    would read "-0.00")."""
    label = f"{value:+.2f}"
    return "0.00" if label in ("+0.00", "-0.00") else label


def xnn_concept_panel(
    image: Image.Image,
    concept_heatmaps: np.ndarray,
    contributions: np.ndarray,
    prototype_images: list[list[Image.Image]],
    class_name: str | None = None,
    present: Sequence[bool] | None = None,
) -> Image.Image:
    """An XNN explanation: the image, then one row per concept (about 700 px wide).

    Its words are `captions.xnn_captions(class_name)`: the class is named only when given,
    so a panel for a condition that hides the AI's answer is drawn with None.

    Each row shows where the concept is in the image (its heatmap over the image, see
    `heatmap_overlay`), its contribution to the class score as a bar from a zero line
    (positive red to the right, negative blue to the left, lengths scaled by the largest
    |contribution|, with the number) and the training images that show the concept most.
    A concept the image does not hold (`present` False: its x-feature is 0) gets no heatmap:
    its map would show where the concept would be, which a reader takes for where the AI
    found it. Its square shows the image faded to grey with the words' "absent" over it.

    Args:
        image: the explained image.
        concept_heatmaps: (k, h, w) maps in [0, 1], one per concept.
        contributions: (k,) each concept's contribution (activation × weight) to the score
            of `class_name`, in the same order.
        prototype_images: k lists of prototype images (any number each, may be empty).
        class_name: the class whose score the contributions make up, or None to say "its
            answer" instead.
        present: (k,) whether the image holds each concept; None: all of them.
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
    held = [True] * k if present is None else [bool(p) for p in present]
    if len(held) != k:
        raise ValueError(f"need {k} present flags, one per concept; got {len(held)}")

    n_protos = max(1, max(len(row) for row in prototype_images))
    layout = xnn_panel_layout(k, n_protos)
    pad, gap, thumb, tile, bar_width = 12, 14, 150, 104, 200
    width, height, hero = layout.width, layout.height, layout.hero[2]
    title_font = ImageFont.load_default(size=20)
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=13)
    heading_h = 22
    row_h = max(thumb, tile) + 16
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)

    words = xnn_captions(class_name).drawn
    draw.text((pad, pad), words["title"][0], fill=_TEXT, font=title_font)
    top = pad + 28
    canvas.paste(
        image.convert("RGB").resize((hero, hero), Image.Resampling.BILINEAR), layout.hero[:2]
    )
    lines = [*words["intro"], f"{words['sum'][0]} {contribution_label(float(values.sum()))}"]
    for i, line in enumerate(lines):
        draw.text((pad + hero + 2 * gap, top + 8 + i * 22), line, fill=_TEXT, font=font)

    y = top + hero + gap
    bar_left = pad + thumb + gap
    proto_left = bar_left + bar_width + gap
    for x, heading in zip((pad, bar_left, proto_left), words["columns"], strict=True):
        draw.text((x, y), heading, fill=_TEXT, font=small)
    y += heading_h
    scale = float(np.abs(values).max())
    half = bar_width // 2 - 4
    for j in range(k):
        draw.line([(pad, y), (width - pad, y)], fill=(225, 225, 225))
        if held[j]:
            square = heatmap_overlay(image.resize((thumb, thumb)), maps[j], legend=False)
        else:
            square = absent_concept_square(image, thumb, words["absent"])
        canvas.paste(square, layout.heatmaps[j][:2])

        centre = bar_left + bar_width // 2
        mid = y + 8 + thumb // 2
        draw.text((bar_left, y + 12), f"{words['concept'][0]} {j + 1}", fill=_TEXT, font=font)
        length = 0 if scale == 0 else round(half * abs(values[j]) / scale)
        colour = _POSITIVE if values[j] > 0 else _NEGATIVE
        if length > 0:
            x0, x1 = (centre, centre + length) if values[j] > 0 else (centre - length, centre)
            draw.rectangle([x0, mid - 11, x1, mid + 11], fill=colour)
        draw.line([(centre, mid - 18), (centre, mid + 18)], fill=_RULE, width=2)
        label = contribution_label(values[j])
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
            canvas.paste(tile_img, layout.prototypes[j][p][:2])
        y += row_h
    return canvas


def absent_concept_square(image: Image.Image, side: int, lines: Sequence[str]) -> Image.Image:
    """Where an XNN panel would put the heatmap of a concept `image` does not hold: the
    image in grey, faded toward white, `side` pixels square, with `lines` in the middle."""
    font = ImageFont.load_default(size=15)
    grey = image.convert("L").resize((side, side), Image.Resampling.BILINEAR)
    faded = Image.eval(grey, lambda v: 170 + v // 3).convert("RGB")
    draw = ImageDraw.Draw(faded)
    for i, line in enumerate(lines):
        width = draw.textlength(line, font=font)
        top = side // 2 - 20 + i * 22
        draw.text(((side - width) / 2, top), line, fill=_TEXT, font=font)
    return faded


@dataclasses.dataclass(frozen=True)
class XNNPanelLayout:
    """Where `xnn_concept_panel` puts its pictures, as (left, top, size) squares, so that a
    page can cut them out of a stored panel and lay them out itself (`reflow`)."""

    width: int
    height: int
    hero: tuple[int, int, int]
    heatmaps: tuple[tuple[int, int, int], ...]  # one per concept
    prototypes: tuple[tuple[tuple[int, int, int], ...], ...]  # per concept, per tile


def xnn_panel_layout(k: int, n_protos: int) -> XNNPanelLayout:
    """The layout of a panel of `k` concepts with at most `n_protos` prototypes each."""
    pad, gap, thumb, tile, bar_width, hero = 12, 14, 150, 104, 200, 200
    n_protos = max(1, n_protos)
    width = pad + thumb + gap + bar_width + gap + n_protos * (tile + 6) - 6 + pad
    top = pad + 28
    rows_top = top + hero + gap + 22
    row_h = max(thumb, tile) + 16
    proto_left = pad + thumb + gap + bar_width + gap
    return XNNPanelLayout(
        width=width,
        height=rows_top + k * row_h + pad,
        hero=(pad, top, hero),
        heatmaps=tuple((pad, rows_top + j * row_h + 8, thumb) for j in range(k)),
        prototypes=tuple(
            tuple(
                (proto_left + p * (tile + 6), rows_top + j * row_h + 8 + (thumb - tile) // 2, tile)
                for p in range(n_protos)
            )
            for j in range(k)
        ),
    )


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

    The panel shows the contributions to the image's target class (``result.targets``)
    without naming it (`captions.Disclosure.STORED`), since one stored panel serves every
    condition, also those that hide the AI's answer.
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
    # Stored once and shown in every condition that uses it: no class named (see `captions`).
    panel = xnn_concept_panel(
        image,
        heatmaps,
        contributions[column],
        prototype_images,
        None,
        present=result.present()[index].tolist(),
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


# ---------------------------------------------------------------------- SAG

#: Darkness of the hidden patches in SAG thumbnails: 10% brightness, as in the SAG figures.
SAG_HIDDEN_BRIGHTNESS = 0.1
_SAG_RED = (220, 20, 20)
_SAG_EDGE = (120, 120, 120)
_SAG_ROOT_BORDER = (25, 80, 200)  # blue: visible against the darkened thumbnails
_SAG_NODE_BORDER = (170, 170, 170)
#: Label fills by confidence (% of the full-image confidence): > 90, > 50, else.
_SAG_FILLS = ((90.0, (198, 239, 206)), (50.0, (255, 235, 156)), (-1.0, (255, 205, 210)))


def sag_reveal(
    image: Image.Image,
    patches: Sequence[int],
    grid: int,
    *,
    size: int | None = None,
    hidden_brightness: float = SAG_HIDDEN_BRIGHTNESS,
) -> Image.Image:
    """`image` with only `patches` of a `grid` x `grid` patch grid shown, the rest darkened.

    The patch map is upsampled exactly as the model saw it (bilinear, ``align_corners=True``,
    see `explain_engine.methods.masking`), so each patch is a soft tent around its grid point;
    where the model saw the black baseline the picture keeps `hidden_brightness` of its
    brightness so the hidden context stays faintly visible. `size` resizes the image to a
    `size` x `size` square first (the model's input is a square resize).
    """
    if grid < 2:
        raise ValueError(f"grid must be at least 2; got {grid}")
    cells = np.zeros(grid * grid)
    chosen = list(patches)
    if any(not 0 <= p < grid * grid for p in chosen):
        raise ValueError(f"patches must lie in [0, {grid * grid - 1}]; got {chosen}")
    cells[chosen] = 1.0
    rgb = image.convert("RGB")
    if size is not None:
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    shown = _upsample_align_corners(cells.reshape(grid, grid), rgb.height, rgb.width)
    weight = hidden_brightness + (1.0 - hidden_brightness) * shown
    pixels = np.asarray(rgb, dtype=np.float64) * weight[..., None]
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def _upsample_align_corners(cells: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of (g, g) to (height, width) with ``align_corners=True``."""
    return _interpolation(height, cells.shape[0]) @ cells @ _interpolation(width, cells.shape[1]).T


def _interpolation(size: int, cells: int) -> np.ndarray:
    """(size, cells) linear-interpolation weights; output pixel i sits at i*(cells-1)/(size-1)."""
    position = np.linspace(0.0, cells - 1, size) if size > 1 else np.zeros(1)
    low = np.clip(np.floor(position).astype(int), 0, cells - 2)
    frac = position - low
    weights = np.zeros((size, cells))
    weights[np.arange(size), low] = 1.0 - frac
    weights[np.arange(size), low + 1] += frac
    return weights


def _patch_box(patch: int, grid: int, size: int) -> tuple[float, float, float, float]:
    """The square a patch stands for in a `size`-px thumbnail: one grid spacing around its
    grid point (where its tent outweighs its neighbours'), clipped to the picture."""
    row, col = divmod(patch, grid)
    step = (size - 1) / (grid - 1)
    cx, cy = col * step, row * step
    half = step / 2
    return (
        max(0.0, cx - half),
        max(0.0, cy - half),
        min(size - 1.0, cx + half),
        min(size - 1.0, cy + half),
    )


def _graph_data(graph: SAGGraph | Mapping[str, Any]) -> Mapping[str, Any]:
    data = graph.to_dict() if hasattr(graph, "to_dict") else graph
    for key in ("grid", "nodes", "edges", "roots", "pairs"):
        if key not in data:
            raise ValueError(f"not a SAG graph: no {key!r}")
    return data


#: SAG thumbnails: never smaller than this (a layer too wide wraps), never larger than that.
SAG_MIN_THUMB = 96
SAG_MAX_THUMB = 150
_SAG_HGAP = 14


def sag_layout(
    graph: SAGGraph | Mapping[str, Any], *, area_left: float, area_width: float
) -> tuple[int, list[list[int]], dict[int, float]]:
    """Where `sag_figure` puts each node: (thumbnail side, rows of node ids, centre x).

    Rows go top to bottom, layer by layer (roots first); within a layer nodes follow the mean
    x of their parents (ties by id), and a layer wider than `area_width` at
    `SAG_MIN_THUMB` px wraps onto further rows. Each row is centred in the area.
    """
    data = _graph_data(graph)
    layers: dict[int, list[int]] = {}
    for node in data["nodes"]:
        layers.setdefault(int(node["layer"]), []).append(int(node["id"]))
    parents: dict[int, list[int]] = {}
    for edge in data["edges"]:
        parents.setdefault(int(edge["child"]), []).append(int(edge["parent"]))

    widest = max((len(ids) for ids in layers.values()), default=1)
    thumb = int(min(SAG_MAX_THUMB, (area_width - (widest - 1) * _SAG_HGAP) / widest))
    per_row = widest
    if thumb < SAG_MIN_THUMB:
        thumb = SAG_MIN_THUMB
        per_row = max(1, int((area_width + _SAG_HGAP) // (thumb + _SAG_HGAP)))

    rows: list[list[int]] = []
    centre_x: dict[int, float] = {}
    for layer in sorted(layers):
        ids = layers[layer]
        if layer > 0:
            ids = sorted(
                ids,
                key=lambda n: (
                    float(
                        np.mean([centre_x[p] for p in parents.get(n, []) if p in centre_x] or [0])
                    ),
                    n,
                ),
            )
        for start in range(0, len(ids), per_row):
            row = ids[start : start + per_row]
            used = len(row) * thumb + (len(row) - 1) * _SAG_HGAP
            left = area_left + (area_width - used) / 2
            for k, n in enumerate(row):
                centre_x[n] = left + k * (thumb + _SAG_HGAP) + thumb / 2
            rows.append(row)
    return thumb, rows, centre_x


def sag_figure(
    image: Image.Image, graph: SAGGraph | Mapping[str, Any], *, width: int = 1000
) -> Image.Image:
    """A Structured Attention Graph figure, `width` px wide (about a laptop's page width).

    The original image on the left; to its right the graph, roots on top with thick blue
    borders. Each node shows the image with only its patches (the rest darkened to 10%)
    and, under it, the AI's confidence as a percentage of its confidence on the whole
    image. An arrow leads from a node to each child, which lacks one patch: that patch is
    outlined in red on the child, thicker for a bigger drop in confidence (< 20 points,
    < 60, and more). A node reached from two parents shows both removed patches.
    Layers are the nodes' longest distance from a root; within a layer nodes follow their
    parents' mean position. A layer wider than the figure wraps onto further rows.

    Args:
        image: the explained image (any size; shown square, as the model saw it).
        graph: a `SAGGraph` or its `to_dict()` (e.g. loaded from JSON).
    """
    data = _graph_data(graph)
    grid = int(data["grid"])
    nodes = {int(n["id"]): n for n in data["nodes"]}
    pad, hero, gap = 16, 220, 24
    title_font = ImageFont.load_default(size=19)
    font = ImageFont.load_default(size=14)
    label_font = ImageFont.load_default(size=16)
    area_left = pad + hero + gap
    area_width = width - area_left - pad
    if area_width < 200:
        raise ValueError(f"width must be at least {area_left + pad + 200} px; got {width}")

    thumb, rows, centre_x = sag_layout(data, area_left=area_left, area_width=area_width)
    label_h, vgap = 26, 44

    words = sag_captions().drawn
    header_lines = words["header"]
    header_h = 28 + 19 * (len(header_lines) - 1) + 12
    row_h = thumb + label_h + vgap
    graph_h = len(rows) * row_h - vgap if rows else 60
    height = pad + header_h + max(hero + 30, graph_h) + pad
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, pad), header_lines[0], fill=_TEXT, font=title_font)
    for i, line in enumerate(header_lines[1:]):
        draw.text((pad, pad + 28 + 19 * i), line, fill=_TEXT, font=font)
    top = pad + header_h
    canvas.paste(image.convert("RGB").resize((hero, hero), Image.Resampling.BILINEAR), (pad, top))
    draw.text((pad, top + hero + 6), words["whole"][0], fill=_TEXT, font=font)

    position: dict[int, tuple[int, int]] = {}  # top-left corner of each thumbnail
    row_of: dict[int, int] = {}
    for r, row in enumerate(rows):
        for n in row:
            position[n] = (round(centre_x[n] - thumb / 2), top + r * row_h)
            row_of[n] = r

    if not rows:
        draw.text(
            (area_left, top + 10),
            words["empty"][0],
            fill=_TEXT,
            font=label_font,
        )
        return canvas

    def draw_edge(edge: Mapping[str, Any]) -> None:
        px, py = position[int(edge["parent"])]
        cx, cy = position[int(edge["child"])]
        start = (px + thumb / 2, py + thumb + label_h)
        end = (cx + thumb / 2, cy - 3)
        draw.line([start, end], fill=_SAG_EDGE, width=2)
        _arrow_head(draw, start, end, _SAG_EDGE)

    # An edge to the next row runs through the gap between rows and goes under the pictures;
    # one that skips a row (a wrapped layer, or a node deeper in the DAG) is drawn over them,
    # so it is not mistaken for an edge from the row it crosses.
    skipping = []
    for edge in data["edges"]:
        if row_of[int(edge["child"])] > row_of[int(edge["parent"])] + 1:
            skipping.append(edge)
        else:
            draw_edge(edge)

    removed: dict[int, list[tuple[int, float]]] = {}
    for edge in data["edges"]:
        removed.setdefault(int(edge["child"]), []).append(
            (int(edge["removed"]), float(edge["drop"]))
        )
    for n, node in nodes.items():
        x, y = position[n]
        canvas.paste(sag_node_tile(image, node["patches"], removed.get(n, []), grid, thumb), (x, y))
        if node["is_root"]:
            draw.rectangle(
                [x - 5, y - 5, x + thumb + 4, y + thumb + 4], outline=_SAG_ROOT_BORDER, width=5
            )
        else:
            draw.rectangle([x - 1, y - 1, x + thumb, y + thumb], outline=_SAG_NODE_BORDER, width=1)
        confidence = float(node["confidence"])
        fill = next(colour for bound, colour in _SAG_FILLS if confidence > bound)
        label = f"{confidence:.0f}%"
        text_w = draw.textlength(label, font=label_font)
        box_w = max(text_w + 16, 54)
        bx = x + (thumb - box_w) / 2
        draw.rounded_rectangle(
            [bx, y + thumb + 6, bx + box_w, y + thumb + label_h], radius=4, fill=fill
        )
        draw.text((x + (thumb - text_w) / 2, y + thumb + 7), label, fill=_TEXT, font=label_font)
    for edge in skipping:
        draw_edge(edge)
    return canvas


def sag_node_tile(
    image: Image.Image,
    patches: Sequence[int],
    removed: Sequence[tuple[int, float]],
    grid: int,
    size: int,
) -> Image.Image:
    """One SAG node's picture, `size` px square: the image with only `patches` shown
    (`sag_reveal`) and each `(patch, drop)` its parents removed outlined in red, thicker for
    a bigger drop in confidence (< 20 points, < 60, and more)."""
    tile = sag_reveal(image, patches, grid, size=size)
    draw = ImageDraw.Draw(tile)
    for patch, drop in removed:
        x0, y0, x1, y1 = _patch_box(patch, grid, size)
        line = 2 if abs(drop) < 20 else 4 if abs(drop) < 60 else 6
        draw.rectangle([x0, y0, x1, y1], outline=_SAG_RED, width=line)
    return tile


def _arrow_head(draw: ImageDraw.ImageDraw, start, end, colour, size: float = 8.0) -> None:
    dx, dy = end[0] - start[0], end[1] - start[1]
    length = max(1e-6, float(np.hypot(dx, dy)))
    ux, uy = dx / length, dy / length
    left = (end[0] - size * ux + size * 0.5 * uy, end[1] - size * uy - size * 0.5 * ux)
    right = (end[0] - size * ux - size * 0.5 * uy, end[1] - size * uy + size * 0.5 * ux)
    draw.polygon([end, left, right], fill=colour)


def sag_pair_figure(
    image: Image.Image, graph: SAGGraph | Mapping[str, Any], pair_index: int, *, size: int = 360
) -> Image.Image:
    """A comparative question stimulus: two partial images side by side, labelled A and B.

    Shows ``graph.pairs[pair_index]``: each image reveals only its patches (as `sag_reveal`),
    `size` px square. No confidence is shown: the participant is asked which one the AI is
    more confident on.
    """
    data = _graph_data(graph)
    pairs = data["pairs"]
    if not 0 <= pair_index < len(pairs):
        raise ValueError(f"pair_index must be in [0, {len(pairs) - 1}]; got {pair_index}")
    pair = pairs[pair_index]
    grid = int(data["grid"])
    pad, gap, label_h = 16, 32, 40
    font = ImageFont.load_default(size=28)
    canvas = Image.new("RGB", (2 * size + gap + 2 * pad, pad + label_h + size + pad), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    names = sag_pair_captions().drawn["labels"]
    for k, (name, patches) in enumerate(
        zip(names, (pair["a_patches"], pair["b_patches"]), strict=True)
    ):
        x = pad + k * (size + gap)
        text_w = draw.textlength(name, font=font)
        draw.text((x + (size - text_w) / 2, pad), name, fill=_TEXT, font=font)
        canvas.paste(sag_reveal(image, patches, grid, size=size), (x, pad + label_h))
    return canvas


def sag_pair_png(
    image: Image.Image, graph: SAGGraph | Mapping[str, Any], pair_index: int, *, size: int = 360
) -> bytes:
    """`sag_pair_figure` as PNG bytes: drawn from the stored search and the photo, so a
    participant's page never waits on the model; the pair's confidences stay on the server."""
    buffer = io.BytesIO()
    sag_pair_figure(image, graph, pair_index, size=size).save(buffer, format="PNG")
    return buffer.getvalue()


def sag_pairs_zip(image: Image.Image, graph: SAGGraph | Mapping[str, Any]) -> bytes:
    """Every comparative pair of a search as its A/B picture, `pair-<index>.png` in one
    uncompressed zip: stored once at precompute, so that whichever pair a study draws for an
    item is read, never drawn, when a participant's page asks for it."""
    pairs = _graph_data(graph).get("pairs", [])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for index in range(len(pairs)):
            archive.writestr(pair_member(index), sag_pair_png(image, graph, index))
    return buffer.getvalue()


def pair_member(index: int) -> str:
    return f"pair-{index}.png"


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
