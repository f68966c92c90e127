"""Deletion / insertion metrics: both protocols pinned by hand computations on toy models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from explain_engine.methods import get_method
from explain_engine.methods.baselines import blur_baseline, gaussian_blur
from explain_engine.metrics import deletion_insertion
from tests.explain_engine.test_igos import PLANTED_CELLS, planted_setup
from tests.explain_engine.test_methods import bilinear_align_corners, hooks_left


class MeanProb(nn.Module):
    """p(class 0) = 0.1 + 0.8 * mean of channel 0 (for channel-0 values in [0, 1]), exactly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 0.1 + 0.8 * x[:, 0].mean(dim=(1, 2))
        return torch.stack([s.log(), (1 - s).log()], dim=1)


class Linear(nn.Module):
    """Logits = W x + b on the flattened image, with fixed seeded weights."""

    def __init__(self, size: int, classes: int = 3) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(5)
        self.weight = nn.Parameter(
            torch.randn(classes, 3 * size * size, generator=generator) / size
        )
        self.bias = nn.Parameter(torch.randn(classes, generator=generator))
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        return x.flatten(1) @ self.weight.T + self.bias


def softmax_np(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def test_rise_protocol_literal_numbers():
    image = torch.zeros(1, 3, 2, 2)
    image[0, 0] = torch.tensor([[0.8, 0.4], [0.2, 0.6]])
    saliency = image[:, 0].clone()  # order: (0,0), (1,1), (0,1), (1,0)
    result = deletion_insertion(
        MeanProb(), image, saliency, torch.tensor([0]), protocol="rise", batch_size=2
    )
    # Two pixels (the width) per step: fractions 0, 1/2, 1.
    assert torch.allclose(result.fractions, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    # Deletion to zeros: channel-0 means 0.5, 0.15, 0 -> p = 0.5, 0.22, 0.1.
    assert torch.allclose(
        result.deletion_curve, torch.tensor([[0.5, 0.22, 0.1]], dtype=torch.float64), atol=1e-6
    )
    # Trapezoid over [0, 1]: 0.5 * (0.5 + 0.22) / 2 + 0.5 * (0.22 + 0.1) / 2 = 0.26.
    assert result.deletion_auc.item() == pytest.approx(0.26, abs=1e-6)
    # Insertion from the 11x11, sigma-5 blur; revealed pixels come from the image.
    canvas = gaussian_blur(image, kernel_size=11, sigma=5.0)[0, 0].double()
    step1 = canvas.clone()
    step1[0, 0], step1[1, 1] = 0.8, 0.6
    expected = [0.1 + 0.8 * canvas.mean().item(), 0.1 + 0.8 * step1.mean().item(), 0.5]
    assert result.insertion_curve[0].tolist() == pytest.approx(expected, abs=1e-6)
    trapezoid = 0.25 * (expected[0] + expected[1]) + 0.25 * (expected[1] + expected[2])
    assert result.insertion_auc.item() == pytest.approx(trapezoid, abs=1e-6)


def hand_curves(model: Linear, images, saliency, target, resolution, *, protocol):
    """The curves and areas computed independently in float64 NumPy."""
    x = images.double().numpy()
    w = model.weight.detach().double().numpy()
    b = model.bias.detach().double().numpy()
    size = x.shape[-1]
    if protocol == "igos":
        deleted = inserted = blur_baseline(images).double().numpy()
        cells = resolution * resolution
        per_step = max(1, cells // 50)
    else:
        deleted = np.zeros_like(x)
        inserted = gaussian_blur(images, kernel_size=11, sigma=5.0).double().numpy()
        cells, per_step = size * size, size
    out = []
    for i in range(x.shape[0]):
        order = np.argsort(-saliency[i].double().numpy().ravel(), kind="stable")
        counts = list(range(0, cells, per_step)) + [cells]
        del_curve, ins_curve = [], []
        for n in counts:
            untouched = np.ones(cells)
            untouched[order[:n]] = 0
            if protocol == "igos":
                grid = untouched.reshape(resolution, resolution)
                up = bilinear_align_corners(grid, size, size)
            else:
                up = untouched.reshape(size, size)
            for canvas, curve in (
                (x[i] * up + deleted[i] * (1 - up), del_curve),
                (inserted[i] * up + x[i] * (1 - up), ins_curve),
            ):
                curve.append(softmax_np(w @ canvas.ravel() + b)[target[i]])
        fractions = np.array(counts) / cells
        widths = np.diff(fractions)
        if protocol == "igos":
            aucs = [float(np.sum(np.array(c[1:]) * widths)) for c in (del_curve, ins_curve)]
        else:
            aucs = [
                float(np.sum(0.5 * (np.array(c[1:]) + np.array(c[:-1])) * widths))
                for c in (del_curve, ins_curve)
            ]
        out.append((del_curve, ins_curve, aucs, fractions))
    return out


@pytest.mark.parametrize(
    ("protocol", "resolution", "size"),
    [("igos", 4, 32), ("igos", 7, 32), ("igos", 28, 32), ("rise", None, 12)],
)
def test_curves_match_a_hand_computation(protocol, resolution, size):
    model = Linear(size)
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    side = resolution or size
    saliency = torch.rand(2, side, side, generator=torch.Generator().manual_seed(4))
    targets = torch.tensor([0, 2])
    result = deletion_insertion(
        model, images, saliency, targets, protocol=protocol, resolution=resolution, batch_size=7
    )
    expected = hand_curves(model, images, saliency, targets, resolution, protocol=protocol)
    for i, (del_curve, ins_curve, aucs, fractions) in enumerate(expected):
        assert np.allclose(result.fractions.numpy(), fractions)
        assert np.allclose(result.deletion_curve[i].numpy(), del_curve, atol=1e-5)
        assert np.allclose(result.insertion_curve[i].numpy(), ins_curve, atol=1e-5)
        assert result.deletion_auc[i].item() == pytest.approx(aucs[0], abs=1e-5)
        assert result.insertion_auc[i].item() == pytest.approx(aucs[1], abs=1e-5)
    assert max(model.calls) <= 7


def test_igos_step_counts_and_no_last_step_bug():
    size, resolution = 32, 28
    model = Linear(size)
    images = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(2))
    saliency = torch.rand(1, resolution, resolution, generator=torch.Generator().manual_seed(4))
    result = deletion_insertion(model, images, saliency, torch.tensor([1]), resolution=28)
    # 784 cells, 15 per step: 52 full steps and a last one of 4 cells.
    assert len(result.fractions) == 1 + math.ceil(784 / 15)
    assert result.fractions[-2].item() == pytest.approx(780 / 784)
    assert result.fractions[-1].item() == 1.0
    curve = result.deletion_curve[0]
    correct = (curve[1:-1].sum() * 15 + curve[-1] * 4) / 784
    buggy = (curve[1:-1].sum() * 15 + 4) / 784  # the authors' code adds the count on the last step
    assert result.deletion_auc[0].item() == pytest.approx(correct.item(), abs=1e-12)
    assert abs(correct - buggy) > 1e-4
    # The last points are the fully blurred image and the original image.
    with torch.no_grad():
        blurred = model(blur_baseline(images)).softmax(1)[0, 1]
        original = model(images).softmax(1)[0, 1]
    assert curve[-1].item() == pytest.approx(blurred.item(), abs=1e-6)
    assert result.deletion_curve[0, 0].item() == pytest.approx(original.item(), abs=1e-6)
    assert result.insertion_curve[0, -1].item() == pytest.approx(original.item(), abs=1e-6)
    assert result.insertion_curve[0, 0].item() == pytest.approx(blurred.item(), abs=1e-6)


def test_full_resolution_saliency_is_area_averaged_to_the_cells():
    size = 32
    model = Linear(size)
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    cells = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(4))
    full = cells.repeat_interleave(8, dim=1).repeat_interleave(8, dim=2)
    a = deletion_insertion(model, images, full, resolution=4)
    b = deletion_insertion(model, images, cells)
    assert torch.allclose(a.deletion_auc, b.deletion_auc)
    assert torch.allclose(a.insertion_auc, b.insertion_auc)


def test_batched_equals_unbatched_and_default_target_and_state():
    size = 16
    model = Linear(size)
    model.train()
    images = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(2))
    copy = images.clone()
    saliency = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(4))
    one = deletion_insertion(model, images, saliency, batch_size=1)
    many = deletion_insertion(model, images, saliency, batch_size=50)
    for name in ("deletion_auc", "insertion_auc", "deletion_curve", "insertion_curve"):
        assert torch.allclose(getattr(one, name), getattr(many, name), atol=1e-6), name
    with torch.no_grad():
        assert torch.equal(one.targets, model(images).argmax(1))
    assert torch.equal(images, copy)
    assert model.training and model.weight.requires_grad and model.weight.grad is None
    assert hooks_left(model) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "lime"}, "protocol must be one of"),
        ({"protocol": "rise", "resolution": 4}, "resolution must be None"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"saliency": torch.rand(2, 4, 5)}, "square cells"),
        ({"saliency": torch.rand(3, 4, 4)}, "B = 2"),
        ({"targets": torch.tensor([0.0, 1.0])}, "integer tensor"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    model = Linear(8)
    args = {"saliency": torch.rand(2, 4, 4), **kwargs}
    saliency = args.pop("saliency")
    with pytest.raises(ValueError, match=message):
        deletion_insertion(model, torch.randn(2, 3, 8, 8), saliency, **args)
    assert model.calls == []


@pytest.mark.parametrize("slug", ["igos", "igospp"])
def test_planted_region_first_deletes_faster_than_random_order(slug):
    model, images, targets = planted_setup()
    method = get_method(slug, resolution=8, iterations=5, steps=5)
    mask = method.explain(model, images, targets).extras["mask"]
    found = deletion_insertion(model, images, 1 - mask, targets)
    oracle = torch.zeros(len(images), 8, 8)
    oracle[:, PLANTED_CELLS, PLANTED_CELLS] = 1
    planted = deletion_insertion(model, images, oracle, targets)
    repeats = 8  # random orders per image
    random = deletion_insertion(
        model,
        images.repeat_interleave(repeats, dim=0),
        torch.rand(len(images) * repeats, 8, 8, generator=torch.Generator().manual_seed(0)),
        targets.repeat_interleave(repeats),
    )
    random_deletion = random.deletion_auc.view(-1, repeats).mean(1)
    random_insertion = random.insertion_auc.view(-1, repeats).mean(1)
    assert (planted.deletion_auc < 0.6 * random_deletion).all(), (planted, random_deletion)
    assert (found.deletion_auc < 0.6 * random_deletion).all(), (found, random_deletion)
    assert (found.insertion_auc > random_insertion + 0.1).all(), (found, random_insertion)
