"""Deletion / insertion AUC (``igos`` protocol) of the saliency methods on the demo classifier.

Run: ``.venv/bin/python benchmarks/saliency_quality.py [--images 50] [--resolutions 7 14 28]
[--protocols igos rise] [--scoring path plain]``

The demo classifier is the checkpoint the demo ships (study/design/demo_classifier/, made by
``manage.py train_demo_classifier``: synthetic gulls, ``per_class=60``, ``seed=0``,
``DEMO_TRAINING``); for other settings one is trained here and cached under
``/tmp/explainstudy-bench``. The first ``--images`` test images are explained with
``igospp``, ``igos``, ``integrated_gradients`` and ``gradcam`` for each mask resolution, and
scored with
``metrics.deletion_insertion(protocol="igos", resolution=s)``.

I-GOS and iGOS++ optimize a mask at resolution s; their s x s map (``1 - mask``) is scored
directly, as in the I-GOS code. Integrated gradients and Grad-CAM do not depend on s; their
full-resolution maps are area-averaged to s x s cells by the metric.

``--scoring path plain`` runs I-GOS and iGOS++ once per line-search scoring (the release's
noisy path-averaged objective, or the noise-free one), named ``igospp/path`` etc.; their
iteration counts are the methods' defaults unless ``--iterations`` / ``--steps`` are given.

Prints one row per (resolution, method): mean deletion AUC (lower is better), mean
insertion AUC (higher is better), their difference, and the seconds the method took.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explain_engine import ground_truth as gt  # noqa: E402
from explain_engine.classifiers import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocessing,
    load_model,
)
from explain_engine.datasets.cub import read_cub  # noqa: E402
from explain_engine.datasets.synthetic_birds import generate_synthetic_birds, read_ground_truth  # noqa: E402
from explain_engine.methods import get_method  # noqa: E402
from explain_engine.metrics import deletion_insertion  # noqa: E402
from explain_engine.training import (  # noqa: E402
    DEMO_TRAINING,
    OCCLUSION_GRID,
    save_checkpoint,
    train_classifier,
)

CACHE = Path("/tmp/explainstudy-bench")
SHIPPED_DEMO_CLASSIFIER = Path(__file__).resolve().parent.parent / "study/design/demo_classifier"
METHODS = ("igospp", "igos", "integrated_gradients", "gradcam")


def _shipped_demo_checkpoint(seed: int, per_class: int) -> Path | None:
    """The demo's shipped checkpoint (study/design/demo_classifier/, written by
    `manage.py train_demo_classifier`) when it was trained with these settings: the very
    model the demo registers, instead of one trained here."""
    record_path = SHIPPED_DEMO_CLASSIFIER / "record.json"
    if seed != 0 or per_class != 60 or not record_path.is_file():
        return None
    record = json.loads(record_path.read_text())
    if record["training"] != json.loads(json.dumps({**DEMO_TRAINING, "seed": seed})):
        return None
    return SHIPPED_DEMO_CLASSIFIER / "checkpoint.pt"


def demo_classifier_and_test_images(seed: int = 0, per_class: int = 60, device: str = "cpu"):
    """(model in eval mode, normalized test images (N, 3, S, S), labels (N,)), cached. The
    model is the demo's shipped one for the demo's settings (seed 0, 60 per class), else
    trained here with `DEMO_TRAINING`."""
    CACHE.mkdir(parents=True, exist_ok=True)
    shipped = _shipped_demo_checkpoint(seed, per_class)
    if shipped is not None:
        with tempfile.TemporaryDirectory() as directory:
            root = Path(directory)
            generate_synthetic_birds(root, per_class=per_class, seed=seed)
            dataset = read_cub(root)
            _, test = dataset.labelled_items()
            preprocessing = Preprocessing(
                input_size=int(DEMO_TRAINING["input_size"]), mean=IMAGENET_MEAN, std=IMAGENET_STD
            )
            from PIL import Image

            images = torch.stack(
                [preprocessing.to_tensor(Image.open(path).convert("RGB")) for path, _ in test]
            )
            labels = torch.tensor([label for _, label in test])
            num_classes = len(dataset.class_names)
        model = load_model(str(DEMO_TRAINING["architecture"]), num_classes, shipped)
        print(f"the demo's shipped classifier ({shipped})", flush=True)
        return model.eval(), images, labels
    tag = f"demo-{DEMO_TRAINING['architecture']}-{DEMO_TRAINING['input_size']}-s{seed}-p{per_class}"
    checkpoint = CACHE / f"{tag}.pt"
    test_file = CACHE / f"{tag}-test.pt"
    if checkpoint.exists() and test_file.exists():
        data = torch.load(test_file, weights_only=True)
        model = load_model(str(DEMO_TRAINING["architecture"]), data["num_classes"], checkpoint)
        return model, data["images"], data["labels"]
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        generate_synthetic_birds(root, per_class=per_class, seed=seed)
        dataset = read_cub(root)
        class_names = dataset.class_names
        train, test = dataset.labelled_items()
        started = time.perf_counter()
        mark_keeps = gt.train_mark_keeps(
            dataset, read_ground_truth(root), OCCLUSION_GRID, int(DEMO_TRAINING["input_size"])
        )
        result = train_classifier(
            train,
            test,
            num_classes=len(class_names),
            seed=seed,
            device=device,
            mark_keeps=mark_keeps,
            **DEMO_TRAINING,
        )
        print(
            f"trained the demo classifier in {time.perf_counter() - started:.0f} s, "
            f"test accuracy {result.test_accuracy:.3f}",
            flush=True,
        )
        from PIL import Image

        images = torch.stack(
            [result.preprocessing.to_tensor(Image.open(path).convert("RGB")) for path, _ in test]
        )
        labels = torch.tensor([label for _, label in test])
    save_checkpoint(result.model, checkpoint)
    torch.save({"images": images, "labels": labels, "num_classes": len(class_names)}, test_file)
    return result.model.eval(), images, labels


def method_params(slug: str, resolution: int, args: argparse.Namespace) -> dict:
    if slug in ("igos", "igospp"):
        params = {"resolution": resolution, "batch_size": args.batch_size}
        for name in ("iterations", "steps"):
            if getattr(args, name) is not None:
                params[name] = getattr(args, name)
        return params
    if slug == "integrated_gradients":
        return {"steps": 20, "batch_size": args.batch_size}
    return {"batch_size": args.batch_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[7, 14, 28])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--iterations", type=int, help="I-GOS outer iterations (default: theirs)")
    parser.add_argument(
        "--steps", type=int, help="I-GOS / iGOS++ integrated-gradient steps (default: theirs)"
    )
    parser.add_argument("--scoring", nargs="+", default=["path"], choices=["path", "plain"])
    parser.add_argument("--protocols", nargs="+", default=["igos"], choices=["igos", "rise"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model, images, labels = demo_classifier_and_test_images(device=args.device)
    model = model.to(args.device)
    images = images[: args.images]
    with torch.no_grad():
        predicted = model(images.to(args.device)).argmax(dim=1).cpu()
    accuracy = (predicted == labels[: args.images]).float().mean().item()
    print(
        f"demo classifier (small_cnn, {images.shape[-1]} px); {len(images)} test images, "
        f"accuracy on them {accuracy:.3f}; explaining the predicted class; "
        f"I-GOS iterations={args.iterations}, I-GOS IG steps={args.steps} (None: defaults), "
        f"IG steps=20; "
        f"torch threads={torch.get_num_threads()}, device={args.device}",
        flush=True,
    )
    header = (
        f"{'res':>4} {'method':<22} {'protocol':<8} {'deletion':>9} {'insertion':>9} "
        f"{'ins-del':>8} {'sec':>7}"
    )
    print(header)
    print("-" * len(header))
    full_maps: dict[str, torch.Tensor] = {}
    runs = [
        (slug, scoring)
        for slug in args.methods
        for scoring in (args.scoring if slug in ("igos", "igospp") else [None])
    ]
    for resolution in args.resolutions:
        for slug, scoring in runs:
            started = time.perf_counter()
            name = slug if scoring is None else f"{slug}/{scoring}"
            if slug in ("igos", "igospp"):
                params = {**method_params(slug, resolution, args), "scoring": scoring}
                result = get_method(slug, **params).explain(model, images, predicted)
                # igos protocol: the s x s map itself (1 - mask), as in the I-GOS code;
                # rise protocol: the map upsampled to the image, pixel by pixel.
                maps = {"igos": 1.0 - result.extras["mask"], "rise": result.saliency}
            else:
                if slug not in full_maps:
                    method = get_method(slug, **method_params(slug, resolution, args))
                    full_maps[slug] = method.explain(model, images, predicted).saliency
                maps = {"igos": full_maps[slug], "rise": full_maps[slug]}
            seconds = time.perf_counter() - started
            for protocol in args.protocols:
                scores = deletion_insertion(
                    model,
                    images,
                    maps[protocol],
                    predicted,
                    protocol=protocol,
                    resolution=resolution if protocol == "igos" else None,
                    batch_size=args.batch_size,
                )
                deletion = scores.deletion_auc.mean().item()
                insertion = scores.insertion_auc.mean().item()
                print(
                    f"{resolution:>4} {name:<22} {protocol:<8} {deletion:>9.4f} "
                    f"{insertion:>9.4f} {insertion - deletion:>8.4f} {seconds:>7.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
