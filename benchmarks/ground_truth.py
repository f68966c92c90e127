"""The demo's explanations against the synthetic gulls' ground truth (issue 16's goals).

Run: ``.venv/bin/python benchmarks/ground_truth.py [--images 40] [--sag-images 20]
[--methods gradcam igos igospp integrated_gradients] [--no-sag] [--no-xnn] [--xnn-params JSON]
[--half-strength-reveals] [--threads N]``

Draws the demo's data set (``per_class=60``, ``seed=0``, 224 px) and trains the demo
classifier (``DEMO_TRAINING``) as the demo does, both cached under
``/tmp/explainstudy-bench/ground-truth-<hash>`` (the hash covers the settings and the
generator's and trainer's source, so a changed generator or trainer is retrained;
``--half-strength-reveals`` trains and caches another classifier, whose mark-reveal training
also shows each set through a small set of cells that show its marks at half strength, the
SAG goal's bar). Then, on
the test images (spread over the classes) that the classifier answers correctly, as the
demo's report scores them, each explaining the classifier's predicted class with the
method's default parameters (what the demo uses):

- saliency (``--methods``): pointing game (peak within 15 px at 224 of a field mark's box;
  a flat top scores the share of its pixels that are; "tied px": how many, median) and the
  share of saliency mass inside the marks' boxes widened by that tolerance (with the share
  of the image those boxes cover, what a uniform map scores);
- SAG (``--sag-images``): MSE sizes, images with two or more diverse roots, MSEs that reveal
  a sufficient set of marks (and how near the others come), images whose MSEs reveal both
  sets;
- XNN: fitted on the train split with its defaults, or the parameters ``--xnn-params`` gives
  as JSON (through ``get_method("xnn")``, ``fit``, ``explain``), R^2 on the test split,
  where each concept's heatmap peaks (marks and CUB parts) and the mean pairwise
  |correlation| of the concept heatmaps, both only on the images that hold the concept
  (x-feature above 0; elsewhere its map shows where the concept would be, and the panel
  draws no map), with how many of each model's concepts any of its images holds, and
  how many photos hold none of their model's concepts (the page then says they do not
  explain the answer).

Prints a table per part and, last, each goal with "holds" or "fails" and its figure
(`explain_engine.ground_truth.goals`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explain_engine import ground_truth as gt  # noqa: E402
from explain_engine.classifiers import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, load_model  # noqa: E402
from explain_engine.datasets.cub import read_cub  # noqa: E402
from explain_engine.datasets.synthetic_birds import (  # noqa: E402
    MARK_PARTS,
    generate_synthetic_birds,
    read_ground_truth,
)
from explain_engine.methods import get_method  # noqa: E402
from explain_engine.training import (  # noqa: E402
    DEMO_TRAINING,
    OCCLUSION_GRID,
    save_checkpoint,
    train_classifier,
)

CACHE = Path("/tmp/explainstudy-bench")
IMAGE_SIZE = 224
SALIENCY_METHODS = ("gradcam", "igos", "igospp", "integrated_gradients")


def _cache_dir(per_class: int, seed: int, half_strength: bool = False) -> Path:
    digest = hashlib.sha256()
    settings = [DEMO_TRAINING, per_class, seed] + (["half strength"] if half_strength else [])
    digest.update(json.dumps(settings, sort_keys=True).encode())
    sources = ["explain_engine/datasets/synthetic_birds.py", "explain_engine/training.py"]
    if half_strength:  # its reveals come from these
        sources += ["explain_engine/ground_truth.py", "benchmarks/ground_truth.py"]
    for source in sources:
        digest.update((ROOT / source).read_bytes())
    return CACHE / f"ground-truth-{digest.hexdigest()[:12]}"


def _train_keeps(dataset, truth, size: int, half_strength: bool) -> torch.Tensor:
    """The mark-reveal keep masks the demo trains with (`gt.train_mark_keeps`: each set's
    marks whole); with `half_strength`, also each set through a small set of cells that
    show its marks at half strength (`gt.sufficient_cells`, what the SAG goal counts as
    shown)."""
    whole = gt.train_mark_keeps(dataset, truth, OCCLUSION_GRID, size)
    if not half_strength:
        return whole
    half = torch.zeros_like(whole).flatten(2)
    train = [image.image_id for image in dataset.images if image.is_train]
    for n, image_id in enumerate(train):
        boxes = gt.scaled_boxes(truth.mark_boxes[image_id], truth.image_size, size)
        chosen = gt.sufficient_cells(boxes, truth.minimal_sufficient_sets, OCCLUSION_GRID, size)
        for index, cells in enumerate(chosen):
            half[n, index, cells] = 1.0
    return torch.cat([whole, half.view_as(whole)], dim=1)


def prepare(per_class: int, seed: int, device: str, *, half_strength: bool = False):
    """(model, dataset, truth, preprocessing), drawing and training once per cache key;
    `half_strength`: a classifier trained with `_train_keeps`' half-strength reveals too."""
    directory = _cache_dir(per_class, seed, half_strength)
    birds = directory / "birds"
    checkpoint = directory / "classifier.pt"
    if not (birds / "ground_truth.json").exists():
        directory.mkdir(parents=True, exist_ok=True)
        generate_synthetic_birds(birds, per_class=per_class, seed=seed, image_size=IMAGE_SIZE)
    dataset = read_cub(birds)
    truth = read_ground_truth(birds)
    preprocessing = Preprocessing(
        input_size=int(DEMO_TRAINING["input_size"]), mean=IMAGENET_MEAN, std=IMAGENET_STD
    )
    architecture = str(DEMO_TRAINING["architecture"])
    if not checkpoint.exists():
        train, test = dataset.labelled_items()
        cpu_started = time.process_time()
        result = train_classifier(
            train,
            test,
            num_classes=len(dataset.class_names),
            seed=seed,
            device=device,
            mark_keeps=_train_keeps(
                dataset, truth, int(DEMO_TRAINING["input_size"]), half_strength
            ),
            **DEMO_TRAINING,
        )
        print(
            f"trained the demo classifier in {result.seconds:.0f} s "
            f"({time.process_time() - cpu_started:.0f} CPU s, "
            f"{torch.get_num_threads()} threads), "
            f"test accuracy {result.test_accuracy:.3f}",
            flush=True,
        )
        save_checkpoint(result.model, checkpoint)
    model = load_model(architecture, len(dataset.class_names), checkpoint).eval()
    return model, dataset, truth, preprocessing


