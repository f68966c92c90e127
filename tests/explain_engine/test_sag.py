"""Tests of SAG, Structured Attention Graphs (no Django, tiny planted models, no downloads).

The planted models read the input at the grid points of a 7x7 patch grid on a 43-px image
(spacing 7 px). Bilinear upsampling with align_corners=True puts patch k's mask value exactly
on its grid point, so on an all-ones image over a black (zero) baseline the value read at
patch k is 1 if k is revealed and 0 if not: the models' confidence on a patch set is known
in closed form.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explain_engine.methods import REGISTRY, SAG, SAGGraph, get_method
from explain_engine.methods.sag import (
    PAIR_KINDS,
    diverse_subset,
    larger_picture,
    pair_kind_counts,
    shown_share,
)

from .test_methods import (
    assert_state_restored,
    hooks_left,
    make_images,
    make_tiny,
    model_state,
    prepare_caller_state,
)

GRID = 7
SIZE = 43  # (GRID - 1) * 7 + 1: grid points on whole pixels
SPACING = (SIZE - 1) // (GRID - 1)
# A black baseline of zeros: the planted models take pixel values as they are.
PLAIN = {"pixel_mean": (0.0, 0.0, 0.0), "pixel_std": (1.0, 1.0, 1.0)}


class PatchReader(nn.Module):
    """Two-class model: logit 0 = scale * rule(values at the 49 grid points), logit 1 = 0.

    Dropout makes train mode visible (the output changes); ``calls`` records batch sizes.
    """

    def __init__(self, rule) -> None:
        super().__init__()
        self.rule = rule
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.dropout = nn.Dropout(0.5)
        self.calls: list[int] = []
        self.modes: list[tuple[bool, bool]] = []  # (training, requires_grad) per call
        self.fail_on_batch: int | None = None  # raise on the first call with this batch size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        self.modes.append((self.training, self.scale.requires_grad))
        if x.shape[0] == self.fail_on_batch:
            raise RuntimeError("boom")
        points = x[:, 0, ::SPACING, ::SPACING].reshape(x.shape[0], GRID * GRID)
        score = self.scale * self.rule(self.dropout(points))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


A, B, C, D = 8, 12, 36, 40  # (1, 1), (1, 5), (5, 1), (5, 5): far apart
E, G = 24, 26  # (3, 3), (3, 5)


def two_pairs(v: torch.Tensor) -> torch.Tensor:
    """Confident iff {A, B} or {C, D} is visible: 4 max(vA vB, vC vD) - 1.5.

    Not saturated (p = 0.92 on the whole image), so the I-GOS ranking has a gradient to
    follow: a saturated model's probability cannot move in float32.
    """
    return 4 * torch.maximum(v[:, A] * v[:, B], v[:, C] * v[:, D]) - 1.5


def overlapping(v: torch.Tensor) -> torch.Tensor:
    """Three MSEs: {A, B, E} and {A, B, G} (sharing two patches) and {C, D}."""
    ab = v[:, A] * v[:, B] * (v[:, E] + v[:, G]).clamp(max=1)
    return 4 * torch.maximum(ab, v[:, C] * v[:, D]) + 0.2 * (v[:, E] + v[:, G]) - 1.5


def pair_and_lure(v: torch.Tensor) -> torch.Tensor:
    """{A, B} is the MSE, but E alone scores best, so the beam reaches {A, B, E} first."""
    return 4 * v[:, A] * v[:, B] + v[:, E] + 0.3 * (v[:, A] + v[:, B]) - 2.1


def triple(v: torch.Tensor) -> torch.Tensor:
    """Sufficient only with A, B and C; any two give ~83% of the full confidence."""
    return 3 * (v[:, A] + v[:, B] + v[:, C]) - 4.5


def weighted_triple(v: torch.Tensor) -> torch.Tensor:
    """All of A, B, C needed; removing C hurts most, then B, then A (raster order A < B < C)."""
    return 2 * (1 * v[:, A] + 2 * v[:, B] + 3 * v[:, C]) - 9


def linear(v: torch.Tensor) -> torch.Tensor:
    """Every patch helps a little, each by a different amount."""
    return 0.05 * (v * torch.linspace(1.0, 2.0, GRID * GRID)).sum(1) - 2


def ones(batch: int = 1) -> torch.Tensor:
    return torch.ones(batch, 3, SIZE, SIZE)


def revealed_probability(model: nn.Module, image: torch.Tensor, patches, target: int = 0):
    """The model's probability on `image` (3, H, W) with only `patches` shown on black (0),
    computed here with F.interpolate, independently of the engine's masking module."""
    grid = torch.zeros(GRID * GRID)
    grid[list(patches)] = 1.0
    up = F.interpolate(
        grid.view(1, 1, GRID, GRID), size=image.shape[-2:], mode="bilinear", align_corners=True
    )
    with torch.no_grad():
        return model.eval()(image[None] * up).softmax(1)[0, target].item()


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def node_by_patches(graph: SAGGraph, patches):
    return next(n for n in graph.nodes if n.patches == tuple(sorted(patches)))


