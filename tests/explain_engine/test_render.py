"""Tests of the heatmap overlay, the SAG figures and the raw-map file format (no Django)."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from PIL import Image

from explain_engine.render import (
    SAG_MIN_THUMB,
    heatmap_overlay,
    load_saliency_npy,
    sag_figure,
    sag_layout,
    sag_pair_figure,
    sag_reveal,
    save_saliency_npy,
)


def make_image(width: int = 224, height: int = 160) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def left_hot(height: int = 160, width: int = 224) -> np.ndarray:
    """Saliency 1 on the left quarter, 0 on the right half."""
    sal = np.zeros((height, width), dtype=np.float32)
    sal[:, : width // 4] = 1.0
    return sal


def test_output_size_without_legend_is_the_image_size():
    out = heatmap_overlay(make_image(), left_hot(), legend=False)
    assert out.size == (224, 160)
    assert out.mode == "RGB"


def test_legend_adds_height_only():
    plain = heatmap_overlay(make_image(), left_hot(), legend=False)
    with_legend = heatmap_overlay(make_image(), left_hot())
    assert with_legend.width == plain.width
    assert with_legend.height > plain.height + 20  # a bar and a line of text
    top = np.asarray(with_legend)[: plain.height]
    assert np.array_equal(top, np.asarray(plain))


def test_legend_shows_the_colour_ramp_and_labels():
    out = np.asarray(heatmap_overlay(make_image(), left_hot())).astype(int)
    strip = out[160:]
    jet = matplotlib.colormaps["jet"]
    low, high = (np.rint(np.asarray(jet(v)[:3]) * 255) for v in (0.0, 1.0))
    bar_rows = [r for r in range(strip.shape[0]) if (np.abs(strip[r] - low).sum(1) < 10).any()]
    assert bar_rows, "no low-end colour in the legend"
    row = strip[bar_rows[len(bar_rows) // 2]]
    non_white = np.flatnonzero((row != 255).any(axis=1))
    assert np.abs(row[non_white[0]] - low).sum() < 10  # blue on the left ...
    assert np.abs(row[non_white[-1]] - high).sum() < 10  # ... dark red on the right
    text = strip[max(bar_rows) + 1 :]
    dark = (text.max(axis=2) < 120).sum()
    assert dark > 50, "no label text under the bar"
    left_text = (text[:, :100].max(axis=2) < 120).sum()
    right_text = (text[:, 124:].max(axis=2) < 120).sum()
    assert left_text > 20 and right_text > 20  # "less important" ... "more important"


def test_cold_pixels_show_the_original_image():
    image = make_image()
    out = np.asarray(heatmap_overlay(image, left_hot(), legend=False))
    original = np.asarray(image)
    assert np.array_equal(out[:, 112:], original[:, 112:])


def test_hot_pixels_are_the_colormap_colour():
    image = make_image()
    out = np.asarray(heatmap_overlay(image, left_hot(), legend=False)).astype(int)
    hot = np.rint(np.asarray(matplotlib.colormaps["jet"](1.0)[:3]) * 255).astype(int)
    region = out[:, : 224 // 4 - 1]
    assert (np.abs(region - hot).max(axis=2) <= 1).all()
    assert not np.array_equal(region, np.asarray(image)[:, : 224 // 4 - 1])


def test_blend_weight_is_saliency_to_the_power():
    image = Image.new("RGB", (8, 8), (255, 255, 255))
    sal = np.full((8, 8), 0.5, dtype=np.float32)
    out = np.asarray(heatmap_overlay(image, sal, alpha_power=0.8, legend=False))[0, 0]
    colour = np.asarray(matplotlib.colormaps["jet"](0.5)[:3]) * 255
    weight = 0.5**0.8
    expected = np.rint(255 * (1 - weight) + colour * weight)
    assert np.array_equal(out, expected.astype(np.uint8))


def test_saliency_of_another_size_is_resized():
    sal = np.zeros((7, 7), dtype=np.float32)
    sal[0, 0] = 1.0
    image = make_image()
    out = np.asarray(heatmap_overlay(image, sal, legend=False))
    assert out.shape == (160, 224, 3)
    assert not np.array_equal(out[0, 0], np.asarray(image)[0, 0])  # hot corner
    assert np.array_equal(out[-1, -1], np.asarray(image)[-1, -1])  # cold corner


def test_grayscale_image_gives_rgb_and_narrow_image_gets_a_legend():
    image = Image.new("L", (64, 64), 128)
    out = heatmap_overlay(image, np.zeros((64, 64), dtype=np.float32))
    assert out.mode == "RGB"
    assert out.width == 64 and out.height > 64
    assert np.array_equal(np.asarray(out)[:64], np.full((64, 64, 3), 128, dtype=np.uint8))


@pytest.mark.parametrize(
    ("saliency", "message"),
    [
        (np.zeros((2, 4, 4)), "2-D"),
        (np.full((4, 4), np.nan), "NaN"),
        (np.full((4, 4), 1.5), r"\[0, 1\]"),
        (np.full((4, 4), -0.5), r"\[0, 1\]"),
    ],
)
def test_bad_saliency_raises(saliency, message):
    with pytest.raises(ValueError, match=message):
        heatmap_overlay(make_image(), saliency)


def test_bad_alpha_power_raises():
    with pytest.raises(ValueError, match="alpha_power"):
        heatmap_overlay(make_image(), left_hot(), alpha_power=0)


def test_saliency_npy_round_trip(tmp_path):
    sal = np.random.default_rng(1).random((5, 7))
    buffer = io.BytesIO()
    save_saliency_npy(buffer, sal)
    buffer.seek(0)
    loaded = load_saliency_npy(buffer)
    assert loaded.dtype == np.float32
    assert np.array_equal(loaded, sal.astype(np.float32))

    path = tmp_path / "map.npy"
    save_saliency_npy(path, sal)
    assert np.array_equal(load_saliency_npy(path), sal.astype(np.float32))
    with pytest.raises(ValueError, match="2-D"):
        save_saliency_npy(tmp_path / "bad.npy", np.zeros((1, 5, 7)))


# ---------------------------------------------------------------------------- SAG


def sag_graph(children: int = 3) -> dict:
    """A root revealing patches 0..children with `children` children, each one patch less."""
    root = {
        "id": 0,
        "patches": list(range(children + 1)),
        "probability": 0.9,
        "confidence": 95.0,
        "is_root": True,
        "layer": 0,
    }
    nodes = [root]
    edges = []
    for i in range(children):
        confidence = 5.0 + 80.0 * i / max(1, children - 1)
        nodes.append(
            {
                "id": i + 1,
                "patches": [p for p in root["patches"] if p != i],
                "probability": confidence * 0.9 / 95,
                "confidence": confidence,
                "is_root": False,
                "layer": 1,
            }
        )
        edges.append({"parent": 0, "child": i + 1, "removed": i, "drop": 95.0 - confidence})
    pair = {
        "a_node": 1,
        "b_node": 0,
        "a_patches": nodes[1]["patches"],
        "b_patches": root["patches"],
        "a_probability": nodes[1]["probability"],
        "b_probability": 0.9,
        "gap": 90.0,
        "answer": "B",
        "kind": "edge",
    }
    return {"grid": 7, "roots": [0], "nodes": nodes, "edges": edges, "pairs": [pair]}


def test_sag_reveal_shows_what_the_model_saw_at_ten_percent_elsewhere():
    import torch
    import torch.nn.functional as F

    image = make_image(70, 70)
    patches = [0, 9, 24, 48]
    shown = np.asarray(sag_reveal(image, patches, 7)).astype(float)
    cells = torch.zeros(49)
    cells[patches] = 1.0
    up = F.interpolate(cells.view(1, 1, 7, 7), size=(70, 70), mode="bilinear", align_corners=True)
    expected = np.asarray(image).astype(float) * (0.1 + 0.9 * up[0, 0].numpy()[..., None])
    assert np.abs(shown - expected).max() <= 0.5 + 1e-6  # rounding only
    assert sag_reveal(image, [], 7, size=50).size == (50, 50)
    with pytest.raises(ValueError, match=r"patches must lie in \[0, 48\]"):
        sag_reveal(image, [49], 7)


@pytest.mark.parametrize(("children", "rows"), [(3, 2), (12, 3), (30, 6)])
def test_sag_figure_fits_a_laptop_with_legible_thumbnails(children, rows):
    graph = sag_graph(children)
    figure = sag_figure(make_image(), graph)
    assert figure.width == 1000 and figure.mode == "RGB"
    area_left, area_width = 16 + 220 + 24, 1000 - (16 + 220 + 24) - 16
    thumb, layout, centres = sag_layout(graph, area_left=area_left, area_width=area_width)
    assert thumb >= SAG_MIN_THUMB
    assert len(layout) == rows  # a wide layer wraps instead of shrinking
    assert sorted(n for row in layout for n in row) == list(range(children + 1))
    for row in layout:
        xs = [centres[n] for n in row]
        assert min(xs) - thumb / 2 >= area_left and max(xs) + thumb / 2 <= area_left + area_width
        assert all(b - a >= thumb for a, b in zip(xs, xs[1:], strict=False))
    pixels = np.asarray(figure)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1000  # pictures, not a blank page
    assert figure.height == 16 + 78 + rows * (thumb + 26 + 44) - 44 + 16


def test_sag_figure_marks_roots_removed_patches_and_confidences():
    graph = sag_graph(3)
    area_left, area_width = 260, 724
    thumb, layout, centres = sag_layout(graph, area_left=area_left, area_width=area_width)
    assert thumb == 150
    figure = np.asarray(sag_figure(make_image(), graph)).astype(int)
    top = 16 + 28 + 19 * 2 + 12

    def tile(node: int, row: int) -> np.ndarray:
        x = round(centres[node] - thumb / 2)
        y = top + row * (thumb + 26 + 44)
        return figure[y : y + thumb, x : x + thumb]

    def red(region: np.ndarray) -> int:
        return int(((region[..., 0] > 200) & (region[..., 1] < 40) & (region[..., 2] < 40)).sum())

    assert red(tile(0, 0)) == 0  # the root lost nothing
    for i in range(3):  # each child outlines its removed patch i, the top-left cells
        child = tile(i + 1, 1)
        step = (thumb - 1) / 6
        assert red(child[:, : round((i + 1) * step)]) > 20
        assert red(child[:, round((i + 2) * step) :]) == 0
    x0 = round(centres[0] - thumb / 2)
    border = figure[top - 5 : top, x0 : x0 + thumb]
    assert (np.abs(border - np.array([25, 80, 200])).sum(axis=2) < 10).mean() > 0.9

    # The confidence label sits under its node: changing it changes only that strip.
    changed = sag_graph(3)
    changed["nodes"][2]["confidence"] = 12.0
    other = np.asarray(sag_figure(make_image(), changed)).astype(int)
    rows_, cols = np.nonzero((other != figure).any(axis=2))
    assert len(rows_) > 20
    y_label = top + thumb + 26 + 44 + thumb
    assert rows_.min() >= y_label and rows_.max() <= y_label + 26
    assert cols.min() >= centres[2] - thumb / 2 and cols.max() <= centres[2] + thumb / 2


def test_sag_figure_without_nodes_says_so():
    graph = {"grid": 7, "roots": [], "nodes": [], "edges": [], "pairs": []}
    figure = np.asarray(sag_figure(make_image(), graph))
    assert figure.shape[1] == 1000
    assert (figure[94:, 260:].max(axis=2) < 120).sum() > 100  # the message, under the header


def test_sag_pair_figure_shows_two_labelled_images_and_no_confidence():
    graph = sag_graph(3)
    image = make_image()
    figure = sag_pair_figure(image, graph, 0)
    assert figure.size == (2 * 360 + 32 + 32, 16 + 40 + 360 + 16)
    pixels = np.asarray(figure).astype(int)
    left = np.asarray(sag_reveal(image, graph["pairs"][0]["a_patches"], 7, size=360))
    right = np.asarray(sag_reveal(image, graph["pairs"][0]["b_patches"], 7, size=360))
    assert np.array_equal(pixels[56:416, 16:376], left)
    assert np.array_equal(pixels[56:416, 408:768], right)
    # Above the images: one letter over each, nothing else ("A", "B", no percentages).
    strip = pixels[:56].max(axis=2) < 120
    cols = np.flatnonzero(strip.any(axis=0))
    assert cols.min() > 16 + 150 and cols.max() < 408 + 210
    assert not strip[:, 16 + 210 : 408 + 150].any()
    # Nothing on the figure depends on the model's probabilities.
    hidden = sag_graph(3)
    hidden["pairs"][0].update(a_probability=0.99, b_probability=0.01, gap=98.0, answer="A")
    for node in hidden["nodes"]:
        node["confidence"] = 50.0
    assert np.array_equal(np.asarray(sag_pair_figure(image, hidden, 0)), pixels)
    with pytest.raises(ValueError, match=r"pair_index must be in \[0, 0\]"):
        sag_pair_figure(image, graph, 1)


def test_sag_edges_that_skip_a_row_are_drawn_over_the_pictures():
    graph = sag_graph(9)  # 9 children: 6 on the first row, 3 wrapped onto a second
    thumb, layout, centres = sag_layout(graph, area_left=260, area_width=724)
    assert [len(row) for row in layout] == [1, 6, 3]
    figure = np.asarray(sag_figure(make_image(), graph)).astype(int)
    top, row_h = 16 + 78, thumb + 26 + 44
    grey = 0
    for child in layout[2]:
        start = np.array([centres[0], top + thumb + 26])
        end = np.array([centres[child], top + 2 * row_h - 3])
        for t in np.linspace(0, 1, 400):
            x, y = np.rint(start + t * (end - start)).astype(int)
            inside = any(abs(x - centres[n]) < thumb / 2 - 2 for n in layout[1])
            if inside and top + row_h <= y < top + row_h + thumb:  # on a first-row picture
                grey += int(np.abs(figure[y, x] - 120).sum() < 30)
    assert grey > 50
