"""Tests of the pure-PyTorch saliency methods (no Django, tiny seeded models, no downloads)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from explain_engine.methods import REGISTRY, GradCAM, IntegratedGradients, get_method
from explain_engine.methods.base import SaliencyMethod, normalize_per_image
from explain_engine.methods.baselines import blur_baseline, gaussian_blur, zeros_baseline
from explain_engine.methods.gradcam import resolve_target_layer

NUM_CLASSES = 5
SIZE = 16
# The heatmap methods share this contract; SAG returns graphs and has its own (test_sag.py).
# The heatmap methods. SAG returns graphs (its contract: test_sag.py); XNN is fitted first
# (test_xnn.py).
SALIENCY_SLUGS = sorted(slug for slug, cls in REGISTRY.items() if issubclass(cls, SaliencyMethod))

# Small but complete settings per method, so the contract tests stay fast.
FAST_PARAMS: dict[str, dict] = {
    "integrated_gradients": {"steps": 6},
    # TinyNet's probabilities barely react to the perturbations, so with the default L1 and
    # TV weights no mask moves (the L1 price exceeds the gain) and the normalized map would be
    # float noise; the regularizers are tested in test_igos.py.
    "igos": {"resolution": 16, "iterations": 4, "steps": 4, "l1": 0.0, "tv": 0.0},
    "igospp": {"resolution": 16, "iterations": 4, "steps": 4, "l1": 0.0, "tv": 0.0},
}


class TinyNet(nn.Module):
    """Two convolutions with batch norm and dropout, so train/eval mode changes the output."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(8, num_classes)
        self.calls: list[int] = []  # batch size of every forward call
        self.explode_on_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        features = self.features(x)
        if self.explode_on_grad and x.requires_grad:
            raise RuntimeError("boom")
        return self.fc(self.dropout(features.mean(dim=(2, 3))))