# ---------------------------------------------------------------------------- search


def test_finds_exactly_the_two_planted_explanations_as_roots():
    model = PatchReader(two_pairs)
    graph = SAG(max_depth=4, **PLAIN).explain(model, ones()).graphs[0]

    assert [m.patches for m in graph.mses] in ([(A, B), (C, D)], [(C, D), (A, B)])
    assert sorted(graph.nodes[r].patches for r in graph.roots) == [(A, B), (C, D)]
    assert all(graph.nodes[r].is_root for r in graph.roots)
    assert graph.full_probability == pytest.approx(sigmoid(2.5), abs=1e-6)
    assert graph.threshold == pytest.approx(0.9 * sigmoid(2.5), abs=1e-6)
    assert set(graph.ranking[:4]) == {A, B, C, D}  # the I-GOS heuristic found them
    for mse in graph.mses:
        assert mse.probability == pytest.approx(sigmoid(2.5), abs=1e-6)

    # Each root's children remove one patch; their confidences are the model's own.
    children = {
        (graph.nodes[e.parent].patches, e.removed): graph.nodes[e.child] for e in graph.edges
    }
    assert set(children) == {((A, B), A), ((A, B), B), ((C, D), C), ((C, D), D)}
    image = ones()[0]
    for (parent, removed), child in children.items():
        assert child.patches == tuple(p for p in parent if p != removed)
        expected = revealed_probability(model, image, child.patches)
        assert child.probability == pytest.approx(expected, abs=1e-6)
        assert child.confidence == pytest.approx(100 * expected / sigmoid(2.5), abs=1e-4)
        assert not child.is_root and child.layer == 1
    for edge in graph.edges:
        parent, child = graph.nodes[edge.parent], graph.nodes[edge.child]
        assert edge.drop == pytest.approx(parent.confidence - child.confidence)


def test_minimization_drops_patches_that_are_not_needed():
    model = PatchReader(pair_and_lure)
    graph = SAG(beam_width=1, candidates=49, max_depth=3, **PLAIN).explain(model, ones())
    graph = graph.graphs[0]
    assert graph.search[0].beam == ((E,),)
    assert [level.sufficient for level in graph.search] == [0, 0, 1]  # {A, B, E}
    assert [m.patches for m in graph.mses] == [(A, B)]


def _release_minimize(probability_of, patches, threshold):
    """The release's greedy minimization transcribed: one removal per model call, in raster
    order, each drop kept at once; rescan until a scan drops nothing; one patch stays."""
    current = sorted(patches)
    changed = True
    while changed:
        changed = False
        for patch in list(current):
            if len(current) == 1:
                break
            if probability_of(frozenset(current) - {patch}) > threshold:
                current.remove(patch)
                changed = True
    return tuple(current)


class _CountingScores:
    """A scorer as `SAG._minimize` calls it: sets in, probabilities out, each set counted."""

    def __init__(self, probability_of):
        self.probability_of = probability_of
        self.sets = 0

    def __call__(self, sets):
        self.sets += len(sets)
        return [self.probability_of(s) for s in sets]


