"""Excitation Backprop from XNN concept nodes: the MWP rules on every supported architecture."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explain_engine.classifiers import SUPPORTED_ARCHITECTURES, build_model
from explain_engine.methods.base import scoped_model_state
from explain_engine.methods.gradcam import resolve_target_layer
from explain_engine.methods.xnn import XNN, SparseReconstructionAutoencoder, concept_heatmaps

#: Input sides small enough for a quick CPU test, large enough for every stride of each model.
SIDES = {"vgg16": 32}


def _tiny(architecture: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(architecture, num_classes=3).eval()
    side = SIDES.get(architecture, 64)
    images = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    return model, images


def _srae_for(
    model: nn.Module, images: torch.Tensor, k: int = 3
) -> SparseReconstructionAutoencoder:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    torch.manual_seed(2)
    return SparseReconstructionAutoencoder(last.in_features, k, 3).eval()


@pytest.mark.parametrize("architecture", SUPPORTED_ARCHITECTURES)
def test_excitation_backprop_is_non_negative_and_conserves_mass_at_every_layer(architecture):
    torch.set_num_threads(1)
    model, images = _tiny(architecture)
    srae = _srae_for(model, images)
    for method in ("mwp", "cmwp"):
        record: list[tuple[str, torch.Tensor]] = []
        with scoped_model_state(model), torch.enable_grad():
            maps, layer = concept_heatmaps(
                model, srae.encoder, images, method=method, layer=None, record=record
            )
        masses = torch.stack([mass for _, mass in record])  # (steps, 2k or k signals, B)
        assert masses.shape[0] >= 5
        assert float((masses - 1).abs().max()) <= 1e-5, [
            n for n, m in record if (m - 1).abs().max() > 1e-5
        ]
        assert maps.shape[:2] == (2, 3) and bool((maps >= 0).all())
        assert 8 * min(maps.shape[-2:]) >= images.shape[-1], layer


def _chain_cmwp(model: nn.Module, srae: SparseReconstructionAutoencoder, images, stop: int):
    """The chain c-MWP this project used for VGG16 before Excitation Backprop was general.

    The model as a sequence of leaf modules; maps read at the input of step `stop`.
    """
    steps = [*model.features, model.avgpool, nn.Flatten(), *model.classifier[:-1]]

    def mwp(module, x, p):
        if isinstance(module, (nn.ReLU, nn.Dropout, nn.Flatten)):
            return p.reshape(x.shape)
        xx = x.detach().clamp(min=0).requires_grad_(True)
        if isinstance(module, nn.MaxPool2d):
            z = module(xx)
            return torch.autograd.grad(z, xx, p.reshape(z.shape))[0]
        if isinstance(module, nn.Conv2d):
            w = module.weight.clamp(min=0)
            z = F.conv2d(xx, w, None, module.stride, module.padding)
        elif isinstance(module, nn.Linear):
            z = F.linear(xx.flatten(1), module.weight.clamp(min=0))
        else:  # average pooling
            z = module(xx)
        p = p.reshape(z.shape)
        ratio = torch.where(z > 1e-12, p / z.clamp(min=1e-12), torch.zeros_like(p))
        return (xx * torch.autograd.grad(z, xx, ratio)[0]).detach()

    inputs = []
    with torch.no_grad():
        h = images
        for step in steps:
            inputs.append(h)
            h = step(h)
        enc = [h]
        for layer in srae.encoder[:-1]:
            enc.append(F.relu(layer(enc[-1])))
    maps, positive = [], []
    for row in srae.encoder[-1].weight:
        signed = []
        for sign in (1.0, -1.0):
            top = nn.Linear(row.shape[0], 1, bias=False)
            top.weight.data = sign * row[None].detach()
            p = mwp(top, enc[-1], torch.ones(images.shape[0], 1, dtype=images.dtype))
            for layer, x in zip(reversed(srae.encoder[:-1]), reversed(enc[:-1]), strict=True):
                p = mwp(layer, x, p)
            for step, x in zip(reversed(steps[stop:]), reversed(inputs[stop:]), strict=True):
                p = mwp(step, x, p)
            signed.append(p)
        maps.append(F.relu((signed[0] - signed[1]).sum(dim=1)))
        positive.append(signed[0].sum(dim=1))
    return torch.stack(maps, dim=1), torch.stack(positive, dim=1)


def test_excitation_backprop_on_vgg16_equals_the_chain_c_mwp():
    torch.set_num_threads(1)
    model, images = _tiny("vgg16")
    srae = _srae_for(model, images)
    with torch.no_grad():  # the chain path dropped an output firing through its bias alone
        for layer in srae.encoder:
            layer.bias.zero_()
    # c-MWP is a small difference of two near-uniform maps: compare in double precision
    model, srae, images = model.double(), srae.double(), images.double()
    with scoped_model_state(model), torch.enable_grad():
        expected, expected_mwp = _chain_cmwp(model, srae, images, stop=2)  # input of conv1_2
        maps, layer = concept_heatmaps(
            model, srae.encoder, images, method="cmwp", layer=None, read_layer="features.1"
        )
        mwp, _ = concept_heatmaps(
            model, srae.encoder, images, method="mwp", layer=None, read_layer="features.1"
        )
    assert layer == "features.1" and maps.shape == expected.shape == (2, 3, 32, 32)
    torch.testing.assert_close(mwp, expected_mwp, rtol=1e-10, atol=0)
    # on an untrained VGG the contrast is ~1e-9 of each map: compare on the maps' scale
    assert float(expected.max()) > 0
    torch.testing.assert_close(maps, expected, rtol=0, atol=1e-10 * float(expected_mwp.max()))


# ------------------------------------------------------------------------ planted concepts

SIDE = 32
#: (row, column) offset of each quadrant; concept j responds to quadrant j.
QUADRANTS = [(0, 0), (0, 16), (16, 0), (16, 16)]


def _planted() -> tuple[nn.Module, XNN, torch.Tensor, torch.Tensor]:
    """A CNN whose 16 features are 4 channels x 4 quadrant means, and an XNN whose concept j
    reads channel 0 of quadrant j (and is suppressed by the other quadrants); images with a
    bright square at a random place in each quadrant, the squares' masks (B, 4, H, W)."""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 4),
    ).eval()
    with torch.no_grad():
        model[0].weight.fill_(0.0)
        model[0].weight[:, :, 1, 1] = 1.0 / 3  # the pixel's mean intensity, on every channel
        model[1].running_var.fill_(4.0)  # folded: weights x 0.5
    srae = SparseReconstructionAutoencoder(16, 4, 4)
    with torch.no_grad():
        for layer in srae.encoder:
            layer.weight.zero_()
            layer.bias.zero_()
        srae.encoder[0].weight[:16] = torch.eye(16)
        srae.encoder[1].weight[:, :16] = torch.eye(16)
        for j in range(4):  # flatten order: channel * 4 + quadrant
            srae.encoder[2].weight[j, :4] = -0.3
            srae.encoder[2].weight[j, j] = 1.0
    xnn = XNN.from_state_dict(
        {
            "format": "xnn/2",
            "params": XNN(k=4, mode="shared").params(),
            "fitted_classes": [0, 1, 2, 3],
            "in_dim": 16,
            "weights": [srae.state_dict()],
        }
    )
    g = torch.Generator().manual_seed(3)
    images = 0.1 * torch.rand(6, 3, SIDE, SIDE, generator=g)
    masks = torch.zeros(6, 4, SIDE, SIDE, dtype=torch.bool)
    for b in range(6):
        for j, (top, left) in enumerate(QUADRANTS):
            r, c = (int(v) for v in torch.randint(1, 11, (2,), generator=g))
            images[b, :, top + r : top + r + 4, left + c : left + c + 4] += 1.0 + 0.1 * j
            masks[b, j, top + r : top + r + 4, left + c : left + c + 4] = True
    return model, xnn, images, masks


