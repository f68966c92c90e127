"""Seconds per image of each saliency method, and its overhead over the bare network passes.

Run: ``.venv/bin/python benchmarks/saliency_speed.py [--model demo|resnet50] [--images 8]``

``--model demo`` (default) uses the demo classifier of ``saliency_quality.py`` (small_cnn at
128 px, trained once and cached under /tmp) on its test images; ``--model resnet50`` builds
an untrained torchvision ResNet50 (``weights=None``, 1000 classes) on random 224-px images,
the setting of the "< 1 s per image on an H100" goal for iGOS++ at a 28x28 mask.

For each method the model is wrapped in a counter that records every forward call's batch
size and whether gradients were enabled. "bare" is the time the same numbers of images take
through plain batched forward+backward passes (for the gradient calls) and forward passes
(for the others) at the method's batch size, measured separately on the same device;
"ratio" = method seconds / bare seconds, i.e. the method's own overhead (compositing,
noise, line-search bookkeeping, Python).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from explain_engine.methods import get_method  # noqa: E402

METHODS = ("igospp", "igos", "integrated_gradients", "gradcam")


class Counting(nn.Module):
    """Forwards to `model`, recording (batch size, grad enabled) per call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls: list[tuple[int, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.shape[0], torch.is_grad_enabled() and x.requires_grad))
        return self.model(x)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def per_image_pass_seconds(model, images, batch_size, device, *, backward: bool) -> float:
    """Seconds per image of one batched forward (+ backward to the input) pass."""
    batch = images[:1].expand(batch_size, -1, -1, -1).contiguous()
    model.eval().requires_grad_(False)

    def once() -> None:
        x = batch.clone().requires_grad_(backward)
        with torch.set_grad_enabled(backward):
            out = model(x).softmax(1)[:, 0].sum()
            if backward:
                torch.autograd.grad(out, x)

    once()
    synchronize(device)
    repeats = 3
    started = time.perf_counter()
    for _ in range(repeats):
        once()
    synchronize(device)
    return (time.perf_counter() - started) / (repeats * batch_size)


def load(args: argparse.Namespace):
    if args.model == "demo":
        from saliency_quality import demo_classifier_and_test_images

        model, images, _ = demo_classifier_and_test_images()
        return model, images[: args.images]
    from torchvision.models import resnet50

    torch.manual_seed(0)
    model = resnet50(weights=None, num_classes=1000).eval()
    images = torch.randn(args.images, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    return model, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["demo", "resnet50"], default="demo")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--resolution", type=int, default=28)
    parser.add_argument("--iterations", type=int, help="I-GOS iterations (default: theirs)")
    parser.add_argument("--steps", type=int, help="I-GOS/IG steps (default: the methods')")
    parser.add_argument("--scoring", choices=["path", "plain"], help="I-GOS line search")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    model, images = load(args)
    model = model.to(device)
    images = images.to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"model={args.model} input={images.shape[-1]} px, {len(images)} images, device={name}, "
        f"torch threads={torch.get_num_threads()}, batch_size={args.batch_size}, "
        f"I-GOS resolution={args.resolution} iterations={args.iterations} steps={args.steps} "
        f"scoring={args.scoring} (None: the methods' defaults)",
        flush=True,
    )
    fb = per_image_pass_seconds(model, images, args.batch_size, device, backward=True)
    f = per_image_pass_seconds(model, images, args.batch_size, device, backward=False)
    print(f"bare pass, per image: forward+backward {fb * 1e3:.2f} ms, forward {f * 1e3:.2f} ms")
    header = (
        f"{'method':<22} {'s/image':>9} {'fwd+bwd imgs':>13} {'fwd imgs':>9} "
        f"{'bare s/image':>12} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for slug in args.methods:
        params: dict = {"batch_size": args.batch_size}
        chosen = {"steps": args.steps}
        if slug in ("igos", "igospp"):
            chosen.update(iterations=args.iterations, scoring=args.scoring)
            params["resolution"] = args.resolution
        if slug in ("igos", "igospp", "integrated_gradients"):
            params.update({key: value for key, value in chosen.items() if value is not None})
        method = get_method(slug, **params)
        counting = Counting(model)
        # Warm-up (one I-GOS iteration is enough to touch every code path).
        warm = {"iterations": 1} if slug in ("igos", "igospp") else {}
        get_method(slug, **{**params, **warm}).explain(counting, images[:1])
        counting.calls.clear()
        synchronize(device)
        started = time.perf_counter()
        method.explain(counting, images)
        synchronize(device)
        seconds = time.perf_counter() - started
        grad_images = sum(n for n, grad in counting.calls if grad)
        plain_images = sum(n for n, grad in counting.calls if not grad)
        bare = grad_images * fb + plain_images * f
        print(
            f"{slug:<22} {seconds / len(images):>9.3f} {grad_images:>13} {plain_images:>9} "
            f"{bare / len(images):>12.3f} {seconds / bare:>6.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