@pytest.mark.parametrize("seed", range(20))
def test_minimization_equals_the_release_one_removal_at_a_time(seed):
    import random

    rng = random.Random(seed)
    weights = [rng.uniform(0.0, 1.0) for _ in range(GRID * GRID)]

    def probability_of(patches):
        return sigmoid(sum(weights[p] for p in patches) - 3.0)

    patches = frozenset(rng.sample(range(GRID * GRID), rng.randint(8, 35)))
    threshold = 0.9 * probability_of(patches)
    scores = _CountingScores(probability_of)
    mse = SAG._minimize(scores, patches, probability_of(patches), threshold)
    expected = _release_minimize(probability_of, patches, threshold)
    assert mse.patches == expected
    assert mse.probability == pytest.approx(probability_of(frozenset(expected)))
    # A set of n patches of which nearly all can go: the release scores about n sets, and
    # scoring every remaining removal on each pass, about n^2 / 2 (465 for 30 patches).
    assert scores.sets <= 3 * len(patches) + 2 * GRID


def test_roots_are_the_diverse_subset_of_the_mses():
    model = PatchReader(overlapping)
    graph = SAG(beam_width=5, max_depth=4, **PLAIN).explain(model, ones()).graphs[0]
    assert [m.patches for m in graph.mses] == [(C, D), (A, B, E), (A, B, G)]
    # {A, B, G} shares two patches with {A, B, E}, found first: not a root.
    assert [graph.nodes[r].patches for r in graph.roots] == [(C, D), (A, B, E)]
    assert SAG(beam_width=5, max_depth=4, overlap=2, **PLAIN).explain(model, ones()).graphs[
        0
    ].roots == (0, 1, 2)


def test_beam_width_and_candidates_are_respected():
    model = PatchReader(linear)
    sag = SAG(
        beam_width=2, candidates=5, max_depth=4, probability_threshold=1.0, batch_size=1000, **PLAIN
    )
    graph = sag.explain(model, ones()).graphs[0]

    assert graph.mses == () and graph.nodes == ()  # nothing beats the full image
    assert len(graph.search) == 4
    # One forward pass per level (the last calls: no MSE, so no graph scoring).
    assert model.calls[-4:] == [level.scored for level in graph.search]
    image = ones()[0]
    beam: list[tuple[int, ...]] = [()]
    for level in graph.search:
        expected = []
        for current in beam:
            for patch in [p for p in graph.ranking if p not in current][:5]:
                successor = tuple(sorted((*current, patch)))
                if successor not in expected:
                    expected.append(successor)
        assert level.scored == len(expected)
        probs = {s: revealed_probability(model, image, s) for s in expected}
        assert len(level.beam) == 2  # exactly beam_width, not beam_width + 1
        assert set(level.beam) == set(sorted(expected, key=lambda s: -probs[s])[:2])
        beam = list(level.beam)
    # Two beam sets share a successor at least once: it was scored once.
    assert any(level.scored < 2 * 5 for level in graph.search[1:])


def test_search_stops_after_more_than_max_num_roots():
    model = PatchReader(two_pairs)
    graph = SAG(max_num_roots=1, **PLAIN).explain(model, ones()).graphs[0]
    assert len(graph.mses) == 2
    assert len(graph.search) == 2


def test_diverse_subset_is_the_largest_with_small_overlaps_first_found():
    sets = [frozenset(s) for s in ({1, 2, 3}, {3, 4, 5}, {1, 2, 6}, {7, 8}, {5, 6, 9})]
    # {1,2,3} & {1,2,6} share 2; the rest share at most one with each other.
    assert diverse_subset(sets, overlap=1) == [0, 1, 3, 4]
    assert diverse_subset(sets, overlap=0) == [0, 3, 4]
    assert diverse_subset(sets, overlap=2) == [0, 1, 2, 3, 4]
    assert diverse_subset([], overlap=1) == []
    # Ties: {a} and {b} both fit with {c}; the first in discovery order wins.
    tie = [frozenset(s) for s in ({1, 2}, {1, 3}, {4})]
    assert diverse_subset(tie, overlap=0) == [0, 2]


# ---------------------------------------------------------------------------- graph


