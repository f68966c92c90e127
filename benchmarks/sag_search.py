"""SAG search cost and what it finds: forward passes, seconds, diverse MSEs, MSE sizes.

Run: ``.venv/bin/python benchmarks/sag_search.py [--model demo|resnet50] [--images 50]
[--device cpu|cuda] [--threads 1] [--time-limit 900]``

``--model demo`` (default) uses the demo classifier of ``saliency_quality.py`` (small_cnn at
128 px, trained once and cached under /tmp) on its test images; ``--model resnet50`` an
untrained torchvision ResNet50 (``weights=None``, 1000 classes) on random 224-px images, as
in ``saliency_speed.py``. SAG runs with its defaults (7x7 grid, beam 3, q = 15, at most 10
MSEs, black baseline) and ``--batch-size`` images per forward pass, ``--chunk`` images per
``explain`` call; ``--time-limit`` stops after the chunk that passes it (the images done are
reported).

The model is wrapped in a counter of every forward call's batch size and whether gradients
were on (the I-GOS patch ranking) or off (the search, the minimization and the graph).
"bare" is the time the same numbers of images take through plain batched forward+backward
and forward passes at the batch size, measured on the same device before and after the run
(the faster of the two); "ratio" = SAG seconds / bare seconds, SAG's own overhead
(compositing, Python bookkeeping, chunks smaller than the batch size). On a shared CPU the
ratio is only as good as the machine is quiet.

Then: the share of images with at least one MSE and with two or more diverse roots (MSEs
pairwise sharing at most one patch), and the distribution of MSE sizes (patches), over all
MSEs found and over each image's smallest.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from saliency_speed import Counting, load, per_image_pass_seconds, synchronize  # noqa: E402

from explain_engine.methods import SAG  # noqa: E402

SIZE_BUCKETS = ((1, 2), (3, 5), (6, 10), (11, 20), (21, 35), (36, 49))


def describe(sizes: list[int]) -> str:
    if not sizes:
        return "none"
    q = np.percentile(sizes, [0, 25, 50, 75, 100])
    shares = [sum(lo <= s <= hi for s in sizes) / len(sizes) for lo, hi in SIZE_BUCKETS]
    buckets = "  ".join(
        f"{lo}-{hi}: {share:.0%}" for (lo, hi), share in zip(SIZE_BUCKETS, shares, strict=True)
    )
    return (
        f"n={len(sizes)}  min {q[0]:.0f}  q1 {q[1]:.0f}  median {q[2]:.0f}  q3 {q[3]:.0f}  "
        f"max {q[4]:.0f}\n      {buckets}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["demo", "resnet50"], default="demo")
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=4, help="images per explain call")
    parser.add_argument(
        "--max-depth", type=int, default=49, help="SAG max_depth (lower for a quick smoke run)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--time-limit", type=float, default=None, help="seconds")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    model, images = load(args)
    model = model.to(device).eval()
    images = images.to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    sag = SAG(batch_size=args.batch_size, max_depth=args.max_depth)
    print(
        f"model={args.model} input={images.shape[-1]} px, up to {len(images)} images, "
        f"device={name}, torch threads={torch.get_num_threads()}, batch_size={args.batch_size}, "
        f"max_depth={args.max_depth}",
        flush=True,
    )

    def bare_passes() -> tuple[float, float]:
        fb = per_image_pass_seconds(model, images, args.batch_size, device, backward=True)
        f = per_image_pass_seconds(model, images, args.batch_size, device, backward=False)
        print(f"bare pass, per image: forward+backward {fb * 1e3:.2f} ms, forward {f * 1e3:.2f} ms")
        return fb, f

    before = bare_passes()

    counting = Counting(model)
    sag.explain(counting, images[:1])  # warm-up
    counting.calls.clear()
    graphs = []
    seconds = 0.0
    for start in range(0, len(images), args.chunk):
        synchronize(device)
        started = time.perf_counter()
        graphs += sag.explain(counting, images[start : start + args.chunk]).graphs
        synchronize(device)
        seconds += time.perf_counter() - started
        print(f"  {len(graphs)} images, {seconds / len(graphs):.2f} s/image so far", flush=True)
        if args.time_limit is not None and seconds > args.time_limit:
            break

    # Measured again after the run; the faster of the two is used, since on a shared
    # machine other load only ever slows a measurement down.
    after = bare_passes()
    fb, f = min(before[0], after[0]), min(before[1], after[1])
    n = len(graphs)
    grad_images = sum(size for size, grad in counting.calls if grad)
    plain_images = sum(size for size, grad in counting.calls if not grad)
    bare = grad_images * fb + plain_images * f
    header = (
        f"{'images':>6} {'s/image':>9} {'fwd+bwd imgs':>13} {'fwd imgs':>9} "
        f"{'bare s/image':>12} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    print(
        f"{n:>6} {seconds / n:>9.3f} {grad_images / n:>13.0f} {plain_images / n:>9.0f} "
        f"{bare / n:>12.3f} {seconds / bare:>6.2f}"
    )
    with_mse = sum(bool(g.mses) for g in graphs)
    diverse = sum(len(g.roots) >= 2 for g in graphs)
    print(f"images with an MSE: {with_mse}/{n} ({with_mse / n:.0%})")
    print(f"images with two or more diverse MSEs (roots): {diverse}/{n} ({diverse / n:.0%})")
    print(f"MSEs per image: mean {np.mean([len(g.mses) for g in graphs]):.1f}")
    print("MSE sizes, all MSEs: " + describe([len(m.patches) for g in graphs for m in g.mses]))
    smallest = [min(len(m.patches) for m in g.mses) for g in graphs if g.mses]
    print("MSE sizes, each image's smallest: " + describe(smallest))
    print(
        f"graph per image: mean {np.mean([len(g.nodes) for g in graphs]):.1f} nodes, "
        f"{np.mean([len(g.edges) for g in graphs]):.1f} edges, "
        f"{np.mean([len(g.pairs) for g in graphs]):.1f} comparative pairs"
    )


if __name__ == "__main__":
    main()
