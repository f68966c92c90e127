"""Tests of the heatmap overlay and the raw-map file format (no Django)."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from PIL import Image

from explain_engine.render import heatmap_overlay, load_saliency_npy, save_saliency_npy


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