def test_identical_sets_reached_by_two_paths_are_one_node():
    model = PatchReader(triple)
    graph = SAG(max_depth=4, **PLAIN).explain(model, ones()).graphs[0]

    assert [m.patches for m in graph.mses] == [(A, B, C)]
    assert sorted(n.patches for n in graph.nodes) == sorted(
        [(A, B, C), (A, B), (A, C), (B, C), (A,), (B,), (C,)]
    )  # a tree would have 10 nodes
    assert len(graph.edges) == 3 + 6
    single = node_by_patches(graph, (A,))
    assert {graph.nodes[e.parent].patches for e in graph.edges if e.child == single.id} == {
        (A, B),
        (A, C),
    }
    assert single.layer == 2 and node_by_patches(graph, (A, B)).layer == 1
    for node in graph.nodes:
        expected = revealed_probability(model, ones()[0], node.patches)
        assert node.probability == pytest.approx(expected, abs=1e-6)


def test_children_are_the_removals_that_change_the_confidence_most():
    model = PatchReader(weighted_triple)
    graph = SAG(children=2, max_depth=4, **PLAIN).explain(model, ones()).graphs[0]
    root = graph.nodes[graph.roots[0]]
    assert root.patches == (A, B, C)
    removed = [e.removed for e in graph.edges if e.parent == root.id]
    assert removed == [C, B]  # not the first two in raster order (A, B)


def test_only_confident_nodes_with_several_patches_expand():
    model = PatchReader(weighted_triple)
    graph = SAG(max_depth=4, **PLAIN).explain(model, ones()).graphs[0]
    parents = {e.parent for e in graph.edges}
    for node in graph.nodes:
        expands = len(node.patches) > 1 and node.confidence > 40
        assert (node.id in parents) == expands, node
    assert any(len(n.patches) > 1 and n.confidence <= 40 for n in graph.nodes)
    assert any(len(n.patches) > 1 and n.id in parents and not n.is_root for n in graph.nodes)


def test_the_graph_grows_breadth_first_and_stops_at_max_nodes():
    # Every patch helps a little, so the MSEs hold 40 patches and, expanded without a bound,
    # the graph would reach thousands of nodes (2,228 here): no person reads that figure.
    model = PatchReader(linear)
    capped = SAG(**PLAIN).explain(model, ones()).graphs[0]
    wider = SAG(max_nodes=120, **PLAIN).explain(model, ones()).graphs[0]
    assert len(capped.nodes) == 40 and len(wider.nodes) == 120
    assert [n.patches for n in wider.nodes[:40]] == [n.patches for n in capped.nodes]
    ids = {n.id for n in capped.nodes}
    assert all(e.parent in ids and e.child in ids for e in capped.edges)


# ---------------------------------------------------------------------------- pairs


def test_pairs_are_scored_sets_never_drawn_nodes_nor_nested_with_the_models_probabilities():
    model = PatchReader(weighted_triple)
    sag = SAG(max_depth=4, pair_gap=10, max_pairs=8, **PLAIN)
    graph = sag.explain(model, ones()).graphs[0]
    assert len(graph.pairs) == 8
    drawn = {node.patches for node in graph.nodes}
    image = ones()[0]
    for pair in graph.pairs:
        a, b = set(pair.a_patches), set(pair.b_patches)
        # Not read off the SAG shown beside the question, and no pair inside the other.
        assert pair.a_patches not in drawn and pair.b_patches not in drawn
        assert not a <= b and not b <= a
        assert abs(len(a) - len(b)) <= sag.pair_size_difference
        pa = revealed_probability(model, image, pair.a_patches)
        pb = revealed_probability(model, image, pair.b_patches)
        assert (pair.a_probability, pair.b_probability) == (
            pytest.approx(pa, abs=1e-6),
            pytest.approx(pb, abs=1e-6),
        )
        assert pair.answer == ("A" if pa > pb else "B")
        full = graph.full_probability
        assert pair.gap >= 10 and pair.gap == pytest.approx(100 * abs(pa - pb) / full, abs=1e-3)
    # Each set is in one pair only; the more confident one is not always A.
    sets = [p.a_patches for p in graph.pairs] + [p.b_patches for p in graph.pairs]
    assert len(set(sets)) == len(sets)
    assert {p.answer for p in graph.pairs} == {"A", "B"}