def test_each_concepts_map_peaks_on_the_region_its_unit_responds_to():
    model, xnn, images, masks = _planted()
    result = xnn.explain(model, images)
    assert result.heatmap_method == "cmwp" and result.heatmaps.shape == (6, 4, SIDE, SIDE)
    peaks = result.heatmaps.flatten(2).argmax(dim=2)  # (B, k)
    inside = masks.flatten(2).gather(2, peaks[..., None])[..., 0]
    assert bool(inside.all()), inside


def test_gradcam_concept_maps_are_an_explicit_option_recorded_in_the_result():
    model, xnn, images, _ = _planted()
    state = xnn.state_dict()
    gradcam = XNN.from_state_dict({**state, "params": {**state["params"], "heatmap": "gradcam"}})
    result = gradcam.explain(model, images[:2])
    assert result.heatmap_method == "gradcam"
    assert result.heatmap_layer == resolve_target_layer(model, images[:1])
    assert xnn.explain(model, images[:2]).heatmap_layer == "2"


def test_an_operation_excitation_backprop_cannot_pass_is_named():
    class Squared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            h = torch.relu(self.conv(x))
            h = h * h  # a product of two full-size tensors: no rule
            return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))

    model = Squared().eval()
    srae = SparseReconstructionAutoencoder(4, 3, 2).eval()
    with scoped_model_state(model), torch.enable_grad(), pytest.raises(ValueError) as error:
        concept_heatmaps(
            model,
            srae.encoder,
            torch.randn(1, 3, 16, 16),
            method="cmwp",
            layer=None,
            read_layer="conv",
        )
    assert "product of two full-size tensors" in str(error.value)
    assert "heatmap='gradcam'" in str(error.value)
