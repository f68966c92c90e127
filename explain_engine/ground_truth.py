"""Explanations scored against the synthetic gulls' ground truth. Pure PyTorch; no Django.

The synthetic gulls (`datasets.synthetic_birds`) know where their field marks are and which
sets of marks decide the species (``ground_truth.json``). Each score here compares one
explanation of one image with that:

- saliency: `pointing_game` (the map's peak lies in a mark's box, widened by a tolerance,
  as in Zhang et al.'s pointing game, 15 px at 224; where several pixels share the maximum,
  `maximum_pixels`, the share of them that do) and `mass_share` (the share of the map's total
  inside the marks' boxes, widened the same way), with `area_share` the share of the image
  those boxes cover (what a uniform map would score);
- SAG: `mark_strengths` (how strongly a patch set reveals each mark: the revealed mask,
  upsampled as SAG composites it, averaged over the mark's box), `covered_marks` (the marks
  it reveals at `MARK_SHOWN` or more) and `covered_sets`;
- XNN: `nearest_part` (the part whose box is nearest a concept heatmap's peak, within the
  tolerance), read per fitted model (one per class in per-class mode), and
  `mean_abs_correlation` of concept heatmaps.

Boxes are (x, y, width, height) in the pixels of the generated image; `scale_box` maps them
to the model's input. Everything takes plain tensors and dicts.

Example::

    boxes = {m: scale_box(b, 224, 128) for m, b in truth.mark_boxes[image_id].items()}
    hit = pointing_game(saliency[0], boxes.values(), tolerance=15 * 128 / 224)  # 0.0 to 1.0
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "MARK_SHOWN",
    "POINTING_TOLERANCE_AT_224",
    "area_share",
    "box_mask",
    "covered_marks",
    "covered_sets",
    "format_goals",
    "goals",
    "mark_strengths",
    "mass_share",
    "maximum_pixels",
    "mean_abs_correlation",
    "nearest_part",
    "part_boxes",
    "pointing_game",
    "sag_summary",
    "saliency_summary",
    "scale_box",
    "scaled_boxes",
    "sufficient_cells",
    "xnn_summary",
]

#: The pointing game's tolerance (Zhang et al., "Top-down neural attention by excitation
#: backprop"): 15 pixels at a 224-pixel input, scaled with the input.
POINTING_TOLERANCE_AT_224 = 15.0

#: How strongly (`mark_strengths`) a revealed patch set must show a mark for it to count as
#: shown: at least half its brightness, averaged over the mark's box.
MARK_SHOWN = 0.5

Box = tuple[float, float, float, float]


def scale_box(box: Sequence[float], from_size: int, to_size: int) -> Box:
    """A box in `from_size`-pixel image coordinates in `to_size`-pixel ones (square images)."""
    factor = to_size / from_size
    x, y, w, h = box
    return (x * factor, y * factor, w * factor, h * factor)


def scaled_boxes(
    boxes: Mapping[str, Sequence[float]], from_size: int, to_size: int
) -> dict[str, Box]:
    """`scale_box` of every named box."""
    return {name: scale_box(box, from_size, to_size) for name, box in boxes.items()}


def part_boxes(
    mark_boxes: Mapping[str, Sequence[float]],
    parts: Mapping[str, Sequence[float]],
    mark_parts: Mapping[str, Sequence[str]],
    from_size: int,
    to_size: int,
) -> dict[str, Box]:
    """Where a concept heatmap may peak: the marks' boxes and the other visible CUB parts
    (name -> (x, y)) as zero-size boxes, left and right merged into one name, all scaled
    from `from_size` to `to_size` pixels; `mark_parts` names the CUB parts each mark lies on
    (those are the mark's box)."""
    on_marks = {part for names in mark_parts.values() for part in names}
    boxes = scaled_boxes(mark_boxes, from_size, to_size)
    for part, (x, y) in parts.items():
        if part not in on_marks:
            name = part.removeprefix("left ").removeprefix("right ")
            boxes[name] = scale_box((x, y, 0.0, 0.0), from_size, to_size)
    return boxes


def box_mask(boxes: Iterable[Sequence[float]], size: int, *, pad: float = 0.0) -> Tensor:
    """(size, size) bool: pixels whose centre lies in any box widened by `pad` on each side."""
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    mask = torch.zeros(size, size, dtype=torch.bool)
    for x, y, w, h in boxes:
        rows = (centres >= y - pad) & (centres <= y + h + pad)
        columns = (centres >= x - pad) & (centres <= x + w + pad)
        mask |= rows[:, None] & columns[None, :]
    return mask


def maximum_pixels(saliency: Tensor) -> Tensor:
    """(H, W) bool: the pixels that share the map's maximum, within 1e-6 of its range (a
    clipped mask, bilinearly upsampled, is flat there only up to rounding). A constant map
    is all maximum. Raises ValueError for a map with a NaN or infinite value."""
    saliency = saliency.float()
    if not bool(torch.isfinite(saliency).all()):
        raise ValueError("the map has NaN or infinite values")
    top, bottom = float(saliency.max()), float(saliency.min())
    return saliency >= top - 1e-6 * (top - bottom)


def _peak_distances(saliency: Tensor, boxes: Sequence[Sequence[float]]) -> Tensor:
    """(boxes, tied) distances in pixels from each of the map's `maximum_pixels` (their
    centres, in the order of ``nonzero``) to each (x, y, w, h) box; 0 inside it."""
    tied = maximum_pixels(saliency).nonzero().float().cpu() + 0.5  # (row, col)
    rows, columns = tied[:, 0], tied[:, 1]
    distances = torch.full((len(boxes), len(tied)), float("inf"))
    for i, (x, y, w, h) in enumerate(boxes):
        dx = (x - columns).clamp(min=0) + (columns - (x + w)).clamp(min=0)
        dy = (y - rows).clamp(min=0) + (rows - (y + h)).clamp(min=0)
        distances[i] = (dx * dx + dy * dy).sqrt()
    return distances


def pointing_game(saliency: Tensor, boxes: Iterable[Sequence[float]], *, tolerance: float) -> float:
    """The pointing game's hit for one (H, W) map: 1.0 if its maximum lies within
    `tolerance` pixels of any box, else 0.0.

    Where several pixels share the maximum (`maximum_pixels`), the share of them that lie
    within the tolerance: the expected hit when one of them is drawn at random (a constant
    map scores the share of the image near the boxes, as a random point would). iGOS++'s
    maps are flat at the top: its product of two masks clipped to [0, 1] reaches 0 on several
    cells, hundreds of pixels once upsampled (``benchmarks/ground_truth.py`` prints how
    many); taking the first of them in raster order scored the plateau's top row, often the
    image's top edge.
    """
    distances = _peak_distances(saliency, list(boxes))
    if not len(distances):
        return 0.0
    return float((distances.min(dim=0).values <= tolerance).float().mean())


def mass_share(saliency: Tensor, boxes: Iterable[Sequence[float]], *, pad: float = 0.0) -> float:
    """Share of the (H, W) map's total (non-negative) inside the union of the boxes; 0 for an
    all-zero map."""
    saliency = saliency.clamp(min=0).float()
    total = float(saliency.sum())
    if total <= 0:
        return 0.0
    inside = box_mask(boxes, saliency.shape[-1], pad=pad)
    return float(saliency[inside].sum()) / total


def area_share(boxes: Iterable[Sequence[float]], size: int, *, pad: float = 0.0) -> float:
    """Share of a size x size image inside the union of the boxes (a uniform map's mass share)."""
    return float(box_mask(boxes, size, pad=pad).float().mean())


def mark_strengths(
    patches: Iterable[int], grid: int, mark_boxes: Mapping[str, Sequence[float]], size: int
) -> dict[str, float]:
    """How strongly a revealed patch set shows each mark: the binary grid x grid mask of
    `patches` (patch k = grid * row + col), upsampled bilinearly with ``align_corners=True``
    to size x size as SAG composites it, averaged over the mark's box (0 for an empty box)."""
    mask = torch.zeros(grid * grid)
    mask[list(patches)] = 1.0
    up = F.interpolate(
        mask.view(1, 1, grid, grid), size=(size, size), mode="bilinear", align_corners=True
    )[0, 0]
    strengths = {}
    for name, box in mark_boxes.items():
        inside = box_mask([box], size)
        strengths[name] = float(up[inside].mean()) if inside.any() else 0.0
    return strengths


def covered_marks(
    patches: Iterable[int], grid: int, mark_boxes: Mapping[str, Sequence[float]], size: int
) -> set[str]:
    """The marks a revealed patch set shows: `mark_strengths` of `MARK_SHOWN` or more."""
    return _shown(mark_strengths(patches, grid, mark_boxes, size))


def _shown(strengths: Mapping[str, float]) -> set[str]:
    return {name for name, strength in strengths.items() if strength >= MARK_SHOWN}


def sufficient_cells(
    mark_boxes: Mapping[str, Sequence[float]],
    sufficient_sets: Iterable[Sequence[str]],
    grid: int,
    size: int,
) -> list[list[int]]:
    """For each sufficient set of marks, a small set of grid x grid cells that reveals all
    its marks (`covered_marks`): for each mark, the cells nearest its box's centre (grid
    point k = grid * row + col at the upsampled mask's pixel (col, row) x (size - 1) /
    (grid - 1)) are added one by one until the mark is covered."""
    spacing = (size - 1) / (grid - 1)
    cells_of_sets = []
    for names in sufficient_sets:
        chosen: set[int] = set()
        for name in names:
            x, y, w, h = mark_boxes[name]
            centre = (x + w / 2, y + h / 2)
            nearest = sorted(
                range(grid * grid),
                key=lambda k: (
                    (k % grid * spacing + 0.5 - centre[0]) ** 2
                    + (k // grid * spacing + 0.5 - centre[1]) ** 2
                ),
            )
            for cell in nearest:
                if name in covered_marks(chosen, grid, {name: mark_boxes[name]}, size):
                    break
                chosen.add(cell)
        cells_of_sets.append(sorted(chosen))
    return cells_of_sets


def whole_cells(boxes: Iterable[Sequence[float]], grid: int, size: int) -> list[int]:
    """The grid x grid cells that show every box at full strength: the cells at the corners
    of each grid square a box reaches (inside those squares the bilinearly upsampled mask is
    1). Cells are numbered k = grid * row + col, as in `sufficient_cells`."""
    spacing = (size - 1) / (grid - 1)
    cells: set[int] = set()
    for x, y, w, h in boxes:
        columns = range(max(int(x // spacing), 0), min(int((x + w) // spacing) + 2, grid))
        rows = range(max(int(y // spacing), 0), min(int((y + h) // spacing) + 2, grid))
        cells.update(row * grid + column for row in rows for column in columns)
    return sorted(cells)


def mark_set_keeps(
    mark_boxes: Sequence[Mapping[str, Sequence[float]]],
    sufficient_sets: Sequence[Sequence[str]],
    grid: int,
    size: int,
) -> Tensor:
    """Keep masks (N, len(sufficient_sets), grid, grid), 1 on the `whole_cells` of each set's
    marks in each image's `mark_boxes` (already in pixels of a `size` square image), 0
    elsewhere: what `training.train_classifier`'s ``mark_reveal`` shows of an image."""
    keeps = torch.zeros(len(mark_boxes), len(sufficient_sets), grid * grid)
    for image, boxes in enumerate(mark_boxes):
        for index, names in enumerate(sufficient_sets):
            keeps[image, index, whole_cells([boxes[name] for name in names], grid, size)] = 1.0
    return keeps.view(len(mark_boxes), len(sufficient_sets), grid, grid)


def images_mark_keeps(truth, image_ids: Sequence[int], grid: int, size: int) -> Tensor:
    """`mark_set_keeps` of the images `image_ids` (as in images.txt, in that order) of a
    generated set's ground truth `truth` (`synthetic_birds.GroundTruth`), for a classifier
    that reads them at `size` pixels: its ``minimal_sufficient_sets``, one keep mask each."""
    boxes = [scaled_boxes(truth.mark_boxes[i], truth.image_size, size) for i in image_ids]
    return mark_set_keeps(boxes, truth.minimal_sufficient_sets, grid, size)


def train_mark_keeps(dataset, truth, grid: int, size: int) -> Tensor:
    """`images_mark_keeps` of a `cub.CubDataset`'s train images, in the order of its
    ``labelled_items()``: what ``train_classifier``'s ``mark_keeps`` takes."""
    train_ids = [image.image_id for image in dataset.images if image.is_train]
    return images_mark_keeps(truth, train_ids, grid, size)


def covered_sets(
    covered: set[str], sufficient_sets: Iterable[Sequence[str]]
) -> list[tuple[str, ...]]:
    """The sufficient sets of marks all of whose marks are in `covered`."""
    return [tuple(names) for names in sufficient_sets if set(names) <= covered]


def nearest_part(
    saliency: Tensor, part_boxes: Mapping[str, Sequence[float]], *, tolerance: float
) -> str | None:
    """The part whose box is nearest the (H, W) map's peak if within `tolerance` pixels
    (ties: the first in `part_boxes` order), else None.

    Where several pixels share the maximum (`maximum_pixels`), each votes so, and the most
    votes win (None among them: most of the top lies near no part; a constant map's does),
    as `pointing_game` scores a flat top by all of its pixels."""
    names = list(part_boxes)
    if not names:
        return None
    distances = _peak_distances(saliency, [part_boxes[n] for n in names])
    nearest = distances.argmin(dim=0)  # the first part on equal distances
    within = distances.min(dim=0).values <= tolerance
    votes = torch.bincount(torch.where(within, nearest, len(names)), minlength=len(names) + 1)
    winner = int(votes.argmax())  # the first on equal votes
    return names[winner] if winner < len(names) else None


def mean_abs_correlation(heatmaps: Tensor) -> float:
    """Mean |Pearson correlation| over the pairs of (k, H, W) maps of one image; a constant
    map correlates 0 with everything."""
    flat = heatmaps.flatten(1).double()
    flat = flat - flat.mean(dim=1, keepdim=True)
    norms = flat.norm(dim=1)
    values = []
    for i, j in itertools.combinations(range(flat.shape[0]), 2):
        if norms[i] == 0 or norms[j] == 0:
            values.append(0.0)
        else:
            values.append(abs(float(flat[i] @ flat[j] / (norms[i] * norms[j]))))
    return sum(values) / len(values) if values else 0.0


# ------------------------------------------------------------------ summaries and goals


def saliency_summary(
    maps: Tensor, mark_boxes: Sequence[Mapping[str, Sequence[float]]], *, tolerance: float
) -> dict[str, float]:
    """Pointing game and mass share of (N, H, W) maps against each image's mark boxes (in
    the maps' pixels): ``pointing`` (mean `pointing_game` hit), ``mass`` (mean share of the map
    inside the marks' boxes widened by `tolerance`), ``area`` (mean share of the image those
    widened boxes cover), ``images``."""
    if len(maps) != len(mark_boxes) or not len(maps):
        raise ValueError(f"need one box set per map, got {len(maps)} maps, {len(mark_boxes)}")
    size = maps.shape[-1]
    hits = [
        pointing_game(m, boxes.values(), tolerance=tolerance)
        for m, boxes in zip(maps, mark_boxes, strict=True)
    ]
    masses = [
        mass_share(m, boxes.values(), pad=tolerance)
        for m, boxes in zip(maps, mark_boxes, strict=True)
    ]
    areas = [area_share(boxes.values(), size, pad=tolerance) for boxes in mark_boxes]
    return {
        "images": len(hits),
        "pointing": sum(hits) / len(hits),
        "mass": sum(masses) / len(masses),
        "area": sum(areas) / len(areas),
    }


def sag_summary(
    searches: Sequence[tuple[Sequence[Sequence[int]], int]],
    mark_boxes: Sequence[Mapping[str, Sequence[float]]],
    sufficient_sets: Sequence[Sequence[Sequence[str]]],
    *,
    grid: int,
    size: int,
) -> dict[str, float | None]:
    """SAG searches against the marks. Each search is (its MSEs' patch lists, its number of
    diverse roots); `sufficient_sets` gives, per image, the sets of marks that decide the
    explained species. ``median_size`` (patches, over all MSEs), ``diverse`` (share of images
    with two or more diverse roots), ``covering`` (share of MSEs revealing every mark of at
    least one sufficient set, `covered_marks`), ``uncovered_strength`` (over the MSEs that
    reveal no set, the median strength of the weakest mark of the set they show best,
    `mark_strengths`: how near they come; None when every MSE covers a set),
    ``uncovered_marks`` (over those MSEs, how often each mark is that weakest mark, most
    often first), ``both_sets``
    (share of images whose MSEs, together, cover two different sufficient sets), ``found``
    (share of images with an MSE), ``images``, ``mses``."""
    if not len(searches) == len(mark_boxes) == len(sufficient_sets) or not searches:
        raise ValueError("need one box set and one list of sets per search, and a search")
    sizes, covering, both, short = [], [], [], []
    short_marks: Counter[str] = Counter()
    for (mses, _roots), boxes, sets_of_image in zip(
        searches, mark_boxes, sufficient_sets, strict=True
    ):
        sets_seen: set[tuple[str, ...]] = set()
        for patches in mses:
            sizes.append(len(patches))
            strengths = mark_strengths(patches, grid, boxes, size)
            sets = covered_sets(_shown(strengths), sets_of_image)
            covering.append(bool(sets))
            sets_seen.update(sets)
            if not sets:
                best = max(
                    sets_of_image,
                    key=lambda names: min(strengths.get(n, 0.0) for n in names),
                    default=(),
                )
                weakest = min(best, key=lambda n: strengths.get(n, 0.0), default=None)
                short.append(strengths.get(weakest, 0.0))
                if weakest is not None:
                    short_marks[weakest] += 1
        both.append(len(sets_seen) >= 2)
    n = len(searches)
    return {
        "images": n,
        "mses": len(sizes),
        "found": sum(bool(mses) for mses, _ in searches) / n,
        "median_size": float(torch.tensor(sizes, dtype=torch.float32).median()) if sizes else 49.0,
        "diverse": sum(roots >= 2 for _, roots in searches) / n,
        "covering": sum(covering) / len(covering) if covering else 0.0,
        "uncovered_strength": float(torch.tensor(short).median()) if short else None,
        "uncovered_marks": dict(short_marks.most_common()),
        "both_sets": sum(both) / n,
    }


def xnn_summary(
    heatmaps: Tensor,
    part_boxes: Sequence[Mapping[str, Sequence[float]]],
    *,
    r2: float | None,
    tolerance: float,
    models: Sequence[object] | None = None,
    present: Tensor | None = None,
) -> dict:
    """XNN concept heatmaps (N, k, H, W) against each image's part boxes (marks and CUB part
    points as zero-size boxes). `models` names, per image, the SRAE whose concepts its maps
    show (the explained class in per-class mode, where concept j of one class has nothing to
    do with concept j of another); None: one model for all. `present` (N, k) bool says which
    concepts each image holds (x-feature above 0, `XNNResult.present`); None: all. The map of
    a concept absent from an image is not scored: it shows where that concept would be, not
    where the AI found it (an x-feature is a ReLU, exactly 0 where absent).

    Per model, one entry per concept: ``on_part`` (model -> over the model's images holding
    the concept, the share whose peak is on a part; None where none holds it),
    ``models_parts`` (model -> the part the concept peaks on most often over those images;
    None where never on a part or never held) and ``models_present`` (model -> how many of
    its concepts some image of it holds); ``distinct_parts`` (the fewest distinct parts any
    model's concepts cover); ``correlation`` (mean over the images holding two or more
    concepts of the mean pairwise |correlation| of their maps; None where none does), ``r2``,
    ``images``."""
    if len(heatmaps) != len(part_boxes) or not len(heatmaps):
        raise ValueError("need one part box set per image, and at least one image")
    if models is None:
        models = ["all"] * len(heatmaps)
    if len(models) != len(heatmaps):
        raise ValueError(f"need one model per image, got {len(models)} for {len(heatmaps)}")
    k = heatmaps.shape[1]
    if present is None:
        present = torch.ones(len(heatmaps), k, dtype=torch.bool)
    if tuple(present.shape) != (len(heatmaps), k):
        raise ValueError(f"present must be ({len(heatmaps)}, {k}), got {tuple(present.shape)}")
    present = present.bool()
    held = present.tolist()
    found = [
        [
            nearest_part(maps[concept], boxes, tolerance=tolerance) if row[concept] else None
            for concept in range(k)
        ]
        for maps, boxes, row in zip(heatmaps, part_boxes, held, strict=True)
    ]
    # correlation among the maps an image shows: those of the concepts it holds
    shown = [(maps, row) for maps, row in zip(heatmaps, present, strict=True) if row.sum() >= 2]
    on_part: dict[str, list[float | None]] = {}
    models_parts: dict[str, list[str | None]] = {}
    models_present: dict[str, int] = {}
    for model in dict.fromkeys(models):
        mine = [i for i, m in enumerate(models) if m == model]
        modal, shares = [], []
        for concept in range(k):
            holding = [i for i in mine if held[i][concept]]
            named = [found[i][concept] for i in holding if found[i][concept] is not None]
            modal.append(max(dict.fromkeys(named), key=named.count) if named else None)
            shares.append(len(named) / len(holding) if holding else None)
        models_parts[str(model)] = modal
        on_part[str(model)] = shares
        models_present[str(model)] = sum(share is not None for share in shares)
    return {
        "images": len(heatmaps),
        "r2": r2,
        "on_part": on_part,
        "models_parts": models_parts,
        "models_present": models_present,
        "distinct_parts": min(
            len({name for name in parts if name is not None}) for parts in models_parts.values()
        ),
        "correlation": (
            sum(mean_abs_correlation(maps[holds]) for maps, holds in shown) / len(shown)
            if shown
            else None
        ),
    }


def goals(
    saliency: Mapping[str, Mapping[str, float]] | None = None,
    sag: Mapping[str, float] | None = None,
    xnn: Mapping | None = None,
) -> list[tuple[str, bool, str]]:
    """Issue 16's ground-truth goals as (goal, holds, figure) rows, for the summaries given.

    `saliency` maps method slug -> `saliency_summary`; the iGOS++ goals need "igospp" there
    and compare with "gradcam" and "integrated_gradients" where present."""
    rows: list[tuple[str, bool, str]] = []
    if saliency and "igospp" in saliency:
        ours = saliency["igospp"]
        rows.append(
            (
                "iGOS++ pointing game >= 90%",
                ours["pointing"] >= 0.9,
                f"{ours['pointing']:.0%}",
            )
        )
        for other in ("gradcam", "integrated_gradients"):
            if other in saliency:
                theirs = saliency[other]
                for key, label in (("pointing", "pointing game"), ("mass", "mass share")):
                    rows.append(
                        (
                            f"iGOS++ {label} ahead of {other}",
                            ours[key] > theirs[key],
                            f"{ours[key]:.0%} vs {theirs[key]:.0%}",
                        )
                    )
    if sag:
        rows += [
            (
                "SAG median MSE size <= 6 of 49",
                sag["median_size"] <= 6,
                f"{sag['median_size']:.0f} ({sag['mses']} MSEs)",
            ),
            (
                "SAG >= 2 diverse MSEs on >= 40% of images",
                sag["diverse"] >= 0.4,
                f"{sag['diverse']:.0%} of {sag['images']}",
            ),
            (
                "SAG each MSE covers a sufficient set of marks",
                sag["mses"] > 0 and sag["covering"] >= 1.0,
                f"{sag['covering']:.0%} of MSEs",
            ),
        ]
    if xnn:
        r2, correlation = xnn["r2"], xnn["correlation"]
        scored = [s for shares in xnn["on_part"].values() for s in shares if s is not None]
        rows += [
            (
                "XNN R^2 >= 0.9 on the test split",
                r2 is not None and r2 >= 0.9,
                f"{r2:.3f}" if r2 is not None else "none",
            ),
            (
                "XNN each concept's heatmap peaks on a part (most images holding it)",
                bool(scored) and min(scored) > 0.5,
                f"{sum(s > 0.5 for s in scored)} of the {len(scored)} concepts held"
                + (f", lowest {min(scored):.0%}" if scored else ""),
            ),
            (
                "XNN each model's concepts cover >= 3 distinct parts",
                xnn["distinct_parts"] >= 3,
                f"fewest {xnn['distinct_parts']}; "
                + "; ".join(
                    f"{model}: {len({p for p in parts if p is not None})} "
                    f"({xnn['models_present'][model]} of {len(parts)} concepts ever present)"
                    for model, parts in xnn["models_parts"].items()
                ),
            ),
            (
                "XNN mean pairwise |correlation| of heatmaps <= 0.5",
                correlation is not None and correlation <= 0.5,
                "no image holds two concepts" if correlation is None else f"{correlation:.2f}",
            ),
        ]
    return rows


def format_goals(rows: Sequence[tuple[str, bool, str]]) -> list[str]:
    """One line per goal: 'holds' or 'fails', the goal, the figure."""
    return [f"{'holds' if holds else 'fails':<6} {goal}: {figure}" for goal, holds, figure in rows]