def test_pairs_take_the_kinds_in_turn_so_the_larger_picture_wins_about_half():
    graph = (
        SAG(max_depth=4, pair_gap=10, max_pairs=9, **PLAIN)
        .explain(PatchReader(weighted_triple), ones())
        .graphs[0]
    )
    kinds = [pair.kind for pair in graph.pairs]
    assert kinds == list(PAIR_KINDS) * 3
    for pair in graph.pairs:
        larger = larger_picture(pair, GRID)
        if pair.kind == "same_size":
            assert larger is None
        else:
            assert (larger == pair.answer) == (pair.kind == "larger_more_confident")
    counts = pair_kind_counts(graph.to_dict())
    assert counts["valid"] == 9 and counts["stored"] == dict.fromkeys(PAIR_KINDS, 3)
    assert all(counts["candidates"][kind] >= 3 for kind in PAIR_KINDS)
    # Pairs stored under the earlier rule (a node and its child) are not valid.
    old = {**graph.to_dict(), "pairs": [{**graph.to_dict()["pairs"][0], "kind": "edge"}]}
    assert pair_kind_counts(old)["valid"] == 0


def test_shown_share_is_the_mean_of_the_mask_the_model_sees():
    for patches in ([0], [24], [3], [0, 1, 7, 8], list(range(49))):
        grid = torch.zeros(GRID * GRID)
        grid[patches] = 1.0
        up = F.interpolate(
            grid.view(1, 1, GRID, GRID), size=(SIZE, SIZE), mode="bilinear", align_corners=True
        )
        # The pixel grid samples the tents exactly at 7 px per grid step, so the trapezoid
        # mean of the samples is the tents' area.
        weights = torch.ones(SIZE)
        weights[[0, -1]] = 0.5
        area = (up[0, 0] * weights[:, None] * weights[None, :]).sum() / (SIZE - 1) ** 2
        assert shown_share(patches, GRID) == pytest.approx(float(area), abs=1e-6)
    assert shown_share([0], GRID) == pytest.approx(0.25 / 36)
    assert shown_share(range(49), GRID) == pytest.approx(1.0)


def test_no_pairs_when_no_gap_is_large_enough():
    model = PatchReader(triple)
    graph = SAG(max_depth=4, pair_gap=95, **PLAIN).explain(model, ones()).graphs[0]
    assert graph.pairs == ()
    assert pair_kind_counts(graph)["candidates"] == dict.fromkeys(PAIR_KINDS, 0)


# ---------------------------------------------------------------------------- contract


def test_registered_with_defaults_and_hash():
    assert REGISTRY["sag"] is SAG
    sag = get_method("sag")
    params = sag.params()
    assert {k: params[k] for k in ("grid", "probability_threshold", "beam_width")} == {
        "grid": 7,
        "probability_threshold": 0.9,
        "beam_width": 3,
    }
    assert params["candidates"] == 15 and params["max_num_roots"] == 10
    assert params["max_depth"] == 49 and params["overlap"] == 1 and params["num_roots"] == 3
    assert params["children"] == 3 and params["node_threshold"] == 0.4
    assert params["max_nodes"] == 40
    assert params["ranking_iterations"] == 2 and params["ranking_steps"] == 20
    # Parameters saved as JSON come back with lists: the same method, the same hash.
    again = get_method("sag", **json.loads(json.dumps(params)))
    assert again == sag and again.params_hash() == sag.params_hash()
    assert SAG(beam_width=5).params_hash() != sag.params_hash()


def test_black_baseline_is_black_in_pixel_space():
    from explain_engine.classifiers import IMAGENET_MEAN, IMAGENET_STD

    sag = SAG()
    assert (sag.pixel_mean, sag.pixel_std) == (IMAGENET_MEAN, IMAGENET_STD)
    black = sag.black_baseline(torch.zeros(2, 3, 4, 4))
    pixels = black * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(
        1, 3, 1, 1
    )
    assert torch.allclose(pixels, torch.zeros_like(pixels), atol=1e-6)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"grid": 1}, "grid must be an integer >= 2"),
        ({"beam_width": 0}, "beam_width must be an integer >= 1"),
        ({"candidates": 2.5}, "candidates must be an integer >= 1"),
        ({"overlap": -1}, "overlap must be an integer >= 0"),
        ({"probability_threshold": 0}, r"probability_threshold must be a number in \(0, 1\]"),
        ({"node_threshold": 1.5}, r"node_threshold must be a number in \[0, 1\]"),
        ({"max_nodes": 0}, "max_nodes"),
        ({"pair_gap": float("nan")}, r"pair_gap must be a number in \[0, 100\]"),
        ({"pixel_std": (1, 0, 1)}, "pixel_std must be 3 finite numbers"),
        ({"pixel_mean": (0.5, 0.5)}, "pixel_mean must be 3 numbers"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"colour": "red"}, "unknown parameter.*colour.*for method 'sag'.*grid"),
    ],
)
def test_bad_parameters_raise(params, message):
    with pytest.raises(ValueError, match=message):
        get_method("sag", **params)


