"""explain_engine.ground_truth: explanations scored against known field-mark locations."""

import subprocess
import sys

import pytest
import torch

from explain_engine import ground_truth as gt

SIZE = 70  # a 7 x 7 grid's points fall on pixels 0, 11.5, 23, ... (align_corners)


def map_with_peak(x: int, y: int, size: int = SIZE) -> torch.Tensor:
    saliency = torch.zeros(size, size)
    saliency[y, x] = 1.0
    return saliency


def test_pointing_game_hits_a_box_within_the_tolerance_only():
    box = (20.0, 30.0, 10.0, 5.0)
    assert gt.pointing_game(map_with_peak(25, 32), [box], tolerance=0.0) == 1.0
    assert gt.pointing_game(map_with_peak(33, 32), [box], tolerance=3.5) == 1.0  # centre 33.5
    assert gt.pointing_game(map_with_peak(33, 32), [box], tolerance=3.4) == 0.0
    assert gt.pointing_game(map_with_peak(60, 60), [box], tolerance=5.0) == 0.0
    two = [box, (58.0, 58.0, 4.0, 4.0)]
    assert gt.pointing_game(map_with_peak(60, 60), two, tolerance=0) == 1.0
    broken = map_with_peak(25, 32)
    broken[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        gt.pointing_game(broken, [box], tolerance=0.0)


def test_pointing_game_scores_a_tied_maximum_by_the_share_of_it_near_a_box():
    box = (20.0, 30.0, 10.0, 5.0)
    # A plateau of 4 tied pixels: the first in raster order (row 2) is far from the box, the
    # three below it are inside; taking the first would score a miss.
    plateau = torch.zeros(SIZE, SIZE)
    plateau[2, 25] = plateau[31, 22] = plateau[31, 24] = plateau[32, 26] = 0.7
    assert gt.pointing_game(plateau, [box], tolerance=0.0) == 0.75
    # Values within 1e-6 of the range count as tied (bilinear upsampling of a clipped mask);
    # further below, they do not.
    plateau[31, 22] = 0.7 - 5e-7
    assert gt.pointing_game(plateau, [box], tolerance=0.0) == 0.75
    plateau[31, 22] = 0.7 - 1e-5
    assert gt.pointing_game(plateau, [box], tolerance=0.0) == pytest.approx(2 / 3)
    plateau[31, 22] = 0.7
    # A constant map is all ties: it scores the share of the image near the boxes.
    constant = torch.ones(SIZE, SIZE)
    assert gt.pointing_game(constant, [box], tolerance=0.0) == pytest.approx(
        gt.area_share([box], SIZE)
    )
    summary = gt.saliency_summary(
        torch.stack([plateau, map_with_peak(25, 32)]), [{"bill": box}] * 2, tolerance=0.0
    )
    assert summary["pointing"] == pytest.approx((0.75 + 1.0) / 2)


def test_mass_share_of_a_uniform_map_is_the_area_share_and_of_a_peak_inside_is_one():
    boxes = [(0.0, 0.0, 10.0, 10.0), (30.0, 30.0, 20.0, 10.0)]
    uniform = torch.ones(SIZE, SIZE)
    assert gt.mass_share(uniform, boxes) == pytest.approx(gt.area_share(boxes, SIZE))
    assert gt.area_share(boxes, SIZE) == pytest.approx((10 * 10 + 20 * 10) / SIZE**2)
    assert gt.mass_share(map_with_peak(35, 35), boxes) == 1.0
    assert gt.mass_share(map_with_peak(65, 5), boxes) == 0.0
    assert gt.mass_share(torch.zeros(SIZE, SIZE), boxes) == 0.0
    # Widening the boxes by a pad takes in a peak just outside.
    assert gt.mass_share(map_with_peak(12, 5), boxes, pad=3.0) == 1.0


def test_covered_marks_needs_the_mark_under_revealed_patches():
    # Patch 8 = row 1, col 1: its grid point sits at pixel (11.5, 11.5).
    marks = {"near": (9.0, 9.0, 5.0, 5.0), "far": (55.0, 55.0, 5.0, 5.0)}
    assert gt.covered_marks([8], 7, marks, SIZE) == {"near"}
    assert gt.covered_marks([8, 40], 7, marks, SIZE) == {"near", "far"}  # 40: row 5, col 5
    assert gt.covered_marks([], 7, marks, SIZE) == set()
    # A neighbouring patch alone shows the mark at less than half strength.
    assert gt.covered_marks([9], 7, marks, SIZE) == set()
    strengths = gt.mark_strengths([9], 7, marks, SIZE)
    assert 0.0 < strengths["near"] < 0.5 and strengths["far"] == 0.0
    assert gt.mark_strengths([8], 7, marks, SIZE)["near"] >= 0.5
    sets = [("near", "far"), ("other",)]
    assert gt.covered_sets({"near", "far"}, sets) == [("near", "far")]
    assert gt.covered_sets({"near"}, sets) == []


def test_nearest_part_and_mean_abs_correlation():
    parts = {"bill": (10.0, 10.0, 4.0, 4.0), "legs": (40.0, 40.0, 0.0, 0.0)}
    assert gt.nearest_part(map_with_peak(12, 12), parts, tolerance=1.0) == "bill"
    assert gt.nearest_part(map_with_peak(42, 41), parts, tolerance=3.0) == "legs"
    assert gt.nearest_part(map_with_peak(65, 5), parts, tolerance=3.0) is None
    # A flat top votes: three tied pixels on the legs, one on the bill; a constant map's
    # top lies mostly near no part.
    flat = torch.zeros(SIZE, SIZE)
    flat[12, 12] = flat[40, 40] = flat[41, 40] = flat[40, 41] = 1.0
    assert gt.nearest_part(flat, parts, tolerance=2.0) == "legs"
    assert gt.nearest_part(torch.ones(SIZE, SIZE), parts, tolerance=3.0) is None

    a = torch.rand(SIZE, SIZE)
    assert gt.mean_abs_correlation(torch.stack([a, a, 2 * a + 1])) == pytest.approx(1.0)
    assert gt.mean_abs_correlation(torch.stack([a, -a])) == pytest.approx(1.0)
    assert gt.mean_abs_correlation(torch.stack([a, torch.ones(SIZE, SIZE)])) == 0.0
    b = torch.zeros(SIZE, SIZE)
    b[:, : SIZE // 2] = 1.0
    c = torch.zeros(SIZE, SIZE)
    c[: SIZE // 2, :] = 1.0
    assert gt.mean_abs_correlation(torch.stack([b, c])) == pytest.approx(0.0, abs=1e-9)


def test_sag_summary_counts_sizes_diversity_and_sets():
    marks = {"a": (9.0, 9.0, 5.0, 5.0), "b": (55.0, 55.0, 5.0, 5.0), "c": (9.0, 55.0, 5.0, 5.0)}
    sets = [("a", "b"), ("c",)]
    searches = [
        ([[8, 40], [36]], 2),  # both sets: {a, b} and {c} (36: row 5, col 1)
        ([[8, 9, 10, 11]], 1),  # only a
    ]
    # The second image's species is told by mark a alone: its MSE covers a set.
    summary = gt.sag_summary(searches, [marks, marks], [sets, [("a",)]], grid=7, size=SIZE)
    assert summary["mses"] == 3 and summary["images"] == 2
    assert summary["median_size"] == 2.0
    assert summary["diverse"] == 0.5
    assert summary["covering"] == 1.0
    assert summary["uncovered_strength"] is None and summary["uncovered_marks"] == {}
    assert summary["both_sets"] == 0.5
    rows = {goal: holds for goal, holds, _ in gt.goals(sag=summary)}
    assert rows["SAG median MSE size <= 6 of 49"]
    assert rows["SAG >= 2 diverse MSEs on >= 40% of images"]
    assert rows["SAG each MSE covers a sufficient set of marks"]

    # Where a alone does not decide the species, that MSE covers no set.
    summary = gt.sag_summary(searches, [marks, marks], [sets, sets], grid=7, size=SIZE)
    assert summary["covering"] == pytest.approx(2 / 3)
    assert summary["uncovered_strength"] == 0.0  # b and c are not shown at all
    # With c shown faintly (patch 29, a row above it), the MSE comes that near to a set.
    near = [([[8, 40]], 1), ([[8, 9, 29]], 1)]
    summary = gt.sag_summary(near, [marks, marks], [sets, sets], grid=7, size=SIZE)
    c = gt.mark_strengths([8, 9, 29], 7, marks, SIZE)["c"]
    assert 0.0 < c < 0.5 and summary["uncovered_strength"] == pytest.approx(c)
    assert summary["uncovered_marks"] == {"c": 1}  # a is shown; c falls short
    rows = {goal: holds for goal, holds, _ in gt.goals(sag=summary)}
    assert not rows["SAG each MSE covers a sufficient set of marks"]


def test_saliency_goals_compare_igospp_with_gradcam_and_integrated_gradients():
    boxes = [{"bill": (10.0, 10.0, 4.0, 4.0)}] * 2
    on = torch.stack([map_with_peak(12, 12)] * 2)
    off = torch.stack([map_with_peak(60, 60), map_with_peak(12, 12)])
    summaries = {
        "igospp": gt.saliency_summary(on, boxes, tolerance=1.0),
        "gradcam": gt.saliency_summary(off, boxes, tolerance=1.0),
    }
    assert summaries["igospp"]["pointing"] == 1.0 and summaries["gradcam"]["pointing"] == 0.5
    rows = {goal: holds for goal, holds, _ in gt.goals(saliency=summaries)}
    assert rows == {
        "iGOS++ pointing game >= 90%": True,
        "iGOS++ pointing game ahead of gradcam": True,
        "iGOS++ mass share ahead of gradcam": True,
    }
    summaries["igospp"] = summaries["gradcam"]
    rows = {goal: holds for goal, holds, _ in gt.goals(saliency=summaries)}
    assert not any(rows.values())
    assert gt.format_goals([("g", True, "1"), ("h", False, "2")]) == ["holds  g: 1", "fails  h: 2"]


def test_sufficient_cells_reveal_every_mark_of_each_set():
    marks = {
        "on a grid point": (9.0, 9.0, 5.0, 5.0),
        "between points": (15.0, 15.0, 6.0, 6.0),
        "far": (55.0, 55.0, 5.0, 5.0),
    }
    sets = [("on a grid point", "far"), ("between points",)]
    cells = gt.sufficient_cells(marks, sets, 7, SIZE)
    assert len(cells) == 2
    for names, chosen in zip(sets, cells, strict=True):
        assert set(names) <= gt.covered_marks(chosen, 7, marks, SIZE)
    # A mark on a grid point needs its one cell; one between four points needs more.
    assert cells[0] == [8, 40]
    assert 2 <= len(cells[1]) <= 4


#: A mark's box and two CUB part points, with maps peaking on each in the XNN tests.
XNN_PARTS = {
    "bill": (10.0, 10.0, 4.0, 4.0),
    "legs": (40.0, 40.0, 0.0, 0.0),
    "tail": (60.0, 10.0, 0.0, 0.0),
}


def test_xnn_summary_reads_each_models_concepts_on_their_own_images():
    parts = dict(XNN_PARTS)
    bill, legs, tail = map_with_peak(12, 12), map_with_peak(40, 40), map_with_peak(60, 10)
    # Model "a": concepts on bill, legs, tail; model "b": on tail, bill, legs. Pooled over
    # the concept slots, each slot's most frequent part is the first image's.
    heatmaps = torch.stack(
        [torch.stack([bill, legs, tail])] * 2 + [torch.stack([tail, bill, legs])]
    )
    summary = gt.xnn_summary(heatmaps, [parts] * 3, r2=0.95, tolerance=1.0, models=["a", "a", "b"])
    assert summary["models_parts"] == {"a": ["bill", "legs", "tail"], "b": ["tail", "bill", "legs"]}
    assert summary["distinct_parts"] == 3
    assert summary["on_part"] == {"a": [1.0, 1.0, 1.0], "b": [1.0, 1.0, 1.0]}
    # Model "b" alone with all concepts on the bill covers one part: the fewest counts.
    heatmaps[2] = torch.stack([bill, bill, bill])
    summary = gt.xnn_summary(heatmaps, [parts] * 3, r2=0.95, tolerance=1.0, models=["a", "a", "b"])
    assert summary["distinct_parts"] == 1
    rows = {goal: holds for goal, holds, _ in gt.goals(xnn=summary)}
    assert not rows["XNN each model's concepts cover >= 3 distinct parts"]
    assert rows["XNN R^2 >= 0.9 on the test split"]
    with pytest.raises(ValueError, match="one model per image"):
        gt.xnn_summary(heatmaps, [parts] * 3, r2=None, tolerance=1.0, models=["a"])


def test_xnn_summary_scores_only_the_concepts_an_image_holds():
    parts = dict(XNN_PARTS)
    bill, legs, tail = map_with_peak(12, 12), map_with_peak(40, 40), map_with_peak(60, 10)
    nowhere = map_with_peak(30, 60)  # far from every part
    heatmaps = torch.stack([torch.stack([bill, legs, tail, nowhere])] * 2)
    # Image 0 holds concepts 0 and 1; image 1 holds concept 0 only; none holds 2 or 3.
    present = torch.tensor([[True, True, False, False], [True, False, False, False]])
    summary = gt.xnn_summary(heatmaps, [parts] * 2, r2=0.95, tolerance=1.0, present=present)
    # The tail map of concept 2 is not an explanation: no image holds the concept.
    assert summary["models_parts"] == {"all": ["bill", "legs", None, None]}
    assert summary["distinct_parts"] == 2
    assert summary["models_present"] == {"all": 2}
    # Concept 3 peaks off every part but is never held: it does not fail "peaks on a part".
    assert summary["on_part"] == {"all": [1.0, 1.0, None, None]}
    # Correlation only among the maps an image shows, and only where it shows two or more.
    assert summary["correlation"] == pytest.approx(gt.mean_abs_correlation(heatmaps[0, :2]))
    rows = {goal: (holds, figure) for goal, holds, figure in gt.goals(xnn=summary)}
    assert rows["XNN each concept's heatmap peaks on a part (most images holding it)"] == (
        True,
        "2 of the 2 concepts held, lowest 100%",
    )
    holds, figure = rows["XNN each model's concepts cover >= 3 distinct parts"]
    assert not holds and "2 of 4 concepts ever present" in figure
    # Every concept held: all four maps are scored, and the one off the parts fails.
    summary = gt.xnn_summary(heatmaps, [parts] * 2, r2=0.95, tolerance=1.0)
    assert summary["on_part"] == {"all": [1.0, 1.0, 1.0, 0.0]}
    assert summary["distinct_parts"] == 3
    rows = {goal: (holds, figure) for goal, holds, figure in gt.goals(xnn=summary)}
    assert rows["XNN each concept's heatmap peaks on a part (most images holding it)"] == (
        False,
        "3 of the 4 concepts held, lowest 0%",
    )
    # No image holding two concepts: no correlation, and the goal says so.
    one = torch.tensor([[True, False, False, False]] * 2)
    summary = gt.xnn_summary(heatmaps, [parts] * 2, r2=0.95, tolerance=1.0, present=one)
    assert summary["correlation"] is None
    rows = {goal: (holds, figure) for goal, holds, figure in gt.goals(xnn=summary)}
    assert rows["XNN mean pairwise |correlation| of heatmaps <= 0.5"] == (
        False,
        "no image holds two concepts",
    )
    with pytest.raises(ValueError, match=r"present must be \(2, 4\)"):
        gt.xnn_summary(heatmaps, [parts] * 2, r2=None, tolerance=1.0, present=present[:, :2])


def test_ground_truth_module_does_not_import_django():
    code = "import sys, explain_engine.ground_truth; print('django' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert output.stdout.strip() == "False", output.stderr
