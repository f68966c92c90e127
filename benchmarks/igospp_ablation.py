"""Why iGOS++ trails I-GOS and integrated gradients on the demo's ground truth: its two masks
read apart, and its smoothing varied.

Run: ``.venv/bin/python benchmarks/igospp_ablation.py [--images 40] [--seed 0] [--threads 1]
[--configs release tv2 res56 plain alpha200 alpha200_tv2]``

Uses `benchmarks/ground_truth.py`'s demo classifier and photos: the same cache and, for the
same ``--images``, the same test photos spread over the classes, scored on those answered
correctly. For each configuration of iGOS++
(``release``: the defaults the demo uses; ``tv2``: total-variation weight 2 instead of 20;
``res56``: a 56 x 56 mask instead of 28 x 28; ``plain``: the noise-free line search;
``alpha200``: the line search starting at 200, as I-GOS's, instead of 1000;
``alpha200_tv2``: both of these), prints
the pointing game and the mass share (as `ground_truth.py`) of three maps:

- ``product``: what iGOS++ shows, 1 - U(M_d * M_i);
- ``deletion``: 1 - U(M_d), the regions whose blurring destroys the class;
- ``insertion``: 1 - U(M_i), the regions whose revealing alone restores it;

the share of each map's mass in each sufficient set's marks ("set 1", "set 2", in the order
of the printed sets; each species is identified by either set), and how many pixels share
each map's maximum ("tied px", median; `ground_truth.maximum_pixels`), the flat top left
where the clipped masks reach 0. If the deletion mask spread over both sets while the
insertion mask kept to one, the redundancy of the marks would be what spreads iGOS++'s map;
if the spread follows the smoothing or the step size, the optimizer's settings are.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ground_truth import (  # noqa: E402
    IMAGE_SIZE,
    median_tied_pixels,
    photos_answered_correctly,
    prepare,
)

from explain_engine import ground_truth as gt  # noqa: E402
from explain_engine.methods import get_method  # noqa: E402
from explain_engine.methods.base import normalize_per_image  # noqa: E402
from explain_engine.methods.masking import upsample_mask  # noqa: E402

CONFIGS = {
    "release": {},
    "tv2": {"tv": 2.0},
    "res56": {"resolution": 56},
    "plain": {"scoring": "plain"},
    "alpha200": {"alpha": 200.0},
    "alpha200_tv2": {"alpha": 200.0, "tv": 2.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="draw and classifier (ground_truth.py --seed): other than 0, photos the "
        "configurations were not chosen on",
    )
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model, dataset, truth, preprocessing = prepare(60, args.seed, "cpu")
    size = preprocessing.input_size
    tolerance = gt.POINTING_TOLERANCE_AT_224 * size / IMAGE_SIZE
    chosen, images, predicted, _ = photos_answered_correctly(
        model, dataset, preprocessing, args.images, "cpu"
    )
    marks = [gt.scaled_boxes(truth.mark_boxes[i.image_id], IMAGE_SIZE, size) for i in chosen]
    sets = truth.minimal_sufficient_sets
    print(
        f"seed {args.seed}: {len(chosen)} test photos answered correctly, {size} px, torch threads "
        f"{torch.get_num_threads()}; sets {sets}"
    )
    header = (
        f"{'config':<12} {'map':<10} {'pointing':>8} {'mass':>6} {'set 1':>6} {'set 2':>6} "
        f"{'tied px':>7} {'s/photo':>8}"
    )
    print(header)
    print("-" * len(header))
    for name in args.configs:
        started = time.perf_counter()
        result = get_method("igospp", batch_size=args.batch_size, **CONFIGS[name]).explain(
            model, images, predicted
        )
        seconds = (time.perf_counter() - started) / len(chosen)
        maps = {"product": result.saliency}
        for half in ("deletion", "insertion"):
            mask = upsample_mask(result.extras[f"{half}_mask"], (size, size))[:, 0]
            maps[half] = normalize_per_image(1 - mask)
        for kind, kind_maps in maps.items():
            row = gt.saliency_summary(kind_maps, marks, tolerance=tolerance)
            per_set = [
                statistics.mean(
                    gt.mass_share(m, [boxes[mark] for mark in mark_set], pad=tolerance)
                    for m, boxes in zip(kind_maps, marks, strict=True)
                )
                for mark_set in sets
            ]
            tied = median_tied_pixels(kind_maps)
            print(
                f"{name:<12} {kind:<10} {row['pointing']:>8.0%} {row['mass']:>6.0%} "
                f"{''.join(f'{share:>7.0%}' for share in per_set)} {tied:>7.0f} {seconds:>8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