def test_json_round_trip_is_exact():
    graph = SAG(max_depth=4, **PLAIN).explain(PatchReader(triple), ones()).graphs[0]
    data = graph.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    assert SAGGraph.from_dict(json.loads(text)) == graph
    assert len(graph.nodes) > 0 and len(graph.edges) > 0 and len(graph.pairs) > 0


def test_state_restored_inputs_unchanged_and_no_hooks():
    model = make_tiny()
    prepare_caller_state(model)
    before = model_state(model)
    images = make_images(2)
    copy = images.clone()
    result = SAG(grid=4, max_depth=3, batch_size=5).explain(model, images, torch.tensor([0, 3]))
    assert hooks_left(model) == []
    assert_state_restored(model, before)
    assert torch.equal(images, copy)
    assert result.targets.tolist() == [0, 3]
    assert len(result.graphs) == 2 and result.scores.shape == (2,)
    with torch.no_grad():
        expected = make_tiny().eval()(images).softmax(1)[torch.arange(2), torch.tensor([0, 3])]
    assert torch.allclose(result.scores, expected, atol=1e-6)

    reader = PatchReader(two_pairs).train()
    SAG(max_depth=2, **PLAIN).explain(reader, ones())
    assert set(reader.modes) == {(False, False)} and reader.training


# 20: the I-GOS ranking's path images (with gradients); 42: the search's second level.
@pytest.mark.parametrize("fail_on_batch", [20, 42])
def test_state_restored_when_the_model_raises(fail_on_batch):
    model = PatchReader(two_pairs)
    model.train()
    model.scale.grad = torch.tensor(0.5)
    model.fail_on_batch = fail_on_batch
    before = model_state(model)
    with pytest.raises(RuntimeError, match="boom"):
        SAG(max_depth=4, **PLAIN).explain(model, ones())
    assert model.training and model.dropout.training
    assert_state_restored(model, before)
    assert model.calls[-1] == fail_on_batch
    assert set(model.modes) == {(False, False)}  # eval mode, frozen, while it ran


def test_batched_scoring_equals_one_at_a_time():
    model = make_tiny()
    images = make_images(2)
    params = {"grid": 4, "max_depth": 4, "node_threshold": 0.0, "probability_threshold": 0.6}
    one = SAG(batch_size=1, **params).explain(model, images)
    many = SAG(batch_size=50, **params).explain(model, images)
    assert sum(len(g.nodes) for g in one.graphs) > 2  # there is a graph to compare
    for a, b in zip(one.graphs, many.graphs, strict=True):
        assert a.ranking == b.ranking and a.search == b.search
        assert [m.patches for m in a.mses] == [m.patches for m in b.mses]
        assert [n.patches for n in a.nodes] == [n.patches for n in b.nodes]
        assert [(e.parent, e.child, e.removed) for e in a.edges] == [
            (e.parent, e.child, e.removed) for e in b.edges
        ]
        for x, y in zip(a.nodes, b.nodes, strict=True):
            assert x.probability == pytest.approx(y.probability, abs=1e-6)


def test_image_smaller_than_the_grid_raises_before_any_pass():
    model = PatchReader(two_pairs)
    with pytest.raises(ValueError, match="smaller than the 7x7 patch grid"):
        SAG().explain(model, torch.ones(1, 3, 5, 5))
    assert model.calls == []


def test_runs_on_the_model_device():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model = PatchReader(two_pairs).cuda()
    graph = SAG(max_depth=4, **PLAIN).explain(model, ones()).graphs[0]
    assert sorted(graph.nodes[r].patches for r in graph.roots) == [(A, B), (C, D)]
    assert next(model.parameters()).device.type == "cuda"
