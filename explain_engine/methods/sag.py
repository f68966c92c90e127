"""SAG: Structured Attention Graphs. Pure PyTorch; never imports Django.

V. Shitole, F. Li, M. Kahng, P. Tadepalli, A. Fern, "One Explanation is Not Enough:
Structured Attention Graphs for Image Classification", NeurIPS 2021 (arXiv 2011.06733).

The image is split into a ``grid`` x ``grid`` patch grid (patch k = grid * row + col). A
patch set S is *revealed* on a black baseline exactly as I-GOS composites a mask
(`masking.composite`): a binary grid x grid map, 1 on S, upsampled bilinearly with
``align_corners=True``, so each patch is a soft tent around its grid point, not a square.
With p(S) the softmax probability of the target on the revealed image and p_full that on the
whole image, S is *sufficient* when ``p(S) > probability_threshold * p_full``, and a
*minimal sufficient explanation* (MSE) when no single patch can be dropped from it while it
stays sufficient.

Search (the authors' beam-search release, with this project's decisions):

1. Rank the patches with a short I-GOS run on a grid x grid mask (``ranking_iterations``
   iterations of ``ranking_steps`` integrated-gradient steps, lambda1 = 1, lambda2 = 20, the
   same black baseline, steps scored by the noise-free objective: ``scoring="plain"`` of
   `igos.optimize_masks`); the lowest mask value is the most important patch.
2. Beam search from the empty set: every set in the beam is extended by one of the
   ``candidates`` (q) best-ranked patches it does not hold. All successors of a level (a
   successor reached from two beam sets is one set) are scored in one batched pass and
   walked in descending probability: a sufficient one is minimized (greedy, as the release:
   drop patches in raster order while the set stays sufficient, until none can be dropped;
   at least one patch stays) and kept as an MSE unless already found; the others fill the
   next beam, which keeps **exactly** ``beam_width`` sets (the release keeps one more).
   The search stops when more than ``max_num_roots`` MSEs are found, the beam is empty, or
   after ``max_depth`` levels.
3. Diverse roots: the largest subset of MSEs in which every pair shares at most ``overlap``
   patches (exhaustive branch and bound; ties go to the subset first in discovery order),
   then its first ``num_roots``.
4. The graph: each root is a node; a node with more than one patch whose confidence (its
   probability as a share of p_full) exceeds ``node_threshold`` is expanded: every
   one-patch removal is scored (all nodes of a level in one batched pass) and the
   ``children`` removals that change the probability most (absolute change; ties in
   raster order) become its children. Identical patch sets are one node, so the graph is a
   DAG (the release draws a forest and takes the first patches in raster order). Levels
   are added breadth first until the graph holds ``max_nodes`` nodes (our decision: the
   release expands without bound, which on a model whose MSEs are large, e.g. 30 of 49
   patches, gives graphs of thousands of nodes that no person can read and a figure of
   hundreds of megapixels; three roots with three children and three grandchildren each
   are 39 nodes, so the default 40 leaves the papers' figures whole).
5. Comparative pairs, for the question "on which of these two partial images, A and B, is
   the AI more confident?", from the search's own scores (no extra model run). The rule:

   - A pair is two patch sets the search scored (beam successors, the minimization's
     steps, the graph's one-patch removals, with their probabilities p(S)) that are **not
     nodes of the SAG**: the SAG condition shows the graph, with each node's confidence, on
     the same page, so a node could be read off the figure. Two sets where one contains the
     other are never paired (the larger would win by construction).
   - Their confidences (p(S) as a share of p_full, in points) differ by at least
     ``pair_gap``, so the question has a clear right answer, and their sizes by at most
     ``pair_size_difference`` patches (sets of similar size: siblings, sets around
     different MSEs), so that neither is plainly "most of the photo".
   - "Shows more of the photo" is `shown_share`: the share of the photo the revealed
     patches cover as the model sees them (each patch's bilinear tent: an inner patch
     counts 1, an edge patch 1/2, a corner 1/4). A pair's ``kind`` says whether the set
     that shows more is the more confident (``larger_more_confident``), the less
     (``smaller_more_confident``), or the two show the same share (``same_size``).
   - At most ``max_pairs`` are kept, taken in turn from the three kinds, each kind's pairs
     by nearest shown share, then larger gap (among the best ``PAIR_SHORTLIST`` times
     ``max_pairs`` of the kind); a set is used in one pair only. The study
     draws one pair per item so that the set showing more is the more confident in about
     half the items, and `pair_kind_counts` tells, at launch, how many of each kind every
     image offers (``pair_candidates``: all the search held).

   Which set is "A" is decided by a hash of the seed and the two sets, so the more
   confident one is not always first.

Scores are softmax probabilities of the target (default: the predicted class). The black
baseline is black in pixel space, i.e. ``(0 - pixel_mean) / pixel_std`` in the model's
normalized input space (ImageNet statistics by default; pass the classifier's own).

Example::

    >>> sag = SAG(beam_width=3, candidates=15)
    >>> result = sag.explain(model, images)        # images: (B, 3, H, W), normalized
    >>> graph = result.graphs[0]
    >>> [m.patches for m in graph.mses], graph.roots, len(graph.nodes)
    >>> SAGGraph.from_dict(json.loads(json.dumps(graph.to_dict()))) == graph
    True
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from .base import (
    ExplanationMethod,
    call_model,
    check_inputs,
    model_device,
    require_int,
    resolve_targets,
    scoped_model_state,
)
from .igos import optimize_masks
from .masking import composite

__all__ = [
    "MSE",
    "PAIR_KINDS",
    "SAG",
    "SAGEdge",
    "SAGGraph",
    "SAGNode",
    "SAGPair",
    "SAGResult",
    "SearchLevel",
    "larger_picture",
    "pair_kind_counts",
    "shown_share",
]

#: torchvision's ImageNet normalization (the same numbers as `classifiers.IMAGENET_MEAN` /
#: `IMAGENET_STD`; not imported, since `classifiers` imports the methods package).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The heuristic I-GOS weights of the SAG release (lambda1, lambda2).
RANKING_L1 = 1.0
RANKING_TV = 20.0
#: Removals scored in the minimization's first pass over a set (see `SAG._minimize`).
MINIMIZE_FIRST_CHUNK = 2

Patches = tuple[int, ...]
PairKind = Literal["larger_more_confident", "smaller_more_confident", "same_size"]
#: The best pairs of each kind (times ``max_pairs``) from which the kept ones are drawn.
PAIR_SHORTLIST = 50
_PAIR_ROWS = 256
#: The kinds of comparative pair, in the order `SAG` takes them in turn.
PAIR_KINDS: tuple[PairKind, ...] = (
    "smaller_more_confident",
    "larger_more_confident",
    "same_size",
)


# ---------------------------------------------------------------------- plain data


@dataclasses.dataclass(frozen=True)
class MSE:
    """A minimal sufficient explanation: its patches (ascending) and probability."""

    patches: Patches
    probability: float


@dataclasses.dataclass(frozen=True)
class SAGNode:
    """A patch set in the graph.

    ``confidence`` is the probability as a percentage of the full-image probability (it may
    exceed 100); ``layer`` is the longest path from a root (roots are layer 0).
    """

    id: int
    patches: Patches
    probability: float
    confidence: float
    is_root: bool
    layer: int


@dataclasses.dataclass(frozen=True)
class SAGEdge:
    """`child` is `parent` without patch `removed`; ``drop`` = parent - child confidence."""

    parent: int
    child: int
    removed: int
    drop: float


@dataclasses.dataclass(frozen=True)
class SAGPair:
    """Two partial images for a comparative question; ``answer`` is the more confident one.

    ``gap`` is |confidence A - confidence B| in points of the full-image probability;
    ``kind`` says whether the set showing more of the photo (`shown_share`) is the more
    confident one (see the module docstring, step 5). The two sets are scored sets of the
    search, never nodes of the graph; ``a_node`` and ``b_node`` are -1 (kept for data
    stored before this rule, when pairs were nodes).
    """

    a_node: int
    b_node: int
    a_patches: Patches
    b_patches: Patches
    a_probability: float
    b_probability: float
    gap: float
    answer: Literal["A", "B"]
    kind: PairKind


@dataclasses.dataclass(frozen=True)
class SearchLevel:
    """One beam-search level: sets scored, how many were sufficient, the beam kept."""

    scored: int
    sufficient: int
    beam: tuple[Patches, ...]


@dataclasses.dataclass(frozen=True)
class SAGGraph:
    """Everything SAG found for one image, as plain data (see `to_dict` / `from_dict`).

    Attributes:
        grid: patches per side; patch k is at row k // grid, column k % grid.
        target: the class explained. full_probability: its probability on the whole image.
        threshold: the sufficiency threshold as a probability (``probability_threshold *
            full_probability``).
        ranking: all patches, most important first (the I-GOS heuristic).
        mses: the MSEs in discovery order. roots: the node ids of the diverse roots.
        nodes, edges: the graph (node ids are positions in ``nodes``).
        pairs: comparative question pairs. search: the beam-search levels.
        pair_candidates: valid comparative pairs in the search, by kind.
    """

    grid: int
    target: int
    full_probability: float
    threshold: float
    ranking: Patches
    mses: tuple[MSE, ...]
    roots: tuple[int, ...]
    nodes: tuple[SAGNode, ...]
    edges: tuple[SAGEdge, ...]
    pairs: tuple[SAGPair, ...]
    search: tuple[SearchLevel, ...]
    #: How many valid comparative pairs of each kind the search held (``pairs`` keeps at
    #: most ``max_pairs`` of them); empty for graphs stored before the rule.
    pair_candidates: dict[str, int] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (lists, ints, floats, strings, bools only)."""
        return _lists(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAGGraph:
        """The inverse of `to_dict`, also after a JSON round trip."""
        return cls(
            grid=int(data["grid"]),
            target=int(data["target"]),
            full_probability=float(data["full_probability"]),
            threshold=float(data["threshold"]),
            ranking=tuple(data["ranking"]),
            mses=tuple(MSE(tuple(m["patches"]), float(m["probability"])) for m in data["mses"]),
            roots=tuple(data["roots"]),
            nodes=tuple(
                SAGNode(
                    id=n["id"],
                    patches=tuple(n["patches"]),
                    probability=float(n["probability"]),
                    confidence=float(n["confidence"]),
                    is_root=n["is_root"],
                    layer=n["layer"],
                )
                for n in data["nodes"]
            ),
            edges=tuple(
                SAGEdge(e["parent"], e["child"], e["removed"], float(e["drop"]))
                for e in data["edges"]
            ),
            pairs=tuple(
                SAGPair(
                    **{
                        **p,
                        "a_patches": tuple(p["a_patches"]),
                        "b_patches": tuple(p["b_patches"]),
                        "a_probability": float(p["a_probability"]),
                        "b_probability": float(p["b_probability"]),
                        "gap": float(p["gap"]),
                    }
                )
                for p in data["pairs"]
            ),
            search=tuple(
                SearchLevel(s["scored"], s["sufficient"], tuple(tuple(beam) for beam in s["beam"]))
                for s in data["search"]
            ),
            pair_candidates={k: int(v) for k, v in data.get("pair_candidates", {}).items()},
        )


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(item) for item in value]
    return value


