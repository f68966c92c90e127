"""XNN on CUDA: the same fit and concept heatmaps as on the CPU (skipped without a GPU).

`benchmarks/run_gpu_checks.sh` runs it on a GPU machine. The classifier runs on its device
(feature extraction, Excitation Backprop); the SRAE trains on the CPU either way, so the two
fits differ only by the GPU's rounding of the features.
"""

from __future__ import annotations

import pytest
import torch

from explain_engine.classifiers import SmallCNN
from explain_engine.methods.xnn import XNN

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _fit_and_explain(device: str):
    torch.manual_seed(0)
    model = SmallCNN(num_classes=4).eval().to(device)
    g = torch.Generator().manual_seed(1)
    train, test = torch.randn(48, 3, 64, 64, generator=g), torch.randn(16, 3, 64, 64, generator=g)
    xnn = XNN(k=3, seed=0, epochs=10, pretrain_epochs=2, max_attempts=1, batch_size=8)
    report = xnn.fit(model, train, holdout=test, accept_weak_fit=True)
    return model, xnn, report, test


def test_xnn_fit_and_concept_heatmaps_on_cuda_match_the_cpu():
    cpu_model, cpu_xnn, cpu_report, test = _fit_and_explain("cpu")
    cuda_model, cuda_xnn, cuda_report, _ = _fit_and_explain("cuda")
    assert cuda_report.holdout_r2 == pytest.approx(cpu_report.holdout_r2, abs=0.05)
    # the same fitted XNN explains alike on either device
    on_cpu = cpu_xnn.explain(cpu_model, test[:6])
    on_cuda = cpu_xnn.explain(cuda_model, test[:6])
    assert on_cuda.heatmap_method == on_cpu.heatmap_method == "cmwp"
    assert on_cuda.heatmap_layer == on_cpu.heatmap_layer
    torch.testing.assert_close(on_cuda.activations, on_cpu.activations, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(on_cuda.heatmaps, on_cpu.heatmaps, rtol=0, atol=2e-3)
    assert on_cuda.heatmaps.device.type == "cpu"
    # and the CUDA fit's own heatmaps are valid maps
    maps = cuda_xnn.explain(cuda_model, test[:2]).heatmaps
    assert maps.shape == (2, 3, 64, 64)
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1
