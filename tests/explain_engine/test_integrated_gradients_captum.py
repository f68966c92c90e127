"""Our integrated gradients equal Captum's, with the same right-Riemann alphas."""

import pytest
import torch
from torch import nn

from explain_engine.methods import get_method
from explain_engine.methods.baselines import blur_baseline

captum_attr = pytest.importorskip("captum.attr")


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 5),
    ).eval()


@pytest.mark.parametrize("baseline", ["zeros", "blur"])
@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_integrated_gradients_equal_captum(baseline, batch_size):
    model = tiny_cnn()
    images = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([1, 3])
    ours = get_method(
        "integrated_gradients", steps=16, baseline=baseline, batch_size=batch_size
    ).explain(model, images, targets)
    reference = blur_baseline(images) if baseline == "blur" else torch.zeros_like(images)
    # Our scores are softmax probabilities of the target (methods.md, decision 2).
    captum = captum_attr.IntegratedGradients(lambda x: torch.softmax(model(x), dim=1))
    expected = captum.attribute(
        images, baselines=reference, target=targets, n_steps=16, method="riemann_right"
    )
    assert expected.abs().max() > 1e-4
    torch.testing.assert_close(ours.extras["attributions"], expected, rtol=1e-5, atol=1e-7)
