"""I-GOS and iGOS++: masks optimized with integrated gradients. Pure PyTorch; never Django.

The optimizer itself is `optimize_masks`, a plain function, so SAG can call it for its
low-resolution patch ranking (7x7, 2 iterations, black baseline) without the pipeline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import struct
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from .base import SaliencyMethod, call_model, require_int
from .baselines import blur_baseline, zeros_baseline
from .masking import bilateral_tv_norm, composite, tv_norm, upsample_mask

__all__ = ["IGOS", "IGOSPlusPlus", "optimize_masks"]

BASELINES = {"blur": blur_baseline, "zeros": zeros_baseline}

#: Backtracking line search (both papers' code): shrink factor, Armijo constant, and the
#: step below which shrinking stops. The authors' code then takes that last, tiny step
#: anyway; here a mask with no acceptable step stays where it is for that iteration.
LINE_SEARCH_DECAY = 0.2
ARMIJO_BETA = 1e-4
MIN_ALPHA = 1e-5
# From alpha = 1000 down to MIN_ALPHA by factors of 0.2 there are 12 step sizes.
MAX_LINE_SEARCH_TRIES = 12
#: iGOS++ bilateral TV: colour bandwidth (normalized image) and exponent, as called in the code.
BTV_SIGMA = 0.01
TV_BETA = 2.0

Variant = Literal["igos", "igospp"]
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


def optimize_masks(
    model: nn.Module,
    images: Tensor,
    baseline: Tensor,
    targets: Tensor,
    *,
    variant: Variant = "igos",
    resolution: int = 28,
    iterations: int = 15,
    steps: int = 20,
    l1: float = 1.0,
    tv: float = 20.0,
    noise: float = 0.2,
    alpha: float = 1000.0,
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
    the noise-free objective before the first and after each iteration (non-increasing:
    a step failing the Armijo test down to the smallest step size is not taken), and
    ``"l1"`` (b,), the final L1 weight. See `IGOS` and `IGOSPlusPlus` for the objective.
    ``adaptive_l1`` is used by I-GOS only and only when ``iterations > 3``.

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
    insertion = [flag for _, flag in terms]
    l1_weight = torch.full((b,), float(l1), device=device)

    def regularizer(current: Sequence[Tensor], rows: Tensor) -> Tensor:
        """lambda1 * mean|1 - M| + lambda2 * (B)TV(M), per image (len(rows),)."""
        if variant == "igos":
            mask = current[0]
            smooth = tv_norm(mask, TV_BETA)
        else:
            mask = current[0] * current[1]
            smooth = bilateral_tv_norm(images[rows], mask, sigma=BTV_SIGMA, beta=TV_BETA)
        return l1_weight[rows] * (1.0 - mask).abs().flatten(1).mean(1) + tv * smooth

    def model_terms(current: Sequence[Tensor], rows: Tensor) -> Tensor:
        """Noise-free signed scores (+p for deletion, -p for insertion), (len(rows), T)."""
        term_masks = torch.stack([fn(current) for fn, _ in terms], dim=1)
        count = len(rows) * len(terms)
        out = torch.empty(count, device=device)
        with torch.no_grad():
            for start in range(0, count, batch_size):
                index = torch.arange(start, min(start + batch_size, count), device=device)
                local, term = index // len(terms), index % len(terms)
                out[start : start + len(index)] = _signed_scores(
                    model, images, baseline, targets, rows[local], term, insertion,
                    term_masks[local, term],
                )  # fmt: skip
        return out.view(len(rows), len(terms))

    all_rows = torch.arange(b, device=device)
    generators = _noise_generators(images, seed)
    values = model_terms(masks, all_rows)
    start_score = values[:, 0].clone()  # the score of the image itself (mask of ones)
    with torch.no_grad():
        trace = [values.sum(1) + regularizer(masks, all_rows)]
    for iteration in range(iterations):
        if variant == "igos" and adaptive_l1 and iterations > 3:
            moved = (values[:, 0] - start_score).abs()
            if iteration == iterations // 2:
                l1_weight = torch.where(moved <= 1e-3, l1_weight / 10, l1_weight)
            elif iteration == int(iterations / 1.25):
                l1_weight = torch.where(moved <= 1e-2, l1_weight / 5, l1_weight)

        integrated = _integrated_mask_gradients(
            model, images, baseline, targets, masks, terms, generators,
            steps=steps, noise=noise, batch_size=batch_size,
        )  # fmt: skip
        leaves = [m.detach().requires_grad_(True) for m in masks]
        reg_grads = torch.autograd.grad(regularizer(leaves, all_rows).sum(), leaves)
        scale = 1.0 if variant == "igos" else 0.5  # iGOS++ halves the summed IG terms
        directions = [scale * g + r for g, r in zip(integrated, reg_grads, strict=True)]
        squared = sum(d.pow(2).flatten(1).sum(1) for d in directions)
        with torch.no_grad():
            objective = values.sum(1) + regularizer(masks, all_rows)

        # Backtracking line search, one step size per image. Successive step sizes are tried
        # several at a time (as many as fill one forward batch), and each image takes the
        # first that passes: the step sequential backtracking would take, in fewer passes.
        step = torch.full((b,), float(alpha), device=device)
        pending = torch.ones(b, dtype=torch.bool, device=device)
        new_masks = [m.clone() for m in masks]
        while bool(pending.any()):
            rows = pending.nonzero()[:, 0]
            tries = max(1, min(MAX_LINE_SEARCH_TRIES, batch_size // (len(rows) * len(terms))))
            sizes = [step[rows]]
            for _ in range(tries - 1):
                sizes.append(sizes[-1] * LINE_SEARCH_DECAY)
            sizes = torch.stack(sizes, dim=1)  # (rows, tries), descending
            flat_rows = rows.repeat_interleave(tries)
            a = sizes.reshape(-1, 1, 1, 1)
            candidate = [
                (m[flat_rows] - a * d[flat_rows]).clamp(0.0, 1.0)
                for m, d in zip(masks, directions, strict=True)
            ]
            with torch.no_grad():
                terms_now = model_terms(candidate, flat_rows)
                value = terms_now.sum(1) + regularizer(candidate, flat_rows)
            armijo = objective[flat_rows] - ARMIJO_BETA * sizes.reshape(-1) * squared[flat_rows]
            take = ((value <= armijo) & (sizes.reshape(-1) >= MIN_ALPHA)).view(len(rows), tries)
            accepted = take.any(dim=1)
            chosen = torch.arange(len(rows), device=device) * tries + take.int().argmax(dim=1)
            done, chosen = rows[accepted], chosen[accepted]
            for new, cand in zip(new_masks, candidate, strict=True):
                new[done] = cand[chosen]
            values[done] = terms_now[chosen]
            pending[done] = False
            step[rows[~accepted]] = sizes[~accepted, -1] * LINE_SEARCH_DECAY
            pending &= step >= MIN_ALPHA  # no acceptable step: the mask stays where it is
        masks = new_masks
        with torch.no_grad():
            trace.append(values.sum(1) + regularizer(masks, all_rows))

    out = {"mask": (masks[0] if variant == "igos" else masks[0] * masks[1])[:, 0]}
    if variant == "igospp":
        out["deletion_mask"] = masks[0][:, 0]
        out["insertion_mask"] = masks[1][:, 0]
    out["objective"] = torch.stack(trace, dim=1)
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
    """+p_c for deletion composites, -p_c for insertion ones, one forward pass; (n,)."""
    is_insertion = torch.tensor(insertion, device=images.device)[term].view(-1, 1, 1, 1)
    keep = torch.where(is_insertion, baseline[owner], images[owner])
    fill = torch.where(is_insertion, images[owner], baseline[owner])
    x = composite(keep, fill, mask)
    if noise is not None:
        x = x + noise
    probs = call_model(model, x).softmax(dim=1).gather(1, targets[owner][:, None])[:, 0]
    return torch.where(is_insertion.view(-1), -probs, probs)


def _integrated_mask_gradients(
    model: nn.Module,
    images: Tensor,
    baseline: Tensor,
    targets: Tensor,
    masks: Sequence[Tensor],
    terms: Sequence[Term],
    generators: Sequence[torch.Generator],
    *,
    steps: int,
    noise: float,
    batch_size: int,
) -> list[Tensor]:
    """The integrated gradient of every term with respect to every mask, summed over terms.

    For each term (its mask m(M) and deletion/insertion kind) the path is m_k = (k/N) m(M),
    k = 1..N (right Riemann, from the all-baseline composite to the current one); each path
    image gets Gaussian noise; the result is (1/N) sum_k d f(composite(m_k) + noise_k) / dM,
    which by the chain rule weights step k by k/N. All path images of all images and terms are
    flattened (image-major) and evaluated in chunks of at most `batch_size`, one forward and
    one backward per chunk. Each image's noise comes from its own generator, one draw of
    (T*N, C, H, W) per call, so it does not depend on how images or paths are chunked.
    """
    b = images.shape[0]
    per_image = len(terms) * steps
    count = b * per_image
    insertion = [flag for _, flag in terms]
    grads = [torch.zeros_like(m) for m in masks]
    drawn: dict[int, Tensor] = {}
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        index = torch.arange(start, stop, device=images.device)
        owner = index // per_image
        local = index % per_image
        term, k = local // steps, local % steps + 1
        first, last = start // per_image, (stop - 1) // per_image
        for image in range(first, last + 1):
            if image not in drawn:
                drawn[image] = noise * torch.randn(
                    (per_image, *images.shape[1:]),
                    generator=generators[image],
                    device=images.device,
                    dtype=images.dtype,
                )
        for image in [i for i in drawn if i < first]:
            del drawn[image]
        path_noise = torch.cat(
            [
                drawn[image][
                    max(start, image * per_image) - image * per_image : min(
                        stop, (image + 1) * per_image
                    )
                    - image * per_image
                ]
                for image in range(first, last + 1)
            ]
        )
        leaves = [m.detach().requires_grad_(True) for m in masks]
        term_masks = torch.stack([fn(leaves) for fn, _ in terms], dim=1)
        path_masks = term_masks[owner, term] * (k.to(images.dtype) / steps).view(-1, 1, 1, 1)
        score = _signed_scores(
            model, images, baseline, targets, owner, term, insertion, path_masks, path_noise
        ).sum()
        found = torch.autograd.grad(score, leaves, allow_unused=True)
        for total, grad in zip(grads, found, strict=True):
            if grad is not None:
                total += grad
    return [g / steps for g in grads]


def _noise_generators(images: Tensor, seed: int) -> list[torch.Generator]:
    """One generator per image, seeded from `seed` and the image's own values.

    So an image's noise depends only on the seed and on the image itself: not on its position
    in the call, on the batch size or on the other images. (CPU and CUDA generators produce
    different streams, so CPU and GPU maps agree statistically, not to the last digit.)
    """
    generators = []
    for image in images.detach():
        digest = hashlib.blake2b(
            struct.pack("<q", seed) + image.float().cpu().contiguous().numpy().tobytes(),
            digest_size=8,
        ).digest()
        generator = torch.Generator(device=images.device)
        generator.manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
        generators.append(generator)
    return generators


@dataclasses.dataclass(frozen=True, kw_only=True)
class _MaskMethod(SaliencyMethod):
    """Parameters and pipeline shared by I-GOS and iGOS++."""

    variant: ClassVar[Variant]

    resolution: int = 28
    iterations: int = 15
    steps: int = 20
    l1: float = 1.0
    tv: float = 20.0
    noise: float = 0.2
    alpha: float = 1000.0
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

    The descent direction replaces the gradient of f_c by its integrated gradient along the
    masks (k/N) M, k = 1..N, with Gaussian noise (std ``noise``, normalized-input units) added
    to every path image; the L1 and TV gradients are added as they are. Each step is chosen by
    backtracking (alpha, x0.2, down to 1e-5) with the modified Armijo test
    ``F(clamp(M - a d)) <= F(M) - 1e-4 a ||d||^2``, F evaluated without noise (as in the
    original I-GOS code; the iGOS++ code uses a freshly noised F on each side). If no step
    size passes, the mask stays (the authors' code takes the last, tiny step anyway).
    Adaptive L1 (original code, when ``iterations > 3``): at iteration T//2, if the score has
    moved by <= 0.001, l1 /= 10; at iteration int(T/1.25), if by <= 0.01, l1 /= 5; per image.

    Defaults are the code's: 15 outer iterations and 20 IG steps. The authors' ``main.py``
    passes the two swapped (20 iterations of 15 steps); we do not. Initial step 1000 as in
    the iGOS++ code (the 2019 demo used 200).

    ``result.saliency`` is ``1 - U(M)``, min-max normalized (1 = most important);
    ``result.extras["mask"]`` is M itself (B, s, s), 1 = keep, for ranking cells (e.g. SAG's
    patches) or for scoring at the mask resolution; ``extras["objective"]`` (B, T + 1) the
    noise-free objective per iteration and ``extras["l1"]`` (B,) the final L1 weight.

    Noise is reproducible: each image's generator is seeded from ``seed`` and the image's own
    values, so the map does not depend on batching or on the other images in the call.

    Parameters:
        resolution: mask side s (7, 14, 28, 56, 112, 224, or any integer >= 2).
        iterations: outer iterations T. steps: IG steps N per iteration.
        l1, tv: the weights lambda1, lambda2. noise: path-image noise std.
        alpha: initial line-search step. baseline: "blur" (51/50 at 224 px, scaled) or
            "zeros" (the dataset mean in normalized space).
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
    backtracking line search per image, shared by both masks, uses the full un-halved L
    without noise and ||d_d||^2 + ||d_i||^2 in the Armijo test; then both are clamped to
    [0, 1]. No adaptive L1 (the iGOS++ code has none).

    Defaults as in `IGOS`: 15 outer iterations, 20 IG steps (not swapped as in the authors'
    ``main.py``), l1 = 1, tv = 20, resolution 28, initial step 1000.

    ``result.saliency`` is ``1 - U(M_d * M_i)``, normalized; ``result.extras`` holds
    ``mask`` (= M_d * M_i), ``deletion_mask`` and ``insertion_mask``, each (B, s, s), plus
    ``objective`` and ``l1`` as in `IGOS`.

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
