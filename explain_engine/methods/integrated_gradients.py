"""Integrated gradients (Sundararajan et al., 2017). Pure PyTorch; never imports Django."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from .base import SaliencyMethod, call_model, require_int
from .baselines import blur_baseline, zeros_baseline

__all__ = ["IntegratedGradients"]

BASELINES = {"blur": blur_baseline, "zeros": zeros_baseline}


@dataclasses.dataclass(frozen=True, kw_only=True)
class IntegratedGradients(SaliencyMethod):
    """Integrated gradients of the target's softmax probability.

    M. Sundararajan, A. Taly, Q. Yan, "Axiomatic Attribution for Deep Networks", ICML 2017
    (arXiv 1703.01365).

    For image x, baseline x' and f the softmax probability of the target class, with a right
    Riemann sum over ``steps`` = m points alpha_k = k/m, k = 1..m::

        IG(x) = (x - x') * 1/m * sum_k  grad f( x' + alpha_k (x - x') )

    which approximates ``(x - x') * integral_0^1 grad f(x' + a (x - x')) da`` and sums, over
    pixels and channels, to about f(x) - f(x') (completeness; the residual is reported as
    ``extras["convergence_delta"]``). ``extras["attributions"]`` holds IG (B, 3, H, W).

    Saliency choice: the per-pixel map is the sum of IG over the colour channels, clipped at 0
    (keeping the evidence *for* the target; negative evidence is dropped rather than turned
    into importance by an absolute value), then min-max normalized per image. An image whose
    attributions are all non-positive gets an all-zero map.

    Parameters:
        steps: number of path points m (one forward + backward each, batched).
        baseline: ``"blur"`` (default): Gaussian blur, kernel 51 and sigma 50 at 224 px,
            scaled with the input size (the I-GOS baseline, `baselines.blur_baseline`).
            ``"zeros"``: zeros in the model's *normalized* input space, which is the dataset
            mean colour in pixel space, not a black image (black is not offered yet: it needs
            the model's normalization constants).
        batch_size: path images per forward/backward pass. The path images of all images in
            a chunk are stacked and evaluated in chunks of at most this many.

    Example::

        >>> from torchvision.models import resnet18
        >>> model = resnet18(weights=None, num_classes=8)
        >>> ig = IntegratedGradients(steps=16, baseline="blur", batch_size=32)
        >>> result = ig.explain(model, torch.randn(2, 3, 64, 64), torch.tensor([0, 3]))
        >>> result.saliency.shape, result.extras["attributions"].shape
        (torch.Size([2, 64, 64]), torch.Size([2, 3, 64, 64]))
    """

    slug: ClassVar[str] = "integrated_gradients"

    steps: int = 20
    baseline: Literal["blur", "zeros"] = "blur"
    batch_size: int = 32

    def _check_params(self) -> None:
        require_int(self.steps, "steps", minimum=1)
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {sorted(BASELINES)}; got {self.baseline!r}")

    def _attribute(
        self, model: nn.Module, images: Tensor, targets: Tensor, context: dict[str, Any]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        baseline = BASELINES[self.baseline](images)
        delta = images - baseline
        count = images.shape[0] * self.steps
        grad_sum = torch.zeros_like(images)
        for start in range(0, count, self.batch_size):
            index = torch.arange(start, min(start + self.batch_size, count), device=images.device)
            owner = index // self.steps
            alpha = ((index % self.steps + 1).to(images.dtype) / self.steps).view(-1, 1, 1, 1)
            path = (baseline[owner] + alpha * delta[owner]).requires_grad_(True)
            probs = call_model(model, path).softmax(dim=1)
            score = probs.gather(1, targets[owner][:, None]).sum()
            (grad,) = torch.autograd.grad(score, path)
            grad_sum.index_add_(0, owner, grad)
        attributions = delta * grad_sum / self.steps

        with torch.no_grad():
            end_scores = [
                call_model(model, end).softmax(dim=1).gather(1, targets[:, None])[:, 0]
                for end in (images, baseline)
            ]
        convergence_delta = attributions.sum(dim=(1, 2, 3)) - (end_scores[0] - end_scores[1])

        saliency = attributions.sum(dim=1).clamp(min=0)
        return saliency, {"attributions": attributions, "convergence_delta": convergence_delta}
