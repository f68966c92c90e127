"""Valid comparative pairs per image on the demo classifier (SAG's comparative question).

Run: ``.venv/bin/python benchmarks/sag_pairs.py [--images 16] [--threads 1]``

Uses the demo's classifier as ``saliency_quality.py`` loads it (the checkpoint the demo ships
in study/design/demo_classifier/) on test images spread over the 8 species, and runs SAG
with its defaults. For each image it prints the patch sets the search scored, the graph's
nodes, and the valid comparative pairs (two scored sets, neither a graph node nor inside the
other, confidences at least ``pair_gap`` points apart; see `explain_engine.methods.sag`,
step 5): all the search held, by kind, and the ``max_pairs`` kept. Then the totals and the
share of images with at least one kept pair of each kind that decides the size shortcut.
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

from saliency_quality import demo_classifier_and_test_images  # noqa: E402

from explain_engine.methods.sag import PAIR_KINDS, SAG, pair_kind_counts  # noqa: E402

SHORT = {
    "smaller_more_confident": "smaller wins",
    "larger_more_confident": "larger wins",
    "same_size": "same size",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, images, labels = demo_classifier_and_test_images()
    # The test split is ordered by class: take images spread over all classes.
    picks = np.linspace(0, len(images) - 1, args.images).round().astype(int).tolist()
    sag = SAG()
    print(
        f"demo classifier, {len(picks)} test images, SAG defaults "
        f"(pair_gap {sag.pair_gap:g} points, max_pairs {sag.max_pairs})"
    )
    header = (
        f"{'image':>5} {'nodes':>5} "
        + " ".join(f"{'all: ' + SHORT[k]:>18}" for k in PAIR_KINDS)
        + " "
        + " ".join(f"{'kept: ' + SHORT[k]:>19}" for k in PAIR_KINDS)
    )
    print(header)
    print("-" * len(header))
    started = time.perf_counter()
    totals = []
    for index in picks:
        graph = sag.explain(model, images[index : index + 1]).graphs[0]
        counts = pair_kind_counts(graph)
        totals.append(counts)
        print(
            f"{index:>5} {len(graph.nodes):>5} "
            + " ".join(f"{counts['candidates'][k]:>18}" for k in PAIR_KINDS)
            + " "
            + " ".join(f"{counts['stored'][k]:>19}" for k in PAIR_KINDS)
        )
    n = len(totals)
    print("-" * len(header))
    for k in PAIR_KINDS:
        every = [c["candidates"][k] for c in totals]
        kept = [c["stored"][k] for c in totals]
        print(
            f"{SHORT[k]:>13}: all valid per image median {np.median(every):.0f} "
            f"(min {min(every)}, max {max(every)}); kept per image median {np.median(kept):.0f}; "
            f"images with one kept: {sum(x > 0 for x in kept)}/{n}"
        )
    valid = [c["valid"] for c in totals]
    print(
        f"kept valid pairs per image: median {np.median(valid):.0f} (min {min(valid)}); "
        f"images with none: {sum(v == 0 for v in valid)}/{n}; "
        f"{(time.perf_counter() - started) / n:.1f} s/image"
    )


if __name__ == "__main__":
    main()