@dataclasses.dataclass
class SAGResult:
    """What `SAG.explain` returns: one graph per image, targets (B,) and scores (B,) on the CPU."""

    graphs: list[SAGGraph]
    targets: Tensor
    scores: Tensor


# ---------------------------------------------------------------------- the method


@dataclasses.dataclass(frozen=True, kw_only=True)
class SAG(ExplanationMethod):
    """Structured Attention Graphs (see the module docstring for the algorithm).

    Parameters:
        grid: patches per side (7: 49 patches). probability_threshold: sufficiency, as a
            share of the full-image probability. beam_width: sets kept per level.
        candidates: q, the best-ranked patches tried per beam set. max_num_roots: stop once
            more than this many MSEs are found. max_depth: most beam levels.
        overlap: most patches two diverse roots may share. num_roots: roots shown.
        children: children per node. node_threshold: expand a node only above this share
            of the full-image probability. max_nodes: most nodes in the graph.
            ranking_iterations, ranking_steps: the heuristic
            I-GOS run. pair_gap: least confidence gap (points) of a comparative pair;
            pair_size_difference: most patches its two sets may differ by; max_pairs: most
            pairs. pixel_mean, pixel_std: the model's input normalization
            (for the black baseline). seed: I-GOS noise and A/B order. batch_size: images
            per forward pass.
    """

    slug: ClassVar[str] = "sag"

    grid: int = 7
    probability_threshold: float = 0.9
    beam_width: int = 3
    candidates: int = 15
    max_num_roots: int = 10
    max_depth: int = 49
    overlap: int = 1
    num_roots: int = 3
    children: int = 3
    node_threshold: float = 0.4
    max_nodes: int = 40
    ranking_iterations: int = 2
    ranking_steps: int = 20
    pair_gap: float = 20.0
    pair_size_difference: int = 1
    max_pairs: int = 10
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD
    seed: int = 0
    batch_size: int = 64

    def _check_params(self) -> None:
        require_int(self.grid, "grid", minimum=2)
        for name in (
            "beam_width",
            "candidates",
            "max_num_roots",
            "max_depth",
            "num_roots",
            "children",
            "max_nodes",
            "ranking_iterations",
            "ranking_steps",
            "max_pairs",
        ):
            require_int(getattr(self, name), name, minimum=1)
        require_int(self.overlap, "overlap", minimum=0)
        require_int(self.pair_size_difference, "pair_size_difference", minimum=0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer; got {self.seed!r}")
        _require_number(
            self.probability_threshold, "probability_threshold", 0.0, 1.0, low_open=True
        )
        _require_number(self.node_threshold, "node_threshold", 0.0, 1.0)
        _require_number(self.pair_gap, "pair_gap", 0.0, 100.0)
        # Parameters come back from JSON as lists: store tuples so params() and the hash agree.
        for name in ("pixel_mean", "pixel_std"):
            value = getattr(self, name)
            if not isinstance(value, list | tuple) or len(value) != 3:
                raise ValueError(f"{name} must be 3 numbers (R, G, B); got {value!r}")
            for item in value:
                if isinstance(item, bool) or not isinstance(item, int | float):
                    raise ValueError(f"{name} must be 3 numbers (R, G, B); got {value!r}")
                if not math.isfinite(item) or (name == "pixel_std" and not item > 0):
                    raise ValueError(f"{name} must be 3 finite numbers; got {value!r}")
            object.__setattr__(self, name, tuple(float(item) for item in value))

    # ------------------------------------------------------------------ pipeline

    def explain(self, model: nn.Module, images: Tensor, targets: Tensor | None = None) -> SAGResult:
        """Search MSEs and build the graph of each image.

        Args:
            model: a classifier returning logits (B, num_classes); its training flags,
                ``requires_grad`` flags and gradients are left as they were.
            images: float tensor (B, 3, H, W), normalized for the model; never modified.
            targets: int64 (B,) classes to explain, or None for the predicted classes.

        Raises:
            ValueError: on a malformed argument, before any forward pass (a target beyond
                the number of classes after the first, no-grad, pass).
        """
        check_inputs(model, images, targets)
        if min(images.shape[-2:]) < self.grid:
            raise ValueError(
                f"images of {tuple(images.shape[-2:])} pixels are smaller than the "
                f"{self.grid}x{self.grid} patch grid"
            )
        device = model_device(model)
        with torch.inference_mode(False), torch.enable_grad(), scoped_model_state(model):
            x = images.detach().to(device=device, dtype=torch.float32, copy=True)
            logits = self._logits(model, x)
            t = resolve_targets(logits, targets)
            full = logits.softmax(dim=1).gather(1, t[:, None])[:, 0]
            black = self.black_baseline(x)
            masks = [
                optimize_masks(
                    model,
                    x[start : start + self.batch_size],
                    black[start : start + self.batch_size],
                    t[start : start + self.batch_size],
                    variant="igos",
                    resolution=self.grid,
                    iterations=self.ranking_iterations,
                    steps=self.ranking_steps,
                    l1=RANKING_L1,
                    tv=RANKING_TV,
                    adaptive_l1=False,
                    scoring="plain",
                    seed=self.seed,
                    batch_size=self.batch_size,
                )["mask"]
                for start in range(0, x.shape[0], self.batch_size)
            ]
            ranking = torch.cat(masks).flatten(1).argsort(dim=1, stable=True).cpu()
            graphs = []
            for i in range(x.shape[0]):
                scorer = _Scorer(model, x[i], black[i], int(t[i]), self.grid, self.batch_size)
                graphs.append(
                    self._explain_one(scorer, float(full[i]), int(t[i]), ranking[i].tolist())
                )
        return SAGResult(graphs=graphs, targets=t.cpu(), scores=full.float().cpu())

    def black_baseline(self, images: Tensor) -> Tensor:
        """Black in pixel space, in the normalized input space of `images` (B, 3, H, W)."""
        mean = torch.tensor(self.pixel_mean, dtype=images.dtype, device=images.device)
        std = torch.tensor(self.pixel_std, dtype=images.dtype, device=images.device)
        return ((0.0 - mean) / std).view(1, 3, 1, 1).expand_as(images).contiguous()

    def _explain_one(
        self, score: _Scorer, full: float, target: int, ranking: list[int]
    ) -> SAGGraph:
        threshold = self.probability_threshold * full
        mses, levels = self._search(score, ranking, threshold)
        chosen = diverse_subset([frozenset(m.patches) for m in mses], self.overlap)
        roots = [mses[i] for i in chosen[: self.num_roots]]
        nodes, edges = self._graph(score, roots, full)
        pairs, candidates = self._pairs(nodes, score.cache, full)
        return SAGGraph(
            grid=self.grid,
            target=target,
            full_probability=full,
            threshold=threshold,
            ranking=tuple(ranking),
            mses=tuple(mses),
            roots=tuple(node.id for node in nodes if node.is_root),
            nodes=tuple(nodes),
            edges=tuple(edges),
            pairs=tuple(pairs),
            search=tuple(levels),
            pair_candidates=candidates,
        )

    # ------------------------------------------------------------------ search

    def _search(
        self, score: _Scorer, ranking: list[int], threshold: float
    ) -> tuple[list[MSE], list[SearchLevel]]:
        mses: list[MSE] = []
        found: set[frozenset[int]] = set()
        levels: list[SearchLevel] = []
        beam: list[frozenset[int]] = [frozenset()]
        for _ in range(self.max_depth):
            successors: list[frozenset[int]] = []
            seen: set[frozenset[int]] = set()
            for current in beam:
                allowed = [p for p in ranking if p not in current][: self.candidates]
                for patch in allowed:
                    successor = current | {patch}
                    if successor not in seen:
                        seen.add(successor)
                        successors.append(successor)
            if not successors:
                break
            probabilities = score(successors)
            order = sorted(range(len(successors)), key=lambda i: -probabilities[i])
            next_beam: list[frozenset[int]] = []
            sufficient = 0
            for i in order:
                if probabilities[i] > threshold:
                    sufficient += 1
                    mse = self._minimize(score, successors[i], probabilities[i], threshold)
                    if frozenset(mse.patches) not in found:
                        found.add(frozenset(mse.patches))
                        mses.append(mse)
                elif len(next_beam) < self.beam_width:
                    next_beam.append(successors[i])
            levels.append(
                SearchLevel(
                    scored=len(successors),
                    sufficient=sufficient,
                    beam=tuple(tuple(sorted(s)) for s in next_beam),
                )
            )
            beam = next_beam
            if len(mses) > self.max_num_roots or not beam:
                break
        return mses, levels

    @staticmethod
    def _minimize(
        score: _Scorer, patches: frozenset[int], probability: float, threshold: float
    ) -> MSE:
        """The release's greedy 1-minimization, with a scan's removals scored a few at a time.

        The release tries dropping each patch in raster order, one forward pass at a time,
        keeps every drop that stays sufficient and rescans until a scan drops nothing. Here
        the next removals of the current set are scored together, in raster order, and the
        first sufficient one is taken; the ones before it were tested on the same set, so
        the result is the release's. At least one patch stays.

        How many at a time: `MINIMIZE_FIRST_CHUNK`, doubled after a chunk with no drop and
        halved after a drop. Early on nearly every removal is a drop, and scoring all of a
        set's removals each time threw away all but the first (on one demo photo whose beam
        search found sufficient sets of 30 patches, 39,000 of its 41,000 model images);
        near the minimum nearly none is, and the doubling scores them in a few passes.
        """
        current = sorted(patches)
        chunk = MINIMIZE_FIRST_CHUNK
        changed = True
        while changed:
            changed = False
            after = -1
            while len(current) > 1:
                tried = [p for p in current if p > after][:chunk]
                if not tried:
                    break
                probs = score([frozenset(current) - {p} for p in tried])
                hit = next((j for j, value in enumerate(probs) if value > threshold), None)
                if hit is None:
                    after = tried[-1]
                    chunk *= 2
                    continue
                after = tried[hit]
                current.remove(after)
                probability = probs[hit]
                changed = True
                chunk = max(MINIMIZE_FIRST_CHUNK, chunk // 2)
        return MSE(tuple(current), probability)

    # ------------------------------------------------------------------ graph

    def _graph(
        self, score: _Scorer, roots: list[MSE], full: float
    ) -> tuple[list[SAGNode], list[SAGEdge]]:
        sets: list[frozenset[int]] = []
        probability: list[float] = []
        index: dict[frozenset[int], int] = {}
        edges: list[tuple[int, int, int]] = []

        def add(patches: frozenset[int], value: float) -> int:
            index[patches] = len(sets)
            sets.append(patches)
            probability.append(value)
            return index[patches]

        frontier = [add(frozenset(root.patches), root.probability) for root in roots]
        root_count = len(frontier)
        while frontier:
            expand = [
                n
                for n in frontier
                if len(sets[n]) > 1 and probability[n] > self.node_threshold * full
            ]
            removals = [[sets[n] - {p} for p in sorted(sets[n])] for n in expand]
            scores = score([child for group in removals for child in group])
            frontier = []
            offset = 0
            for n, group in zip(expand, removals, strict=True):
                values = scores[offset : offset + len(group)]
                offset += len(group)
                removed = sorted(sets[n])
                order = sorted(range(len(group)), key=lambda j: -abs(probability[n] - values[j]))
                for j in order[: self.children]:
                    child = index.get(group[j])
                    if child is None:
                        if len(sets) >= self.max_nodes:
                            continue
                        child = add(group[j], values[j])
                        frontier.append(child)
                    edges.append((n, child, removed[j]))

        # Layer = longest path from a root; every edge removes one patch, so visiting nodes
        # by decreasing size is a topological order.
        layer = [0] * len(sets)
        parents: dict[int, list[int]] = {}
        for parent, child, _ in edges:
            parents.setdefault(child, []).append(parent)
        for n in sorted(range(len(sets)), key=lambda n: -len(sets[n])):
            layer[n] = max((layer[p] + 1 for p in parents.get(n, [])), default=0)

        def confidence(n: int) -> float:
            # A target whose probability underflowed to 0 on the whole image has no scale.
            return 100.0 * probability[n] / full if full > 0 else 0.0

        nodes = [
            SAGNode(
                id=n,
                patches=tuple(sorted(sets[n])),
                probability=probability[n],
                confidence=confidence(n),
                is_root=n < root_count,
                layer=layer[n],
            )
            for n in range(len(sets))
        ]
        return nodes, [
            SAGEdge(parent, child, patch, confidence(parent) - confidence(child))
            for parent, child, patch in edges
        ]

    def _pairs(
        self, nodes: list[SAGNode], scored: dict[frozenset[int], float], full: float
    ) -> tuple[list[SAGPair], dict[str, int]]:
        """The comparative pairs of the module docstring's step 5, and how many valid
        pairs of each kind there were to choose from."""
        drawn = {frozenset(node.patches) for node in nodes}
        pool = sorted((tuple(sorted(s)), p) for s, p in scored.items() if s and s not in drawn)
        if len(pool) < 2 or not full > 0:
            return [], dict.fromkeys(PAIR_KINDS, 0)
        member = np.zeros((len(pool), self.grid * self.grid), dtype=np.float32)
        for row, (patches, _) in enumerate(pool):
            member[row, list(patches)] = 1.0
        sizes = member.sum(1).astype(int)
        confidence = np.array([100.0 * p / full for _, p in pool])
        share = member.astype(np.float64) @ _tent_weights(self.grid)
        counts = dict.fromkeys(PAIR_KINDS, 0)
        best = {kind: np.zeros((0, 4)) for kind in PAIR_KINDS}
        keep = PAIR_SHORTLIST * self.max_pairs
        # Only sets of similar size are paired, so the pairs come in blocks: the sets of one
        # size against those of that size and up to `pair_size_difference` more, taken a
        # few rows at a time so that memory stays small whatever the search scored.
        for size in np.unique(sizes):
            group = np.flatnonzero(sizes == size)
            cols = np.flatnonzero((sizes >= size) & (sizes <= size + self.pair_size_difference))
            for start in range(0, len(group), _PAIR_ROWS):
                rows = group[start : start + _PAIR_ROWS]
                nested = member[rows] @ member[cols].T == size  # the smaller set in the other
                gap = np.abs(confidence[rows, None] - confidence[None, cols])
                later = (rows[:, None] < cols[None, :]) | (sizes[cols] > size)[None, :]
                r, c = (~nested & (gap >= self.pair_gap) & later).nonzero()
                i, j = rows[r], cols[c]
                size_gap = np.abs(share[i] - share[j])
                same = size_gap < 1e-9
                congruent = (share[i] > share[j]) == (confidence[i] > confidence[j])
                block = np.stack([i, j, size_gap, gap[r, c]], axis=1)
                for kind, mask in (
                    ("smaller_more_confident", ~same & ~congruent),
                    ("larger_more_confident", ~same & congruent),
                    ("same_size", same),
                ):
                    counts[kind] += int(mask.sum())
                    merged = np.concatenate([best[kind], block[mask]])
                    # Nearest shown share first, then the larger gap.
                    best[kind] = merged[np.lexsort((-merged[:, 3], merged[:, 2]))[:keep]]
        ranked = {kind: best[kind][:, :2].astype(int) for kind in PAIR_KINDS}
        chosen: list[tuple[int, int, PairKind]] = []
        used: set[int] = set()
        position = dict.fromkeys(PAIR_KINDS, 0)
        added = True
        while added and len(chosen) < self.max_pairs:
            added = False
            for kind in PAIR_KINDS:
                candidates, k = ranked[kind], position[kind]
                while k < len(candidates) and not used.isdisjoint(candidates[k].tolist()):
                    k += 1
                position[kind] = k + 1
                if k < len(candidates) and len(chosen) < self.max_pairs:
                    i, j = candidates[k].tolist()
                    used.update((i, j))
                    chosen.append((i, j, kind))
                    added = True
        pairs = []
        for i, j, kind in chosen:
            (a, pa), (b, pb) = pool[i], pool[j]
            if random.Random(f"{self.seed}:{a}:{b}").random() < 0.5:
                (a, pa), (b, pb) = (b, pb), (a, pa)
            pairs.append(
                SAGPair(
                    a_node=-1,
                    b_node=-1,
                    a_patches=a,
                    b_patches=b,
                    a_probability=pa,
                    b_probability=pb,
                    gap=abs(100.0 * (pa - pb) / full),
                    answer="A" if pa > pb else "B",
                    kind=kind,
                )
            )
        return pairs, counts


# ---------------------------------------------------------------------- comparative pairs


def _tent_weights(grid: int) -> np.ndarray:
    """Each patch's share of the photo as the model sees it revealed: its bilinear tent
    (align_corners=True) covers one grid step per axis inside, half a step on an edge."""
    along = np.ones(grid)
    along[[0, -1]] = 0.5
    return (np.outer(along, along) / (grid - 1) ** 2).reshape(-1)


def shown_share(patches: Sequence[int], grid: int) -> float:
    """The share of the photo (0 to 1) a patch set shows, as `sag_reveal` draws it: the
    mean of its upsampled mask. This is what "the picture showing more" means."""
    return float(_tent_weights(grid)[list(patches)].sum())


def larger_picture(pair: SAGPair | dict[str, Any], grid: int) -> Literal["A", "B"] | None:
    """Which picture of a comparative pair shows more of the photo; None if the same."""
    data = dataclasses.asdict(pair) if isinstance(pair, SAGPair) else pair
    a, b = shown_share(data["a_patches"], grid), shown_share(data["b_patches"], grid)
    if abs(a - b) < 1e-9:
        return None
    return "A" if a > b else "B"


def pair_kind_counts(graph: SAGGraph | dict[str, Any]) -> dict[str, Any]:
    """A graph's valid comparative pairs (see the module docstring, step 5): ``stored``,
    those kept for questions, and ``candidates``, all the search held, each by kind in
    `PAIR_KINDS`; ``valid`` is the number stored. Pairs stored under the earlier rule
    (graph nodes and their children) are not valid."""
    data = graph.to_dict() if isinstance(graph, SAGGraph) else graph
    stored = dict.fromkeys(PAIR_KINDS, 0)
    for pair in data.get("pairs", []):
        if pair.get("kind") in stored:
            stored[pair["kind"]] += 1
    candidates = {kind: int(data.get("pair_candidates", {}).get(kind, 0)) for kind in PAIR_KINDS}
    return {"valid": sum(stored.values()), "stored": stored, "candidates": candidates}


# ---------------------------------------------------------------------- helpers


class _Scorer:
    """p(target | reveal S) for patch sets S of one image, batched and cached.

    Each call scores the sets it has not seen in chunks of ``batch_size`` (one forward pass
    per chunk); ``scored`` counts the revealed images passed through the model.
    """

    def __init__(
        self,
        model: nn.Module,
        image: Tensor,
        baseline: Tensor,
        target: int,
        grid: int,
        batch_size: int,
    ) -> None:
        self.model = model
        self.image = image
        self.baseline = baseline
        self.target = target
        self.grid = grid
        self.batch_size = batch_size
        self.cache: dict[frozenset[int], float] = {}
        self.scored = 0

    def __call__(self, sets: Sequence[frozenset[int]]) -> list[float]:
        todo = list(dict.fromkeys(s for s in sets if s not in self.cache))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            with torch.no_grad():
                probs = reveal_probabilities(
                    self.model, self.image, self.baseline, self.target, chunk, self.grid
                )
            self.cache.update(zip(chunk, probs.tolist(), strict=True))
            self.scored += len(chunk)
        return [self.cache[s] for s in sets]


def patch_masks(sets: Sequence[Sequence[int] | frozenset[int]], grid: int, **kwargs) -> Tensor:
    """Binary (n, 1, grid, grid) masks, 1 on each set's patches (patch k = grid*row + col)."""
    masks = torch.zeros(len(sets), grid * grid, **kwargs)
    for row, patches in enumerate(sets):
        masks[row, list(patches)] = 1.0
    return masks.view(len(sets), 1, grid, grid)


def reveal_probabilities(
    model: nn.Module,
    image: Tensor,
    baseline: Tensor,
    target: int,
    sets: Sequence[Sequence[int] | frozenset[int]],
    grid: int,
) -> Tensor:
    """p(target) on `image` (3, H, W) with only each set's patches shown on `baseline`; (n,)."""
    masks = patch_masks(sets, grid, dtype=image.dtype, device=image.device)
    n = len(sets)
    revealed = composite(image.expand(n, -1, -1, -1), baseline.expand(n, -1, -1, -1), masks)
    return call_model(model, revealed).softmax(dim=1)[:, target]


def diverse_subset(sets: Sequence[frozenset[int]], overlap: int) -> list[int]:
    """Indices of the largest subset whose members pairwise share at most `overlap` items.

    Exhaustive branch and bound over the sets in the given order; among subsets of the
    largest size, the lexicographically first by index (i.e. in discovery order) wins.
    """
    n = len(sets)
    fits = [[len(sets[i] & sets[j]) <= overlap for j in range(n)] for i in range(n)]
    best: list[int] = []

    def extend(chosen: list[int], open_: list[int]) -> None:
        nonlocal best
        if len(chosen) > len(best):
            best = chosen
        for k, i in enumerate(open_):
            if len(chosen) + len(open_) - k <= len(best):
                return
            extend([*chosen, i], [j for j in open_[k + 1 :] if fits[i][j]])

    extend([], list(range(n)))
    return best


def _require_number(
    value: Any, name: str, low: float, high: float, *, low_open: bool = False
) -> None:
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be a number in {bracket}{low:g}, {high:g}]; got {value!r}")
