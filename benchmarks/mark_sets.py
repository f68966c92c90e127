"""Does the demo classifier decide from one set of field marks alone, and at what patch cost?

Run: ``.venv/bin/python benchmarks/mark_sets.py [--checkpoint PATH] [--threads 2]``

The synthetic gulls are drawn so that either of two disjoint sets of marks decides the
species (`synthetic_birds.MARK_SETS`). SAG can show both explanations only if the classifier,
shown one set's patches on black (as SAG reveals them), stays as confident as on the whole
photo, and if the two sets' patches overlap in at most one patch (the release's bar for
diverse explanations, ``overlap = 1``). This draws the demo's photos (``per_class=60``, 2
distant photos per species, seed 0; cached under ``/tmp/explainstudy-bench``), takes the
demo's shipped classifier (or ``--checkpoint``), and on each test photo that is not distant
reveals, on SAG's 7 x 7 grid, for each sufficient set and for all four marks:

- "partial": the fewest cells nearest each mark that show it at half strength or more
  (`ground_truth.sufficient_cells`, the rule the ground-truth report uses for "an MSE
  covers the mark");
- "whole": every cell around each mark's box, so that the mark shows at full strength (the
  bilinear tents of the cells at the corners of each grid square holding part of the box).

Per row it prints the median number of cells, the share of photos on which the revealed
cells are *sufficient* in SAG's sense (p(S) > 0.9 p_full for the predicted class) and the
median p(S) / p_full; then, per reveal, the share of photos on which the two sets' cells
share at most one cell.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explain_engine import ground_truth as gt  # noqa: E402
from explain_engine.classifiers import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, load_model  # noqa: E402
from explain_engine.datasets.cub import read_cub  # noqa: E402
from explain_engine.datasets.synthetic_birds import generate_synthetic_birds, read_ground_truth  # noqa: E402
from explain_engine.methods.masking import composite  # noqa: E402
from explain_engine.training import DEMO_TRAINING  # noqa: E402

CACHE = Path("/tmp/explainstudy-bench")
SHIPPED = ROOT / "study/design/demo_classifier/checkpoint.pt"
GRID = 7
SUFFICIENT = 0.9  # SAG's probability_threshold
REVEALS = ("partial", "whole")


def _birds() -> Path:
    # keyed by the generator's source, so that a changed drawing is drawn again
    source = (ROOT / "explain_engine/datasets/synthetic_birds.py").read_bytes()
    root = CACHE / f"mark-sets-birds-{hashlib.sha256(source).hexdigest()[:12]}"
    if not (root / "ground_truth.json").exists():
        generate_synthetic_birds(root, per_class=60, seed=0, distant_per_class=2)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = _birds()
    dataset, truth = read_cub(root), read_ground_truth(root)
    size = int(DEMO_TRAINING["input_size"])
    architecture = str(DEMO_TRAINING["architecture"])
    model = load_model(architecture, len(dataset.class_names), args.checkpoint).eval()
    preprocessing = Preprocessing(input_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    black = ((0.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)).view(1, 3, 1, 1)
    index = {name: i for i, name in enumerate(dataset.class_names)}
    test = [image for image in dataset.images if not image.is_train]

    def tensor(image) -> torch.Tensor:
        with Image.open(dataset.image_path(image)) as opened:
            return preprocessing.to_tensor(opened.convert("RGB"))[None]

    images = torch.cat([tensor(image) for image in test])  # each photo decoded once
    with torch.no_grad():
        full = model(images).softmax(dim=1)
    labels = torch.tensor([index[image.class_name] for image in test])
    correct = full.argmax(dim=1) == labels
    accuracy = float(correct.float().mean())
    is_near = torch.tensor(["_distant_" not in dataset.image_path(image).name for image in test])
    near_accuracy = float(correct[is_near].float().mean())

    sets = [*truth.minimal_sufficient_sets, tuple(truth.marks)]
    names = [" + ".join(marks) for marks in truth.minimal_sufficient_sets] + ["all marks"]
    ratios: dict[tuple[str, str], list[float]] = {}
    counts: dict[tuple[str, str], list[int]] = {}
    shared: dict[str, list[int]] = {reveal: [] for reveal in REVEALS}
    near = 0
    for k, image in enumerate(test):
        if "_distant_" in dataset.image_path(image).name:
            continue
        near += 1
        target = int(full[k].argmax())
        boxes = gt.scaled_boxes(truth.mark_boxes[image.image_id], truth.image_size, size)
        cells = {
            "partial": gt.sufficient_cells(boxes, sets, GRID, size),
            "whole": [gt.whole_cells([boxes[m] for m in marks], GRID, size) for marks in sets],
        }
        for reveal in REVEALS:
            first, second = (set(c) for c in cells[reveal][:2])
            shared[reveal].append(len(first & second))
            keep = torch.zeros(len(sets), GRID * GRID)
            for row, chosen in enumerate(cells[reveal]):
                keep[row, chosen] = 1.0
            revealed = composite(
                images[k : k + 1].expand(len(sets), -1, -1, -1),
                black.expand(len(sets), 3, size, size),
                keep.view(-1, 1, GRID, GRID),
            )
            with torch.no_grad():
                shown = model(revealed).softmax(dim=1)[:, target]
            for name, chosen, p in zip(names, cells[reveal], shown.tolist(), strict=True):
                ratios.setdefault((name, reveal), []).append(p / float(full[k, target]))
                counts.setdefault((name, reveal), []).append(len(chosen))

    print(
        f"{args.checkpoint}: test accuracy {accuracy:.1%} on {len(test)} test photos, "
        f"{near_accuracy:.1%} on the {near} that are not distant; each set revealed on black "
        "on those"
    )
    header = f"{'revealed':<22} {'reveal':<8} {'cells (median)':>14} {'sufficient':>10}"
    print(f"\n{header} {'p(S)/p_full median':>19}")
    for name in names:
        for reveal in REVEALS:
            values = ratios[(name, reveal)]
            share = sum(value > SUFFICIENT for value in values) / len(values)
            print(
                f"{name:<22} {reveal:<8} {statistics.median(counts[(name, reveal)]):>14.0f} "
                f"{share:>10.0%} {statistics.median(values):>19.2f}"
            )
    print()
    for reveal in REVEALS:
        values = shared[reveal]
        print(
            f"{reveal} reveal: the two sets share at most one cell on "
            f"{sum(v <= 1 for v in values) / len(values):.0%} of photos "
            f"(median {statistics.median(values):.0f} cells shared)"
        )


if __name__ == "__main__":
    main()
