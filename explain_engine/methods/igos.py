"""I-GOS and iGOS++: masks optimized with integrated gradients. Pure PyTorch; never Django.

The optimizer itself is `optimize_masks`, a plain function, so SAG can call it for its
low-resolution patch ranking (7x7, 2 iterations, black baseline) without the pipeline.

Sources, as restated in ``reference/methods.md`` sections 3 and 4 (the authors' code is
GPL and was read, not copied): "IGOS-2019" is the first author's I-GOS demo
(zhongangqi/IGOS), "IGOSpp" the iGOS++ release (khorrams/IGOS_pp, CHIL 2021 era), whose
``main.py`` runs both I-GOS and iGOS++.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from .base import SaliencyMethod, call_model, require_int
from .baselines import blur_baseline, zeros_baseline
from .masking import bilateral_tv_norm, tv_norm, upsample_mask

__all__ = ["IGOS", "SCORINGS", "IGOSPlusPlus", "line_search_steps", "optimize_masks"]

BASELINES = {"blur": blur_baseline, "zeros": zeros_baseline}

#: Backtracking line search (both releases): shrink factor, Armijo constant, and the step
#: below which shrinking stops. As in both releases, the first step size below MIN_ALPHA is
#: the last one tried and it is taken whether or not it passes the test.
LINE_SEARCH_DECAY = 0.2
ARMIJO_BETA = 1e-4
MIN_ALPHA = 1e-5
#: iGOS++ bilateral TV: colour bandwidth (normalized image) and exponent, as called in the code.
BTV_SIGMA = 0.01
TV_BETA = 2.0

Variant = Literal["igos", "igospp"]
#: How the line search scores a step (see `IGOS`): "path", the noisy objective averaged
#: along the integration path with fresh noise on every evaluation (IGOSpp, the default);
#: "plain", the noise-free objective at the mask itself (IGOS-2019).
Scoring = Literal["path", "plain"]
SCORINGS: tuple[str, ...] = ("path", "plain")
#: A score term: its mask as a function of the optimized masks, and whether it is an
#: insertion term (-p_c of the insertion composite) rather than a deletion term (+p_c).
Term = tuple[Callable[[Sequence[Tensor]], Tensor], bool]

#: I-GOS: L_del(M).
IGOS_TERMS: tuple[Term, ...] = ((lambda m: m[0], False),)
#: iGOS++ (masks M_d, M_i): L_del(M_d), L_ins(M_i), L_del(M_d * M_i), L_ins(M_d * M_i).
IGOSPP_TERMS: tuple[Term, ...] = (
    (lambda m: m[0], False),
    (lambda m: m[1], True),
    (lambda m: m[0] * m[1], False),
    (lambda m: m[0] * m[1], True),
)

#: Noise keys: which evaluation a draw belongs to (with the iteration and the try).
_IG, _BASE, _TRY = 0, 1, 2


def line_search_steps(alpha: float) -> list[float]:
    """The step sizes the line search tries, in order: alpha, 0.2 alpha, ... down to and
    including the first one below MIN_ALPHA (13 sizes from 1000, 12 from 200)."""
    sizes = [float(alpha)]
    while sizes[-1] >= MIN_ALPHA:
        sizes.append(sizes[-1] * LINE_SEARCH_DECAY)
    return sizes


def optimize_masks(
    model: nn.Module,
    images: Tensor,
    baseline: Tensor,
    targets: Tensor,
    *,
    variant: Variant = "igos",
    resolution: int = 28,
    iterations: int = 20,
    steps: int = 15,
    l1: float = 1.0,
    tv: float = 20.0,
    noise: float = 0.2,
    alpha: float = 1000.0,
    scoring: Scoring = "path",
    adaptive_l1: bool = True,
    seed: int = 0,
    batch_size: int = 32,
) -> dict[str, Tensor]:
    """Optimize I-GOS (or iGOS++) masks for `images` (b, C, H, W) against `baseline`.

    The caller puts the model in eval mode with frozen parameters (as
    `SaliencyMethod.explain` does) and enables gradients. Returns low-resolution masks
    (b, s, s) with 1 = keep the image, 0 = replace it by the baseline, so *low* = important:
    ``"mask"`` (for iGOS++ the product of the two masks) and, for iGOS++,
    ``"deletion_mask"`` and ``"insertion_mask"``; also ``"objective"`` (b, iterations + 1),
    the noise-free objective before the first and after each iteration, ``"step"``
    (b, iterations), the step size each iteration took, and ``"l1"`` (b,), the final L1
    weight. See `IGOS` and `IGOSPlusPlus` for the objective and the line search
    (``scoring``). ``adaptive_l1`` is used by I-GOS only and only when ``iterations > 3``.

    SAG's patch ranking, for example: ``optimize_masks(model, x, black, t, resolution=7,
    iterations=2)["mask"]``, cells in ascending order = most important first.
    """
    b = images.shape[0]
    device = images.device
    masks = [torch.ones(b, 1, resolution, resolution, device=device)]
    if variant == "igospp":
        masks.append(torch.ones_like(masks[0]))
        terms = IGOSPP_TERMS
    elif variant == "igos":
        terms = IGOS_TERMS
    else:
        raise ValueError(f"variant must be 'igos' or 'igospp'; got {variant!r}")
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {list(SCORINGS)}; got {scoring!r}")
    insertion = [flag for _, flag in terms]
    l1_weight = torch.full((b,), float(l1), device=device)
    draw = _NoiseSource(images, seed, noise, len(terms) * steps) if noise > 0 else None
    ladder = line_search_steps(alpha)

    def regularizer(current: Sequence[Tensor], rows: Tensor) -> Tensor:
        """lambda1 * mean|1 - M| + lambda2 * (B)TV(M), per image (len(rows),)."""
        if variant == "igos":
            mask = current[0]
            smooth = tv_norm(mask, TV_BETA)
        else:
            mask = current[0] * current[1]
            smooth = bilateral_tv_norm(images[rows], mask, sigma=BTV_SIGMA, beta=TV_BETA)
        return l1_weight[rows] * (1.0 - mask).abs().flatten(1).mean(1) + tv * smooth

    def objective(
        current: Sequence[Tensor], rows: Tensor, keys: Sequence[tuple[int, ...]] | None
    ) -> tuple[Tensor, Tensor]:
        """(model terms (len(rows), T), objective (len(rows),)) of masks `current` (one per
        row). keys None: noise-free, at the masks themselves; otherwise path-averaged over
        `steps`, row i noised by its image's draw for keys[i]."""
        term_masks = torch.stack([fn(current) for fn, _ in terms], dim=1)
        noise_of = None
        if keys is not None and draw is not None:
            noise_of = lambda i: draw(int(rows[i]), keys[i])  # noqa: E731
        with torch.no_grad():
            values = _path_scores(
                model, images, baseline, targets, rows, term_masks, insertion,
                steps=1 if keys is None else steps, noise_of=noise_of, batch_size=batch_size,
            )  # fmt: skip
            return values, values.sum(1) + regularizer(current, rows)

    all_rows = torch.arange(b, device=device)
    values, start = objective(masks, all_rows, None)
    start_score = values[:, 0].clone()  # the score of the image itself (mask of ones)
    trace = [start]
    taken = torch.zeros(b, iterations, device=device)
    for iteration in range(iterations):
        if variant == "igos" and adaptive_l1 and iterations > 3:
            moved = (values[:, 0] - start_score).abs()
            if iteration == iterations // 2:
                l1_weight = torch.where(moved <= 1e-3, l1_weight / 10, l1_weight)
            elif iteration == int(iterations / 1.25):
                l1_weight = torch.where(moved <= 1e-2, l1_weight / 5, l1_weight)

        integrated = _integrated_mask_gradients(
            model, images, baseline, targets, masks, terms,
            None if draw is None else (lambda i, it=iteration: draw(i, (_IG, it))),
            steps=steps, batch_size=batch_size,
        )  # fmt: skip
        leaves = [m.detach().requires_grad_(True) for m in masks]
        reg_grads = torch.autograd.grad(regularizer(leaves, all_rows).sum(), leaves)
        scale = 1.0 if variant == "igos" else 0.5  # iGOS++ halves the summed IG terms
        directions = [scale * g + r for g, r in zip(integrated, reg_grads, strict=True)]
        squared = sum(d.pow(2).flatten(1).sum(1) for d in directions)
        if scoring == "plain":
            base = trace[-1]
        else:
            base = objective(masks, all_rows, [(_BASE, iteration)] * b)[1]

        # Backtracking line search, one step size per image. Successive step sizes are
        # scored several at a time (as many as fill one forward batch), each with its own
        # noise, and each image takes the first that passes (or the last size): the step
        # one-at-a-time backtracking takes, with the same noise, in fewer passes.
        per_candidate = len(terms) * (1 if scoring == "plain" else steps)
        tried = [0] * b  # index into `ladder` of each image's next step size
        pending = list(range(b))
        new_masks = [m.clone() for m in masks]
        while pending:
            tries = max(1, batch_size // (len(pending) * per_candidate))
            pairs = [
                (row, j) for row in pending for j in range(tried[row], tried[row] + tries)
                if j < len(ladder)
            ]  # fmt: skip
            flat_rows = torch.tensor([row for row, _ in pairs], device=device)
            sizes = torch.tensor([ladder[j] for _, j in pairs], device=device)
            a = sizes.view(-1, 1, 1, 1)
            candidate = [
                (m[flat_rows] - a * d[flat_rows]).clamp(0.0, 1.0)
                for m, d in zip(masks, directions, strict=True)
            ]
            keys = None if scoring == "plain" else [(_TRY, iteration, j) for _, j in pairs]
            value = objective(candidate, flat_rows, keys)[1]
            armijo = base[flat_rows] - ARMIJO_BETA * sizes * squared[flat_rows]
            passed = (value <= armijo).tolist()
            still = []
            for row in pending:
                found = next(
                    (
                        n for n, (r, j) in enumerate(pairs)
                        if r == row and (passed[n] or j == len(ladder) - 1)
                    ),
                    None,
                )  # fmt: skip
                if found is None:
                    tried[row] += tries
                    still.append(row)
                    continue
                for new, cand in zip(new_masks, candidate, strict=True):
                    new[row] = cand[found]
                taken[row, iteration] = sizes[found]
            pending = still
        masks = new_masks
        values, current = objective(masks, all_rows, None)
        trace.append(current)

    out = {"mask": (masks[0] if variant == "igos" else masks[0] * masks[1])[:, 0]}
    if variant == "igospp":
        out["deletion_mask"] = masks[0][:, 0]
        out["insertion_mask"] = masks[1][:, 0]
    out["objective"] = torch.stack(trace, dim=1)
    out["step"] = taken
    out["l1"] = l1_weight
    return {key: value.detach() for key, value in out.items()}


def _signed_scores(
    model: nn.Module,
    images: Tensor,
    baseline: Tensor,
    targets: Tensor,
    owner: Tensor,
    term: Tensor,
    insertion: Sequence[bool],
    mask: Tensor,
    noise: Tensor | None = None,
) -> Tensor:
    """+p_c for deletion composites, -p_c for insertion ones, one forward pass; (n,).

    A deletion composite shows the image where U(mask) is high, Phi(I, I~, M) =
    I~ + U(M) (I - I~); an insertion composite where it is low, I~ + (1 - U(M)) (I - I~).
    Written this way a path image costs one full-size multiply-add on top of its noise; the
    direct form gathered both images for every path image and blended them, which on the
    demo classifier made iGOS++ 12% slower on the CPU (`benchmarks/saliency_speed.py`).
    """
    is_insertion = torch.tensor(insertion, device=images.device)[term].view(-1, 1, 1, 1)
    up = upsample_mask(mask, images.shape[-2:])
    shown = torch.where(is_insertion, 1.0 - up, up)
    start, difference = _per_path_image(baseline, images - baseline, owner)
    if noise is not None:
        start = start + noise
    x = torch.addcmul(start, shown, difference)
    probs = call_model(model, x).softmax(dim=1).gather(1, targets[owner][:, None])[:, 0]
    return torch.where(is_insertion.view(-1), -probs, probs)


def _per_path_image(baseline: Tensor, difference: Tensor, owner: Tensor) -> tuple[Tensor, Tensor]:
    """`baseline` and `difference` (b, C, H, W) for each path image's `owner`, (n, C, H, W):
    a broadcast view when every path image has the same owner (most chunks), else a gather."""
    n = owner.shape[0]
    if n and bool((owner == owner[0]).all()):
        first = owner[0]
        return baseline[first].expand(n, -1, -1, -1), difference[first].expand(n, -1, -1, -1)
    return baseline[owner], difference[owner]


def _path_chunks(
    rows: int,
    per_row: int,
    batch_size: int,
    noise_of: Callable[[int], Tensor] | None,
    device: torch.device,
) -> Iterator[tuple[slice, Tensor, Tensor, Tensor | None]]:
    """Chunks of at most `batch_size` of the flattened (row, path image) pairs, row-major.

    Yields (flat slice, row (n,), local index within the row (n,), noise (n, C, H, W) or
    None). Each row's noise is drawn whole (`noise_of(row)`, (per_row, C, H, W)) when a chunk
    first needs it and dropped once passed, so it does not depend on the chunking.
    """
    count = rows * per_row
    drawn: dict[int, Tensor] = {}
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        index = torch.arange(start, stop, device=device)
        first, last = start // per_row, (stop - 1) // per_row
        noise = None
        if noise_of is not None:
            for row in [r for r in drawn if r < first]:
                del drawn[row]
            parts = []
            for row in range(first, last + 1):
                if row not in drawn:
                    drawn[row] = noise_of(row)
                offset = row * per_row
                parts.append(
                    drawn[row][max(start, offset) - offset : min(stop, offset + per_row) - offset]
                )
            noise = torch.cat(parts)
        yield slice(start, stop), index // per_row, index % per_row, noise


def _path_scores(
    model: nn.Module,
    images: Tensor,
    baseline: Tensor,
    targets: Tensor,
    owner: Tensor,
    term_masks: Tensor,
    insertion: Sequence[bool],
    *,
    steps: int,
    noise_of: Callable[[int], Tensor] | None,
    batch_size: int,
) -> Tensor:
    """Signed scores averaged along the path, (n, T): row i, term t gives
    (1/N) sum_k s(composite((k/N) term_masks[i, t]) + noise_k), k = 1..N, for the image
    `owner[i]`; with N = 1 and no noise, the score at the mask itself."""
    n, count_terms = term_masks.shape[:2]
    per_row = count_terms * steps
    out = torch.empty(n * per_row, device=images.device)
    for span, row, local, noise in _path_chunks(n, per_row, batch_size, noise_of, images.device):
        term, k = local // steps, local % steps + 1
        path = term_masks[row, term] * (k.to(images.dtype) / steps).view(-1, 1, 1, 1)
        out[span] = _signed_scores(
            model, images, baseline, targets, owner[row], term, insertion, path, noise
        )
    return out.view(n, count_terms, steps).mean(2)


def _integrated_mask_gradients(
    model: nn.Module,
    images: Tensor,
    baseline: Tensor,
    targets: Tensor,
    masks: Sequence[Tensor],
    terms: Sequence[Term],
    noise_of: Callable[[int], Tensor] | None,
    *,
    steps: int,
    batch_size: int,
) -> list[Tensor]:
    """The integrated gradient of every term with respect to every mask, summed over terms.

    For each term (its mask m(M) and deletion/insertion kind) the path is m_k = (k/N) m(M),
    k = 1..N (right Riemann, from the all-baseline composite to the current one); each path
    image gets Gaussian noise; the result is (1/N) sum_k d f(composite(m_k) + noise_k) / dM,
    which by the chain rule weights step k by k/N. All path images of all images and terms are
    flattened (image-major) and evaluated in chunks of at most `batch_size`, one forward and
    one backward per chunk. `noise_of(i)` is image i's noise, (T*N, C, H, W) (None: none).
    """
    b = images.shape[0]
    insertion = [flag for _, flag in terms]
    grads = [torch.zeros_like(m) for m in masks]
    per_row = len(terms) * steps
    for _, owner, local, noise in _path_chunks(b, per_row, batch_size, noise_of, images.device):
        term, k = local // steps, local % steps + 1
        leaves = [m.detach().requires_grad_(True) for m in masks]
        term_masks = torch.stack([fn(leaves) for fn, _ in terms], dim=1)
        path_masks = term_masks[owner, term] * (k.to(images.dtype) / steps).view(-1, 1, 1, 1)
        score = _signed_scores(
            model, images, baseline, targets, owner, term, insertion, path_masks, noise
        ).sum()
        found = torch.autograd.grad(score, leaves, allow_unused=True)
        for total, grad in zip(grads, found, strict=True):
            if grad is not None:
                total += grad
    return [g / steps for g in grads]


class _NoiseSource:
    """Gaussian path noise, reproducible: ``source(i, key)`` is image i's (count, C, H, W)
    draw for the evaluation `key` (the integrated gradient of an iteration, the line
    search's base value, or one of its tries), from a generator seeded by `seed`, the
    image's own values and the key.

    So an image's noise depends only on the seed, the image and what is evaluated: not on
    its position in the call, on the batch size, on the other images, or on how many step
    sizes are scored in one pass. (CPU and CUDA generators produce different streams, so
    CPU and GPU maps agree statistically, not to the last digit.)
    """

    def __init__(self, images: Tensor, seed: int, std: float, count: int) -> None:
        self.images, self.std, self.count = images, float(std), count
        self.seeds = [
            hashlib.blake2b(
                struct.pack("<q", seed) + image.float().cpu().contiguous().numpy().tobytes(),
                digest_size=8,
            ).digest()
            for image in images.detach()
        ]

    def __call__(self, image: int, key: tuple[int, ...]) -> Tensor:
        digest = hashlib.blake2b(
            self.seeds[image] + struct.pack(f"<{len(key)}q", *key), digest_size=8
        ).digest()
        generator = torch.Generator(device=self.images.device)
        generator.manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
        shape = (self.count, *self.images.shape[1:])
        return self.std * torch.randn(
            shape, generator=generator, device=self.images.device, dtype=self.images.dtype
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class _MaskMethod(SaliencyMethod):
    """Parameters and pipeline shared by I-GOS and iGOS++."""

    variant: ClassVar[Variant]

    resolution: int = 28
    iterations: int = 20
    steps: int = 15
    l1: float = 1.0
    tv: float = 20.0
    noise: float = 0.2
    alpha: float = 1000.0
    scoring: Scoring = "path"
    baseline: Literal["blur", "zeros"] = "blur"
    seed: int = 0
    batch_size: int = 32

    def _check_params(self) -> None:
        require_int(self.resolution, "resolution", minimum=2)
        require_int(self.iterations, "iterations", minimum=1)
        require_int(self.steps, "steps", minimum=1)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer; got {self.seed!r}")
        for name in ("l1", "tv", "noise"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0; got {value!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float):
            raise ValueError(f"alpha must be a positive number; got {self.alpha!r}")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise ValueError(f"alpha must be a positive number; got {self.alpha!r}")
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {list(SCORINGS)}; got {self.scoring!r}")
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {sorted(BASELINES)}; got {self.baseline!r}")

    def _adaptive_l1(self) -> bool:
        return False

    def _attribute(
        self, model: nn.Module, images: Tensor, targets: Tensor, context: dict[str, Any]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        masks = optimize_masks(
            model,
            images,
            BASELINES[self.baseline](images),
            targets,
            variant=self.variant,
            resolution=self.resolution,
            iterations=self.iterations,
            steps=self.steps,
            l1=float(self.l1),
            tv=float(self.tv),
            noise=float(self.noise),
            alpha=float(self.alpha),
            scoring=self.scoring,
            adaptive_l1=self._adaptive_l1(),
            seed=self.seed,
            batch_size=self.batch_size,
        )
        saliency = 1.0 - upsample_mask(masks["mask"], images.shape[-2:])[:, 0]
        return saliency, masks


@dataclasses.dataclass(frozen=True, kw_only=True)
class IGOS(_MaskMethod):
    """I-GOS: integrated-gradient optimized saliency.

    Z. Qi, S. Khorram, F. Li, "Visualizing Deep Networks by Optimizing with Integrated
    Gradients", AAAI 2020 (arXiv 1905.00954).

    A mask M in [0, 1]^(s x s), initialized to ones (1 = keep the pixel, 0 = replace it by the
    baseline I~, a heavy blur by default), upsampled bilinearly with ``align_corners=True``
    (U), is optimized to minimize, with f_c the softmax probability of the target::

        F(M) = f_c(I * U(M) + I~ * (1 - U(M))) + l1 * mean|1 - M| + tv * TV_2(M)

    The descent direction d replaces the gradient of f_c by its integrated gradient along
    the masks (k/N) M, k = 1..N, with Gaussian noise (std ``noise``, normalized-input units)
    added to every path image; the L1 and TV gradients are added as they are.

    Line search (methods.md 3.4): step sizes alpha, 0.2 alpha, ... are tried until one
    passes the modified Armijo test ``F~(clamp(M - a d)) <= F~(M) - 1e-4 a ||d||^2``; the
    first size below 1e-5 is the last tried and is taken even if it fails (as in both
    releases). What F~ is, is ``scoring``:

    - ``"path"`` (default; the IGOSpp release, which also runs I-GOS): f_c replaced by its
      average along the same path as the direction, (1/N) sum_k f_c(Phi((k/N) M) + noise),
      with fresh noise on every evaluation (the base value once per iteration, each tried
      step its own), plus the regularizers;
    - ``"plain"`` (the IGOS-2019 demo): F itself, noise-free, at the mask. Kept because it
      measured better on the demo classifier (8 test images, s = 14, 10 iterations of 5
      steps, ``benchmarks/saliency_quality.py --images 8 --resolutions 14 --methods igospp
      igos --scoring path plain --iterations 10 --steps 5 --protocols igos``): deletion /
      insertion 0.021 / 0.734 for I-GOS against 0.028 / 0.656 with "path", 0.029 / 0.719
      for iGOS++ against 0.027 / 0.694, in about half the time. SAG's ranking uses it.

    Adaptive L1 (IGOS-2019, when ``iterations > 3``): at iteration T//2, if the noise-free
    score has moved by <= 0.001, l1 /= 10; at iteration int(T/1.25), if by <= 0.01,
    l1 /= 5; per image.

    Defaults: 20 outer iterations of 15 IG steps, as the IGOSpp ``main.py`` runs them (it
    passes its ``--iterations 15`` and ``--ig_iter 20`` swapped); initial step 200 as in
    IGOS-2019 (IGOSpp starts both methods at 1000); l1 1, tv 20, resolution 28.

    ``result.saliency`` is ``1 - U(M)``, min-max normalized (1 = most important);
    ``result.extras["mask"]`` is M itself (B, s, s), 1 = keep, for ranking cells (e.g. SAG's
    patches) or for scoring at the mask resolution; ``extras["objective"]`` (B, T + 1) the
    noise-free objective per iteration, ``extras["step"]`` (B, T) the step sizes taken and
    ``extras["l1"]`` (B,) the final L1 weight.

    Noise is reproducible: each image's draws are seeded from ``seed``, the image's own
    values and what is evaluated, so the map does not depend on batching or on the other
    images in the call.

    Parameters:
        resolution: mask side s (7, 14, 28, 56, 112, 224, or any integer >= 2).
        iterations: outer iterations T. steps: IG steps N per iteration.
        l1, tv: the weights lambda1, lambda2. noise: path-image noise std.
        alpha: initial line-search step. scoring: "path" or "plain" (above).
        baseline: "blur" (51/50 at 224 px, scaled) or "zeros" (the dataset mean in
            normalized space).
        adaptive_l1: the 2019 code's L1 schedule (above).
        seed: noise seed. batch_size: images per chunk and path images per forward/backward.

    Example::

        >>> from torchvision.models import resnet18
        >>> model = resnet18(weights=None, num_classes=8)
        >>> result = IGOS(resolution=7, iterations=3).explain(model, torch.randn(2, 3, 64, 64))
        >>> result.saliency.shape, result.extras["mask"].shape
        (torch.Size([2, 64, 64]), torch.Size([2, 7, 7]))
    """

    slug: ClassVar[str] = "igos"
    variant: ClassVar[Variant] = "igos"

    alpha: float = 200.0
    adaptive_l1: bool = True
    batch_size: int = 32

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.adaptive_l1, bool):
            raise ValueError(f"adaptive_l1 must be a bool; got {self.adaptive_l1!r}")

    def _adaptive_l1(self) -> bool:
        return self.adaptive_l1


@dataclasses.dataclass(frozen=True, kw_only=True)
class IGOSPlusPlus(_MaskMethod):
    """iGOS++: integrated-gradient optimized saliency by bilateral perturbations.

    S. Khorram, T. Lawson, F. Li, "iGOS++: Integrated Gradient Optimized Saliency by
    Bilateral Perturbations", ACM CHIL 2021 (arXiv 2012.15783).

    Two masks, a deletion mask M_d and an insertion mask M_i, both s x s, initialized to ones,
    low = important. With P = M_d * M_i, Phi(A, B, M) = A * U(M) + B * (1 - U(M)),
    L_del(M) = f_c(Phi(I, I~, M)) and L_ins(M) = -f_c(Phi(I~, I, M)) (only the low-M regions
    show the image, on the blurred canvas)::

        L = L_del(M_d) + L_ins(M_i) + L_del(P) + L_ins(P) + l1 * mean|1 - P| + tv * BTV(I, P)

    BTV is the bilateral TV of `masking.bilateral_tv_norm` (sigma 0.01, beta 2). Each f_c term
    is replaced by its noisy integrated gradient along (k/N) * (its mask), as in `IGOS`;
    M_d collects the IG of L_del(M_d), L_del(P), L_ins(P), M_i that of L_ins(M_i), L_del(P),
    L_ins(P); both sums are halved and the regularizer gradient (through P) is added. One
    line search per image, shared by both masks, as in `IGOS` (``scoring`` "path" by
    default: each f_c term of the full, un-halved L averaged along its noisy path, as the
    IGOSpp release; "plain": noise-free at the masks), with ||d_d||^2 + ||d_i||^2 in the
    Armijo test; then both are clamped to [0, 1]. No adaptive L1 (the release has none).
    The product mask is formed at the mask resolution and then upsampled, U(M_d * M_i); the
    release multiplies the upsampled masks, U(M_d) * U(M_i) (equal on the cell centres).

    Defaults are the IGOSpp release's as its ``main.py`` runs them: 20 outer iterations of
    15 IG steps, initial step 1000, l1 = 1, tv = 20, resolution 28.

    ``result.saliency`` is ``1 - U(M_d * M_i)``, normalized; ``result.extras`` holds
    ``mask`` (= M_d * M_i), ``deletion_mask`` and ``insertion_mask``, each (B, s, s), plus
    ``objective``, ``step`` and ``l1`` as in `IGOS`.

    Example::

        >>> from torchvision.models import resnet18
        >>> model = resnet18(weights=None, num_classes=8)
        >>> method = IGOSPlusPlus(resolution=14, iterations=5, steps=10)
        >>> method.explain(model, torch.randn(1, 3, 64, 64)).extras["mask"].shape
        torch.Size([1, 14, 14])
    """

    slug: ClassVar[str] = "igospp"
    variant: ClassVar[Variant] = "igospp"

    batch_size: int = 32
