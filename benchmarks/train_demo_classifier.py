"""Time the demo classifier's training on the synthetic gulls, for a few settings.

Run: ``.venv/bin/python benchmarks/train_demo_classifier.py [--per-class 60] [--seed 0]
[--demo-only] [--epochs E] [--occlusion P]``

Generates the synthetic bird set (``explain_engine.datasets.synthetic_birds``) into a
temporary directory, reads it back with ``explain_engine.datasets.cub.read_cub``, trains
``DEMO_TRAINING`` and a few alternatives on its train split, and prints one row per setting:
architecture, input size, epochs, occlusion share, wall seconds, CPU seconds of this process,
train accuracy, test accuracy. ``--epochs`` / ``--occlusion`` override the demo setting's
values (for tuning).

Wall time depends on whatever else runs on the machine; CPU seconds much less so (on an idle
2-core machine with two threads, wall is about CPU / 2). Run it with the thread count the demo
uses (torch's default: one per core).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explain_engine import ground_truth as gt  # noqa: E402
from explain_engine.datasets.cub import read_cub  # noqa: E402
from explain_engine.datasets.synthetic_birds import generate_synthetic_birds, read_ground_truth  # noqa: E402
from explain_engine.training import DEMO_TRAINING, OCCLUSION_GRID, train_classifier  # noqa: E402

ALTERNATIVES: list[dict[str, object]] = [
    {**DEMO_TRAINING, "mark_reveal": 0.0},
    {**DEMO_TRAINING, "occlusion": 0.0},
    {**DEMO_TRAINING, "epochs": 60},
    {**DEMO_TRAINING, "input_size": 112},
    dict(architecture="resnet18", input_size=112, epochs=10, batch_size=32, learning_rate=1e-3),
]


def _synthetic_items(root: Path, per_class: int, seed: int):
    """(train items, test items, class names, dataset, ground truth) of a freshly generated
    synthetic set."""
    generate_synthetic_birds(root, per_class=per_class, seed=seed)
    dataset = read_cub(root)
    train, test = dataset.labelled_items()
    return train, test, dataset.class_names, dataset, read_ground_truth(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--demo-only", action="store_true", help="skip the alternatives")
    parser.add_argument("--epochs", type=int, default=None, help="override the demo's")
    parser.add_argument("--occlusion", type=float, default=None, help="override the demo's")
    args = parser.parse_args()
    demo = dict(DEMO_TRAINING)
    if args.epochs is not None:
        demo["epochs"] = args.epochs
    if args.occlusion is not None:
        demo["occlusion"] = args.occlusion

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        started = time.perf_counter()
        train, test, classes, dataset, truth = _synthetic_items(root, args.per_class, args.seed)
        print(
            f"synthetic gulls: {len(classes)} classes, {len(train)} train, {len(test)} test; "
            f"generated in {time.perf_counter() - started:.1f} s"
        )
        settings = [demo] + ([] if args.demo_only else ALTERNATIVES)
        print(f"torch threads: {torch.get_num_threads()}")
        header = f"{'architecture':<20} {'size':>4} {'epochs':>6} {'occl':>5} {'reveal':>6} "
        header += f"{'wall s':>7} "
        print(header + f"{'CPU s':>7} {'train acc':>9} {'test acc':>8}")
        for setting in settings:
            cpu_started = time.process_time()
            mark_keeps = gt.train_mark_keeps(
                dataset, truth, OCCLUSION_GRID, int(setting["input_size"])
            )
            result = train_classifier(
                train,
                test,
                num_classes=len(classes),
                seed=args.seed,
                device="cpu",
                mark_keeps=mark_keeps,
                **setting,
            )
            cpu = time.process_time() - cpu_started
            mark = "  <- DEMO_TRAINING" if setting == DEMO_TRAINING else ""
            print(
                f"{setting['architecture']:<20} {setting['input_size']:>4} "
                f"{setting['epochs']:>6} {setting.get('occlusion', 0.0):>5.2f} "
                f"{setting.get('mark_reveal', 0.0):>6.2f} "
                f"{result.seconds:>7.1f} {cpu:>7.1f} "
                f"{result.train_accuracy:>9.3f} {result.test_accuracy:>8.3f}{mark}",
                flush=True,
            )


if __name__ == "__main__":
    main()