def make_tiny(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    model = TinyNet()
    with torch.no_grad():  # non-trivial running statistics
        model.features[1].running_mean.uniform_(-0.5, 0.5)
        model.features[1].running_var.uniform_(0.5, 2.0)
    return model


def make_images(batch: int = 3, size: int = SIZE, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def make_method(slug: str, **params) -> SaliencyMethod:
    return get_method(slug, **{**FAST_PARAMS.get(slug, {}), **params})


def hooks_left(model: nn.Module) -> list[str]:
    """Names of every module that still carries a hook of any kind."""
    kinds = (
        "_forward_hooks",
        "_forward_pre_hooks",
        "_backward_hooks",
        "_backward_pre_hooks",
    )
    return [
        f"{name or '<root>'}.{kind}"
        for name, module in model.named_modules()
        for kind in kinds
        if getattr(module, kind)
    ]


def model_state(model: nn.Module):
    """Training flag per module, (requires_grad, grad object, grad copy) per parameter."""
    flags = {name: module.training for name, module in model.named_modules()}
    params = {
        name: (p.requires_grad, p.grad, None if p.grad is None else p.grad.clone())
        for name, p in model.named_parameters()
    }
    return flags, params


def assert_state_restored(model: nn.Module, before) -> None:
    flags_before, params_before = before
    flags_after, params_after = model_state(model)
    assert flags_after == flags_before
    assert len(params_before) > 0
    for name, (requires_grad, grad, grad_copy) in params_before.items():
        requires_grad_after, grad_after, _ = params_after[name]
        assert requires_grad_after == requires_grad, name
        assert grad_after is grad, name
        if grad_copy is not None:
            assert torch.equal(grad_after, grad_copy), name


def prepare_caller_state(model: nn.Module) -> None:
    """A caller's model: training mode but one module in eval, one frozen parameter,
    gradients left over from a training step (and one parameter without a gradient)."""
    model.train()
    model.features[1].eval()
    model.fc.bias.requires_grad_(False)
    loss = model(make_images(2, seed=9)).sum()
    loss.backward()
    model.features[0].bias.grad = None
    model.calls.clear()


# ---------------------------------------------------------------------------- contract


@pytest.mark.parametrize("slug", SALIENCY_SLUGS)
def test_contract_every_method(slug):
    model = make_tiny()
    prepare_caller_state(model)
    before = model_state(model)
    images = make_images(3)
    images_copy = images.clone()
    targets = torch.tensor([0, 3, 4])

    result = make_method(slug, batch_size=2).explain(model, images, targets)

    assert hooks_left(model) == []
    assert_state_restored(model, before)
    assert torch.equal(images, images_copy)
    assert not images.requires_grad
    sal = result.saliency
    assert sal.shape == (3, SIZE, SIZE)
    assert sal.dtype == torch.float32
    assert sal.device.type == "cpu"
    assert torch.isfinite(sal).all()
    assert sal.min() >= 0 and sal.max() <= 1
    assert (sal.flatten(1).amin(dim=1) == 0).all()  # min-max normalized per image:
    maxima = sal.flatten(1).amax(dim=1)  # 1, or 0 for a constant (e.g. all-ReLU'd) map
    assert set(maxima.tolist()) <= {0.0, 1.0}
    assert (maxima == 1).sum() >= 2
    assert torch.equal(result.targets, targets)
    assert result.scores.shape == (3,)
    with torch.no_grad():
        expected = copy.deepcopy(model).eval()(images).softmax(dim=1)[torch.arange(3), targets]
    assert torch.allclose(result.scores, expected, atol=1e-6)


@pytest.mark.parametrize("slug", SALIENCY_SLUGS)
def test_state_restored_when_the_model_raises(slug):
    model = make_tiny()
    prepare_caller_state(model)
    model.explode_on_grad = True  # raises in the gradient pass, after hooks are registered
    before = model_state(model)
    images = make_images(2)

    with pytest.raises(RuntimeError, match="boom"):
        make_method(slug).explain(model, images)

    assert hooks_left(model) == []
    assert_state_restored(model, before)
    assert len(model.calls) >= 2  # the failure happened after the first (scoring) pass


def test_state_restored_when_the_gradient_raises(monkeypatch):
    model = make_tiny()
    prepare_caller_state(model)
    before = model_state(model)

    def broken_grad(*args, **kwargs):
        raise RuntimeError("grad failed")

    monkeypatch.setattr(torch.autograd, "grad", broken_grad)
    with pytest.raises(RuntimeError, match="grad failed"):
        GradCAM(target_layer="features").explain(model, make_images(2))
    assert hooks_left(model) == []
    assert_state_restored(model, before)


@pytest.mark.parametrize("slug", SALIENCY_SLUGS)
def test_batched_equals_unbatched(slug):
    model = make_tiny()
    images = make_images(4)
    targets = torch.tensor([0, 3, 1, 4])
    one = make_method(slug, batch_size=1).explain(model, images, targets)
    four = make_method(slug, batch_size=4).explain(model, images, targets)
    assert torch.equal(one.targets, four.targets)
    assert torch.allclose(one.scores, four.scores, atol=1e-6)
    assert torch.allclose(one.saliency, four.saliency, atol=1e-5)
    assert one.extras.keys() == four.extras.keys()
    for key, value in one.extras.items():
        if isinstance(value, torch.Tensor):
            assert torch.allclose(value, four.extras[key], atol=1e-6, rtol=1e-4), key
        else:
            assert value == four.extras[key], key


@pytest.mark.parametrize("slug", SALIENCY_SLUGS)
def test_default_target_is_the_predicted_class(slug):
    model = make_tiny().eval()
    images = make_images(4)
    with torch.no_grad():
        model.fc.bias -= model(images).mean(dim=0)  # centre the logits: predictions differ
        predicted = model(images).argmax(dim=1)
    assert len(set(predicted.tolist())) > 1  # the check below can tell classes apart
    method = make_method(slug)
    default = method.explain(model, images)
    explicit = method.explain(model, images, predicted)
    assert torch.equal(default.targets, predicted)
    assert torch.allclose(default.saliency, explicit.saliency)


@pytest.mark.parametrize("slug", SALIENCY_SLUGS)
def test_runs_on_the_model_device(slug):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model = make_tiny().eval()
    images = make_images(2)
    # I-GOS noise is drawn on the model's device, so the two devices draw different noise;
    # without noise the paths must agree.
    params = {"noise": 0.0} if slug in ("igos", "igospp") else {}
    on_cpu = make_method(slug, **params).explain(model, images)
    model.cuda()
    on_gpu = make_method(slug, **params).explain(model, images)
    assert on_gpu.saliency.device.type == "cpu"
    assert next(model.parameters()).device.type == "cuda"
    assert torch.allclose(on_cpu.saliency, on_gpu.saliency, atol=1e-3)


# ---------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    ("images", "targets", "message"),
    [
        (make_images(2).to(torch.int64), None, "floating-point"),
        (make_images(2)[0], None, r"shape \(B, 3, H, W\)"),
        (make_images(2)[:, :1], None, r"shape \(B, 3, H, W\)"),
        (make_images(2)[:0], None, "at least one image"),
        (make_images(2).fill_(math.nan), None, "NaN"),
        (make_images(2).numpy(), None, "torch.Tensor"),
        (make_images(2), torch.tensor([0, 1, 2]), r"shape \(B,\) = \(2,\)"),
        (make_images(2), torch.tensor([0.0, 1.0]), "integer"),
        (make_images(2), torch.tensor([0, -1]), "non-negative"),
        (make_images(2), [0, 1], "LongTensor"),
    ],
)
@pytest.mark.parametrize("slug", SALIENCY_SLUGS)
def test_bad_inputs_raise_before_any_forward_pass(slug, images, targets, message):
    model = make_tiny()
    with pytest.raises(ValueError, match=message):
        make_method(slug).explain(model, images, targets)
    assert model.calls == []


@pytest.mark.parametrize("slug", SALIENCY_SLUGS)
def test_target_beyond_the_classes_raises(slug):
    model = make_tiny()
    with pytest.raises(ValueError, match=r"\[0, 4\] for this model \(5 classes\); got max 5"):
        make_method(slug).explain(model, make_images(2), torch.tensor([1, 5]))
    assert model.calls == [2]  # only the no-grad scoring pass ran
    assert hooks_left(model) == []


def test_model_must_be_a_module():
    with pytest.raises(ValueError, match="torch.nn.Module"):
        GradCAM().explain(lambda x: x, make_images(2))


def test_model_must_return_logits():
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(ValueError, match=r"logits of shape \(B, num_classes\)"):
        GradCAM().explain(model, make_images(2))


@pytest.mark.parametrize(
    ("slug", "params", "message"),
    [
        ("gradcam", {"batch_size": 0}, "batch_size must be an integer >= 1"),
        ("gradcam", {"batch_size": 2.5}, "batch_size must be an integer >= 1"),
        ("gradcam", {"batch_size": True}, "batch_size must be an integer >= 1"),
        ("gradcam", {"target_layer": ""}, "target_layer must be a non-empty"),
        ("gradcam", {"colour": "red"}, "unknown parameter.*colour.*batch_size, target_layer"),
        ("integrated_gradients", {"steps": 0}, "steps must be an integer >= 1"),
        ("integrated_gradients", {"baseline": "black"}, r"baseline must be one of \['blur'"),
        (
            "nope",
            {},
            "unknown explanation method 'nope'; known: gradcam, igos, igospp, "
            "integrated_gradients, sag, xnn",
        ),
    ],
)
def test_bad_parameters_raise(slug, params, message):
    with pytest.raises(ValueError, match=message):
        get_method(slug, **params)


def test_unknown_target_layer_raises_before_any_forward_pass():
    model = make_tiny()
    with pytest.raises(ValueError, match="'layer9' is not a module.*features"):
        GradCAM(target_layer="layer9").explain(model, make_images(2))
    assert model.calls == [2]  # the scoring pass only


def test_params_include_defaults_and_hash_changes_with_them():
    ig = get_method("integrated_gradients")
    assert ig.params() == {"batch_size": 32, "steps": 20, "baseline": "blur"}
    assert GradCAM().params() == {"batch_size": 32, "target_layer": None}
    assert ig.params_hash() == IntegratedGradients().params_hash()
    assert ig.params_hash() != IntegratedGradients(steps=21).params_hash()
    assert GradCAM().params_hash() != GradCAM(target_layer="features").params_hash()


def test_registry_slugs_match_classes():
    assert REGISTRY["gradcam"] is GradCAM
    assert REGISTRY["integrated_gradients"] is IntegratedGradients
    assert {"gradcam", "igos", "igospp", "integrated_gradients"} <= set(SALIENCY_SLUGS)
    for slug, cls in REGISTRY.items():
        assert cls.slug == slug


# ---------------------------------------------------------------------------- normalization


def test_normalization_per_image_and_constant_maps():
    raw = torch.stack([torch.full((4, 4), 3.0), torch.arange(16.0).view(4, 4) * 2 - 5])
    out = normalize_per_image(raw)
    assert torch.equal(out[0], torch.zeros(4, 4))
    assert out[1].min() == 0 and out[1].max() == 1
    assert torch.allclose(out[1], torch.arange(16.0).view(4, 4) / 15)


def test_constant_saliency_gives_zeros_without_nan():
    torch.manual_seed(0)
    model = nn.Sequential(  # the output ignores the image entirely
        nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * SIZE * SIZE, 3)
    )
    with torch.no_grad():
        model[2].weight.zero_()
    for slug in SALIENCY_SLUGS:
        sal = make_method(slug).explain(model, make_images(2)).saliency
        assert torch.equal(sal, torch.zeros(2, SIZE, SIZE)), slug