def _tensor(dataset, images, preprocessing) -> torch.Tensor:
    tensors = []
    for image in images:
        with Image.open(dataset.image_path(image)) as opened:
            tensors.append(preprocessing.to_tensor(opened.convert("RGB")))
    return torch.stack(tensors)


def photos_answered_correctly(model, dataset, preprocessing, count: int, device: str):
    """(images, tensors, predicted classes, right) of `count` test photos spread over the
    classes, keeping those the classifier answers correctly; `right` says which of all
    `count` were. Scored on those, as the demo's report is
    (explain_engine/services/ground_truth.py): where the classifier errs it did not read
    the marks, so a faithful explanation need not point at them."""
    index = {name: i for i, name in enumerate(dataset.class_names)}
    test = [image for image in dataset.images if not image.is_train]
    # Spread over the classes: the test images are listed class by class.
    step = max(len(test) // max(count, 1), 1)
    chosen = test[::step][:count]
    images = _tensor(dataset, chosen, preprocessing).to(device)
    labels = torch.tensor([index[image.class_name] for image in chosen])
    with torch.no_grad():
        predicted = model(images).argmax(dim=1).cpu()
    right = predicted == labels
    chosen = [image for image, ok in zip(chosen, right.tolist(), strict=True) if ok]
    return chosen, images[right.to(images.device)], predicted[right], right


def median_tied_pixels(maps: torch.Tensor) -> float:
    """How many pixels share each map's maximum, median over the maps (`gt.pointing_game`)."""
    return float(torch.tensor([float(gt.maximum_pixels(m).sum()) for m in maps]).median())


def _json_object(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object of XNN parameters, got {text}")
    return value


def _print_xnn(xnn: dict, present: torch.Tensor, models: list[str]) -> None:
    """Per model and concept: where its heatmap peaks, on the model's photos holding it."""
    correlation = "none" if xnn["correlation"] is None else f"{xnn['correlation']:.2f}"
    print(
        f"mean pairwise |correlation| {correlation}; per model and concept, over the photos "
        "explained with the model that hold the concept: the part its heatmap peaks on most "
        "often ('no part': none near the peak), on how many of them it peaks on a part; "
        "'-': none holds it",
        flush=True,
    )
    for model, model_parts in xnn["models_parts"].items():
        mine = [i for i, name in enumerate(models) if name == model]
        held = present[mine].float().mean(dim=0).tolist()
        rows = [
            "-" if share is None else f"{part or 'no part'} (held {h:.0%}, on a part {share:.0%})"
            for part, share, h in zip(model_parts, xnn["on_part"][model], held, strict=True)
        ]
        print(f"  {model} ({len(mine)} photos): {', '.join(rows)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=40, help="test images for saliency, XNN")
    parser.add_argument("--sag-images", type=int, default=20)
    parser.add_argument("--methods", nargs="*", default=list(SALIENCY_METHODS))
    parser.add_argument("--no-sag", action="store_true")
    parser.add_argument("--no-xnn", action="store_true")
    parser.add_argument(
        "--xnn-params",
        type=_json_object,
        default={},
        help='XNN parameters other than the defaults, as JSON, e.g. \'{"pull_away": "features"}\'',
    )
    parser.add_argument(
        "--half-strength-reveals",
        action="store_true",
        help="score a classifier trained also with each set of marks shown at half strength",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model, dataset, truth, preprocessing = prepare(
        args.per_class, args.seed, args.device, half_strength=args.half_strength_reveals
    )
    model = model.to(args.device)
    size = preprocessing.input_size
    tolerance = gt.POINTING_TOLERANCE_AT_224 * size / IMAGE_SIZE
    test = [image for image in dataset.images if not image.is_train]
    chosen, images, predicted, right = photos_answered_correctly(
        model, dataset, preprocessing, args.images, args.device
    )
    accuracy = float(right.float().mean())
    marks = [gt.scaled_boxes(truth.mark_boxes[i.image_id], IMAGE_SIZE, size) for i in chosen]
    print(
        f"demo classifier ({DEMO_TRAINING['architecture']}, {size} px, occlusion "
        f"{DEMO_TRAINING.get('occlusion', 0.0)}): accuracy {accuracy:.3f} "
        f"on {len(right)} test images, scored on the {len(chosen)} answered correctly; "
        "explaining the predicted class; sufficient sets "
        f"{truth.minimal_sufficient_sets}; pointing tolerance {tolerance:.1f} px; "
        f"torch threads {torch.get_num_threads()}, device {args.device}",
        flush=True,
    )

    saliency: dict[str, dict] = {}
    if args.methods:
        print(
            f"\n{'method':<22} {'pointing':>8} {'mass':>6} {'area':>6} {'s/image':>8} "
            f"{'tied px':>7}"
        )
    for slug in args.methods:
        started = time.perf_counter()
        maps = (
            get_method(slug, batch_size=args.batch_size)
            .explain(model, images, predicted.to(args.device))
            .saliency
        )
        seconds = (time.perf_counter() - started) / len(chosen)
        saliency[slug] = gt.saliency_summary(maps, marks, tolerance=tolerance)
        row = saliency[slug]
        tied = median_tied_pixels(maps)
        print(
            f"{slug:<22} {row['pointing']:>8.0%} {row['mass']:>6.0%} {row['area']:>6.0%} "
            f"{seconds:>8.2f} {tied:>7.0f}",
            flush=True,
        )

    sag = None
    if not args.no_sag and args.sag_images:
        method = get_method("sag")
        n = min(args.sag_images, len(chosen))
        searches = []
        started = time.perf_counter()
        for k in range(n):
            graph = method.explain(
                model, images[k : k + 1], predicted[k : k + 1].to(args.device)
            ).graphs[0]
            searches.append(([m.patches for m in graph.mses], len(graph.roots)))
            print(
                f"  SAG image {k + 1}/{n}: MSE sizes {[len(m.patches) for m in graph.mses]}, "
                f"roots {len(graph.roots)}, covered "
                + "; ".join(
                    ",".join(sorted(gt.covered_marks(m.patches, method.grid, marks[k], size)))
                    or "-"
                    for m in graph.mses
                ),
                flush=True,
            )
        sets = [
            truth.sufficient_sets_by_species[dataset.class_names[int(p)]] for p in predicted[:n]
        ]
        sag = gt.sag_summary(searches, marks[:n], sets, grid=method.grid, size=size)
        print(
            f"\nSAG on {n} images ({(time.perf_counter() - started) / n:.1f} s/image): "
            f"{sag['mses']} MSEs, median size {sag['median_size']:.0f}, an MSE on "
            f"{sag['found']:.0%}, >= 2 diverse roots on {sag['diverse']:.0%}, MSEs revealing "
            f"a sufficient set {sag['covering']:.0%}"
            + (
                ""
                if sag["uncovered_strength"] is None
                else f" (the others show the weakest mark of their best set at a median "
                f"strength of {sag['uncovered_strength']:.2f}, {gt.MARK_SHOWN} counts as shown; "
                "that mark: "
                + ", ".join(f"{mark} {count}" for mark, count in sag["uncovered_marks"].items())
                + ")"
            )
            + f", both sets revealed on {sag['both_sets']:.0%}",
            flush=True,
        )

    xnn = None
    if not args.no_xnn:
        train_images = [image for image in dataset.images if image.is_train]
        method = get_method("xnn", **args.xnn_params)
        started = time.perf_counter()
        report = method.fit(
            model,
            _tensor(dataset, train_images, preprocessing).to(args.device),
            holdout=_tensor(dataset, test, preprocessing).to(args.device),
            # measured as the demo keeps it: a fit failing the success rule is shown too
            accept_weak_fit=True,
        )
        fitted = time.perf_counter() - started
        result = method.explain(model, images)
        parts = [
            gt.part_boxes(
                truth.mark_boxes[image.image_id], image.parts, MARK_PARTS, IMAGE_SIZE, size
            )
            for image in chosen
        ]
        models = (
            [dataset.class_names[int(p)] for p in predicted] if method.mode == "per_class" else None
        )
        r2 = getattr(report, "holdout_r2", None)
        present = result.present()
        xnn = gt.xnn_summary(
            result.heatmaps,
            parts,
            r2=r2,
            tolerance=tolerance,
            models=models,
            present=present,
        )
        print(
            f"\nXNN ({json.dumps(args.xnn_params) if args.xnn_params else 'defaults'}) "
            f"fitted in {fitted:.0f} s "
            f"(success rule {'met' if report.success else 'failed'}), R^2 {r2:.3f}; each "
            "photo explained with the model of its predicted class, as the demo shows it:",
            flush=True,
        )
        names = models or ["all"] * len(chosen)
        _print_xnn(xnn, present, names)
        bare = Counter(
            name for name, held in zip(names, present.any(dim=1).tolist(), strict=True) if not held
        )
        print(
            f"photos holding none of their model's concepts (the page says they do not "
            f"explain the answer): {bare.total()} of {len(names)}"
            + "".join(f"; {name} {count}" for name, count in sorted(bare.items())),
            flush=True,
        )
        if method.mode == "per_class":
            # A one-vs-all model's concepts with a negative weight detect other species: the
            # photos of its own class never hold them, so they are scored here on every
            # photo, explained with every class's model.
            classes = [int(c) for c in result.classes]
            every = [method.explain(model, images, torch.full((len(chosen),), c)) for c in classes]
            names = [dataset.class_names[c] for c in classes for _ in chosen]
            present = torch.cat([r.present() for r in every])
            summary = gt.xnn_summary(
                torch.cat([r.heatmaps for r in every]),
                parts * len(classes),
                r2=r2,
                tolerance=tolerance,
                models=names,
                present=present,
            )
            print(
                "\nthe same XNN, every class's model on every photo (each concept scored on "
                "the photos holding it, of any class):",
                flush=True,
            )
            _print_xnn(summary, present, names)
            print(
                "per model and concept: the sign of its weight in the model, and the species "
                "(as predicted) at least half of whose photos hold it:",
                flush=True,
            )
            for column, (c, explained) in enumerate(zip(classes, every, strict=True)):
                contributions = explained.contributions[:, column]  # activation x weight
                held = explained.present()
                rows = []
                for concept in range(method.k):
                    holding = held[:, concept]
                    if not holding.any():
                        rows.append("-")
                        continue
                    sign = "+" if float(contributions[holding, concept].sum()) > 0 else "-"
                    shares = {
                        dataset.class_names[o]: float(holding[predicted == o].float().mean())
                        for o in classes
                        if bool((predicted == o).any())
                    }
                    holders = [n[4:].removesuffix("_Gull") for n, v in shares.items() if v >= 0.5]
                    rows.append(f"{sign} {', '.join(holders) or 'none'}")
                print(f"  {dataset.class_names[c]}: {'; '.join(rows)}", flush=True)
            for line in gt.format_goals(gt.goals(xnn=summary)):
                print("  " + line)

    print("\ngoals:")
    for line in gt.format_goals(gt.goals(saliency=saliency, sag=sag, xnn=xnn)):
        print("  " + line)


if __name__ == "__main__":
    main()
