"""Grad-CAM (Selvaraju et al., 2017). Pure PyTorch; never imports Django."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import SaliencyMethod, call_model

__all__ = ["GradCAM", "resolve_target_layer"]

#: Block names preferred by the automatic rule, in order: torchvision ResNets end their
#: convolutional trunk with ``layer4``; VGG, MobileNet, EfficientNet, DenseNet, ... with the
#: ``features`` Sequential (VGG's following ``avgpool`` only resamples it to 7x7).
PREFERRED_LAYERS = ("layer4", "features")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GradCAM(SaliencyMethod):
    """Grad-CAM: gradient-weighted class activation mapping.

    R. R. Selvaraju, M. Cogswell, A. Das, R. Vedantam, D. Parikh, D. Batra, "Grad-CAM: Visual
    Explanations from Deep Networks via Gradient-based Localization", ICCV 2017
    (arXiv 1610.02391).

    With A^k (h x w) the k-th channel of the target layer's output and y^c the pre-softmax
    score (logit) of class c, as in the paper::

        alpha_k^c = 1/(h w) * sum_{i,j} d y^c / d A^k_{ij}
        L^c       = ReLU( sum_k alpha_k^c A^k )

    L^c is upsampled bilinearly (``align_corners=True``) to the input size and min-max
    normalized per image. ``result.extras["raw_cam"]`` holds L^c (B, h, w) before upsampling
    and normalization; ``result.extras["target_layer"]`` the layer used.

    Parameters:
        target_layer: dotted name as in ``model.named_modules()``. None picks it with
            `resolve_target_layer`: ``layer4`` or ``features`` when present with a 4-D
            output, else the last module in forward-execution order whose output is a 4-D
            map larger than 1x1 (containers finish after their children, so a block wins over
            its inner convolution). If the layer runs more than once, its last call is used.
        batch_size: images per forward/backward pass.

    Example::

        >>> from torchvision.models import resnet18
        >>> model = resnet18(weights=None, num_classes=8)
        >>> result = GradCAM().explain(model, torch.randn(2, 3, 64, 64))
        >>> result.saliency.shape, result.extras["target_layer"]
        (torch.Size([2, 64, 64]), 'layer4')
    """

    slug: ClassVar[str] = "gradcam"

    target_layer: str | None = None
    batch_size: int = 32

    def _check_params(self) -> None:
        if self.target_layer is not None and (
            not isinstance(self.target_layer, str) or not self.target_layer
        ):
            raise ValueError(
                f"target_layer must be a non-empty module name or None; got {self.target_layer!r}"
            )

    def _prepare(self, model: nn.Module, images: Tensor) -> dict[str, Any]:
        if self.target_layer is None:
            return {"target_layer": resolve_target_layer(model, images[:1])}
        names = {name for name, _ in model.named_modules() if name}
        if self.target_layer not in names:
            known = ", ".join(sorted(names)[:20])
            raise ValueError(
                f"target_layer {self.target_layer!r} is not a module of this model; "
                f"expected a name from model.named_modules(), e.g. {known}"
            )
        return {"target_layer": self.target_layer}

    def _attribute(
        self, model: nn.Module, images: Tensor, targets: Tensor, context: dict[str, Any]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        name = context["target_layer"]
        layer = model.get_submodule(name)
        captured: list[Tensor] = []

        def keep_output(_module: nn.Module, _inputs: Any, output: Any) -> None:
            captured.append(output)

        # Parameters are frozen by the pipeline, so the graph reaches the layer through the
        # (private copy of the) input.
        images = images.detach().requires_grad_(True)
        handle = layer.register_forward_hook(keep_output)
        try:
            logits = call_model(model, images)
        finally:
            handle.remove()
        if not captured:
            raise ValueError(f"target_layer {name!r} did not run during the forward pass")
        activation = captured[-1]
        if not isinstance(activation, Tensor) or activation.ndim != 4:
            got = tuple(activation.shape) if isinstance(activation, Tensor) else type(activation)
            raise ValueError(
                f"target_layer {name!r} must output a 4-D feature map (B, K, h, w); got {got}"
            )
        if not activation.requires_grad:
            raise ValueError(f"target_layer {name!r} output does not depend on the input")
        score = logits.gather(1, targets[:, None]).sum()
        (grad,) = torch.autograd.grad(score, activation)
        weights = grad.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * activation).sum(dim=1)).detach()
        upsampled = F.interpolate(
            cam[:, None], size=images.shape[-2:], mode="bilinear", align_corners=True
        )[:, 0]
        return upsampled, {"raw_cam": cam}


def resolve_target_layer(model: nn.Module, probe: Tensor) -> str:
    """Pick Grad-CAM's layer with one probe forward pass (temporary hooks, always removed).

    Rule: ``layer4`` then ``features`` when the model has such a module and it outputs a 4-D
    map larger than 1x1; otherwise the last module, in the order forward calls finish, whose
    output is such a map. Raises ValueError if no module qualifies.
    """
    finished: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            finished.pop(name, None)  # re-insert, so dict order is the order of last calls
            if isinstance(output, Tensor):
                finished[name] = tuple(output.shape)

        return hook

    handles = []
    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(record(name)))
        with torch.no_grad():
            call_model(model, probe)
    finally:
        for handle in handles:
            handle.remove()

    def is_map(shape: tuple[int, ...]) -> bool:
        return len(shape) == 4 and shape[2] * shape[3] > 1

    for name in PREFERRED_LAYERS:
        if name in finished and is_map(finished[name]):
            return name
    candidates = [name for name, shape in finished.items() if is_map(shape)]
    if not candidates:
        raise ValueError(
            "no module outputs a 4-D feature map larger than 1x1; pass target_layer explicitly"
        )
    return candidates[-1]