# ---------------------------------------------------------------------------- Grad-CAM


def bilinear_align_corners(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize where the corner pixels of input and output coincide."""

    def axis(n_in: int, n_out: int):
        pos = np.arange(n_out) * (n_in - 1) / (n_out - 1)
        low = np.floor(pos).astype(int)
        high = np.minimum(low + 1, n_in - 1)
        return low, high, pos - low

    r0, r1, fr = axis(grid.shape[0], height)
    c0, c1, fc = axis(grid.shape[1], width)
    rows = grid[r0] * (1 - fr)[:, None] + grid[r1] * fr[:, None]
    return rows[:, c0] * (1 - fc)[None] + rows[:, c1] * fc[None]


def test_gradcam_matches_a_hand_computation():
    model = make_tiny().eval()
    images = make_images(2)
    targets = torch.tensor([1, 4])
    result = GradCAM(target_layer="features").explain(model, images, targets)

    for i in range(2):
        activation = model.features(images[i : i + 1]).detach().requires_grad_(True)
        logit = model.fc(activation.mean(dim=(2, 3)))[0, targets[i]]
        (grad,) = torch.autograd.grad(logit, activation)
        weights = grad.mean(dim=(2, 3))[0]  # alpha_k
        cam = torch.relu((weights[:, None, None] * activation[0]).sum(dim=0)).detach()
        assert torch.allclose(result.extras["raw_cam"][i], cam, atol=1e-6)
        up = bilinear_align_corners(cam.numpy().astype(np.float64), SIZE, SIZE)
        expected = (up - up.min()) / (up.max() - up.min())
        assert np.allclose(result.saliency[i].numpy(), expected, atol=1e-5)
    assert result.extras["raw_cam"].shape == (2, SIZE // 2, SIZE // 2)
    assert result.extras["target_layer"] == "features"


class PlantedNet(nn.Module):
    """Class 0's logit sees only the top-left 12x12 pixels; class 1's logit is constant.

    Fixed weights: channel 0 = relu(sum of colours), channel 1 = relu(-sum of colours),
    max-pooled by 2, then multiplied by a mask of the top-left 6x6 cells (12x12 pixels).
    """

    region = (slice(0, 12), slice(0, 12))

    def __init__(self, size: int = 32) -> None:
        super().__init__()
        conv = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.tensor([1.0, -1.0])[:, None].expand(2, 3)[..., None, None])
        mask = torch.zeros(1, 1, size // 2, size // 2)
        mask[..., :6, :6] = 1
        self.features = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), Mask(mask))
        self.register_buffer("cells", mask.sum())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit0 = self.features(x).sum(dim=(1, 2, 3)) / self.cells
        return torch.stack([logit0, torch.ones_like(logit0)], dim=1)


class Mask(nn.Module):
    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


def planted_images() -> torch.Tensor:
    """Textured everywhere (so the blur baseline differs from the image everywhere)."""
    return 2.0 * torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("slug", SALIENCY_SLUGS)
def test_planted_region_gets_most_of_the_weight(slug):
    model = PlantedNet()
    # I-GOS masks at one cell per pixel: at 16 cells the bilinear tents of the cells on the
    # region's border spread about a fifth of a saturated mask outside it, which is the
    # interpolation, not the optimization (test_igos.py checks masks coarser than pixels).
    params = {"resolution": 32} if slug in ("igos", "igospp") else {}
    sal = make_method(slug, **params).explain(model, planted_images(), torch.tensor([0, 0]))
    sal = sal.saliency
    inside = sal[:, PlantedNet.region[0], PlantedNet.region[1]].sum(dim=(1, 2))
    share = inside / sal.sum(dim=(1, 2))
    assert (share > 0.8).all(), share  # the region is 14% of the image
    peak = sal.flatten(1).argmax(dim=1)
    assert ((peak // 32 < 12) & (peak % 32 < 12)).all()


def test_auto_target_layer_resnet18_is_layer4():
    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=8)
    images = torch.randn(2, 3, 64, 64)
    result = GradCAM().explain(model, images)
    assert result.extras["target_layer"] == "layer4"
    assert result.extras["raw_cam"].shape == (2, 2, 2)
    assert result.saliency.shape == (2, 64, 64)
    assert hooks_left(model) == []


def test_auto_target_layer_prefers_features_over_a_later_resampling_pool():
    torch.manual_seed(0)

    class VggLike(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))  # like VGG: 4-D, after features
            self.classifier = nn.Linear(4 * 49, 3)

        def forward(self, x):
            return self.classifier(self.avgpool(self.features(x)).flatten(1))

    model = VggLike()
    assert resolve_target_layer(model, make_images(1)) == "features"
    assert hooks_left(model) == []


def test_auto_target_layer_otherwise_last_block_with_a_spatial_map():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()),  # the block, not its conv
        nn.AdaptiveAvgPool2d(1),  # 4-D but 1x1
        nn.Flatten(),
        nn.Linear(4, 3),
    )
    assert resolve_target_layer(model, make_images(1)) == "1"
    assert hooks_left(model) == []


def test_auto_target_layer_without_a_spatial_map_raises_and_leaves_no_hooks():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 3))
    with pytest.raises(ValueError, match="no module outputs a 4-D feature map"):
        GradCAM().explain(model, make_images(2))
    assert hooks_left(model) == []


def test_auto_target_layer_probe_failure_leaves_no_hooks():
    model = make_tiny()
    model.explode_on_grad = True
    with pytest.raises(RuntimeError, match="boom"):
        resolve_target_layer(model, make_images(1).requires_grad_(True))
    assert hooks_left(model) == []


def test_gradcam_uses_the_logit_not_the_probability():
    model = make_tiny().eval()
    images = make_images(1)
    target = torch.tensor([2])
    result = GradCAM(target_layer="features").explain(model, images, target)
    activation = model.features(images).detach().requires_grad_(True)
    prob = model.fc(activation.mean(dim=(2, 3))).softmax(dim=1)[0, 2]
    (grad,) = torch.autograd.grad(prob, activation)
    cam_prob = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * activation).sum(dim=1))[0]
    assert not torch.allclose(result.extras["raw_cam"][0], cam_prob.detach(), atol=1e-4)


# ---------------------------------------------------------------------------- integrated gradients


def test_ig_path_images_are_batched_by_batch_size():
    model = make_tiny()
    images = make_images(3)
    IntegratedGradients(steps=5, batch_size=4).explain(model, images)
    grad_calls = model.calls[1:]  # after the scoring pass
    path_calls = grad_calls[: math.ceil(3 * 5 / 4)]
    assert path_calls == [4, 4, 4, 3]
    assert max(model.calls) <= 4


def test_ig_matches_a_hand_computation_and_completeness():
    torch.manual_seed(0)
    model = nn.Sequential(  # smooth, so the Riemann sum converges fast
        nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)
    )
    images = make_images(2, size=8)
    targets = torch.tensor([0, 2])
    steps = 64
    result = IntegratedGradients(steps=steps, baseline="zeros").explain(model, images, targets)

    attributions = result.extras["attributions"]
    for i in range(2):
        grads = []
        for k in range(1, steps + 1):
            point = (images[i : i + 1] * k / steps).requires_grad_(True)
            prob = model(point).softmax(dim=1)[0, targets[i]]
            grads.append(torch.autograd.grad(prob, point)[0])
        expected = images[i] * torch.cat(grads).mean(dim=0)
        assert torch.allclose(attributions[i], expected, atol=1e-6)
        with torch.no_grad():
            gap = (
                model(images[i : i + 1]).softmax(1)[0, targets[i]]
                - model(torch.zeros_like(images[i : i + 1])).softmax(1)[0, targets[i]]
            )
        assert abs(attributions[i].sum() - gap) < 0.02 * abs(gap) + 1e-4
    assert result.extras["convergence_delta"].abs().max() < 0.02
    expected_sal = normalize_per_image(attributions.sum(dim=1).clamp(min=0))
    assert torch.allclose(result.saliency, expected_sal)


def test_ig_default_baseline_is_the_blurred_image():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)
    )
    images = make_images(2, size=8)
    targets = torch.tensor([1, 1])
    result = IntegratedGradients(steps=64).explain(model, images, targets)
    with torch.no_grad():
        probs = {
            name: model(start).softmax(dim=1)[:, 1]
            for name, start in [
                ("image", images),
                ("blur", blur_baseline(images)),
                ("zeros", torch.zeros_like(images)),
            ]
        }
    total = result.extras["attributions"].sum(dim=(1, 2, 3))
    assert torch.allclose(total, probs["image"] - probs["blur"], atol=1e-3)
    assert not torch.allclose(total, probs["image"] - probs["zeros"], atol=1e-3)


# ---------------------------------------------------------------------------- baselines


def test_gaussian_blur_kernel_and_borders():
    impulse = torch.zeros(1, 1, 21, 21)
    impulse[..., 10, 10] = 1
    out = gaussian_blur(impulse, kernel_size=7, sigma=2.0)
    g = torch.exp(-((torch.arange(7.0) - 3) ** 2) / 8)
    g = g / g.sum()
    assert torch.allclose(out[0, 0, 7:14, 7:14], g[:, None] * g[None], atol=1e-7)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-6)
    constant = torch.full((2, 3, 9, 9), 0.7)
    assert torch.allclose(gaussian_blur(constant, kernel_size=7, sigma=3.0), constant)
    assert torch.allclose(gaussian_blur(constant, kernel_size=51, sigma=50.0), constant)


def test_blur_baseline_scales_with_the_input_size(monkeypatch):
    seen = []

    def spy(images, *, kernel_size, sigma):
        seen.append((kernel_size, sigma))
        return images

    monkeypatch.setattr("explain_engine.methods.baselines.gaussian_blur", spy)
    blur_baseline(torch.zeros(1, 3, 224, 224))
    blur_baseline(torch.zeros(1, 3, 64, 64))
    assert seen[0] == (51, 50.0)
    assert seen[1][0] == 15 and seen[1][1] == pytest.approx(50 * 64 / 224)


def test_zeros_baseline_is_the_dataset_mean():
    images = make_images(2)
    assert torch.equal(zeros_baseline(images), torch.zeros_like(images))
