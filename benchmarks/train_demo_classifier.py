"""Time the demo classifier's training on the synthetic gulls, for a few settings.

Run: ``.venv/bin/python benchmarks/train_demo_classifier.py [--per-class 60] [--seed 0]``

Generates the synthetic bird set (``explain_engine.datasets.synthetic_birds``) into a
temporary directory, reads its CUB-200-2011 text files (classes, labels, split), trains
``DEMO_TRAINING`` and a few alternatives on its train split, and prints one row per setting:
architecture, input size, epochs, seconds, train accuracy, test accuracy.

If the generator is not importable, it falls back to a crude stand-in drawn here (same
2x2x2 design: wing tips black/pale, legs pink/yellow, red bill spot or none) and says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explain_engine.training import DEMO_TRAINING, train_classifier  # noqa: E402

ALTERNATIVES: list[dict[str, object]] = [
    dict(architecture="small_cnn", input_size=112, epochs=15, batch_size=32, learning_rate=3e-3),
    dict(architecture="small_cnn", input_size=128, epochs=25, batch_size=32, learning_rate=3e-3),
    dict(architecture="mobilenet_v3_small", input_size=128, epochs=15, batch_size=32,
         learning_rate=3e-3),
    dict(architecture="resnet18", input_size=112, epochs=10, batch_size=32, learning_rate=1e-3),
]


def _synthetic_items(root: Path, per_class: int, seed: int):
    """(train items, test items, class names) from the real generator, or None if absent."""
    if importlib.util.find_spec("explain_engine.datasets.synthetic_birds") is None:
        return None
    from explain_engine.datasets.synthetic_birds import generate_synthetic_birds

    generate_synthetic_birds(root, per_class=per_class, seed=seed)
    return _read_cub_split(root)


def _read_cub_split(root: Path):
    """Train and test ``(path, class index)`` items from the CUB-200-2011 text files.

    Class indices follow the order of ``classes.txt``.
    """

    def table(name: str) -> dict[str, str]:
        lines = (root / name).read_text().splitlines()
        return dict(line.split(maxsplit=1) for line in lines if line.strip())

    class_ids = list(table("classes.txt"))
    index = {class_id: i for i, class_id in enumerate(class_ids)}
    labels, is_train = table("image_class_labels.txt"), table("train_test_split.txt")
    train, test = [], []
    for image_id, relative in table("images.txt").items():
        item = (root / "images" / relative, index[labels[image_id]])
        (train if is_train[image_id] == "1" else test).append(item)
    return train, test, class_ids


def _stand_in_items(root: Path, per_class: int, seed: int):
    """A crude stand-in for the synthetic gulls: 8 classes from 3 binary part colours."""
    rng = random.Random(seed)
    train, test = [], []
    for label in range(8):
        black_tips, yellow_legs, bill_spot = label & 1, label >> 1 & 1, label >> 2 & 1
        for k in range(per_class):
            sky = tuple(rng.randint(90, 200) for _ in range(3))
            image = Image.new("RGB", (224, 224), sky)
            draw = ImageDraw.Draw(image)
            draw.rectangle((0, rng.randint(140, 190), 224, 224), fill=(194, 178, 128))
            x, y, s = rng.randint(60, 160), rng.randint(70, 130), rng.uniform(0.7, 1.2)
            draw.ellipse((x - 45 * s, y - 20 * s, x + 45 * s, y + 20 * s), fill=(245, 245, 245))
            draw.ellipse((x - 35 * s, y - 18 * s, x + 30 * s, y + 5 * s), fill=(160, 165, 170))
            tip = (20, 20, 20) if black_tips else (215, 218, 222)
            draw.polygon([(x - 35 * s, y - 12 * s), (x - 60 * s, y), (x - 30 * s, y + 2 * s)],
                         fill=tip)
            hx, hy = x + 42 * s, y - 25 * s
            draw.ellipse((hx - 14 * s, hy - 12 * s, hx + 14 * s, hy + 12 * s), fill=(250, 250, 250))
            draw.polygon([(hx + 12 * s, hy - 3 * s), (hx + 32 * s, hy), (hx + 12 * s, hy + 4 * s)],
                         fill=(240, 200, 40))
            if bill_spot:
                draw.ellipse((hx + 22 * s, hy - 1 * s, hx + 27 * s, hy + 4 * s), fill=(210, 30, 30))
            leg = (240, 210, 40) if yellow_legs else (240, 160, 170)
            for dx in (-8, 6):
                draw.line((x + dx * s, y + 18 * s, x + dx * s, y + 45 * s), fill=leg,
                          width=max(2, round(4 * s)))
            if rng.random() < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            path = root / f"{label}_{k}.jpg"
            image.save(path, quality=90)
            (train if k < round(per_class * 0.7) else test).append((path, label))
    return train, test, [f"stand-in {i}" for i in range(8)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--demo-only", action="store_true", help="skip the alternatives")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        started = time.perf_counter()
        items = _synthetic_items(root, args.per_class, args.seed)
        source = "synthetic_birds generator"
        if items is None:
            items = _stand_in_items(root, args.per_class, args.seed)
            source = "STAND-IN images (synthetic_birds generator not found)"
        train, test, classes = items
        print(
            f"data: {source}; {len(classes)} classes, {len(train)} train, {len(test)} test; "
            f"generated in {time.perf_counter() - started:.1f} s"
        )
        settings = [DEMO_TRAINING] + ([] if args.demo_only else ALTERNATIVES)
        header = f"{'architecture':<20} {'size':>4} {'epochs':>6} {'seconds':>8} "
        print(header + f"{'train acc':>9} {'test acc':>8}")
        for setting in settings:
            result = train_classifier(
                train, test, num_classes=len(classes), seed=args.seed, device="cpu", **setting
            )
            mark = "  <- DEMO_TRAINING" if setting is DEMO_TRAINING else ""
            print(
                f"{setting['architecture']:<20} {setting['input_size']:>4} "
                f"{setting['epochs']:>6} {result.seconds:>8.1f} "
                f"{result.train_accuracy:>9.3f} {result.test_accuracy:>8.3f}{mark}",
                flush=True,
            )


if __name__ == "__main__":
    main()
