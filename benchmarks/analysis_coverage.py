"""How well the study analysis's intervals and tests hold on simulated studies whose truth is
known: coverage of the 95% intervals of each condition's accuracy, and how often the GEE
Wald test (all conditions equal) rejects at 5% when they really are equal.

Run: ``.venv/bin/python benchmarks/analysis_coverage.py [--runs 500] [--seed 2026]
[--participants 20] [--items 12] [--conditions 3] [--accuracy 0.7] [--spread 8]``

Each run simulates a study under the null: every condition has the same true accuracy
``--accuracy``; each participant has an ability of their own drawn from a Beta distribution
with that mean and concentration ``--spread`` (smaller = participants differ more, so their
answers cluster more), and answers each of ``--items`` main items right with that
probability. The marginal accuracy is then exactly ``--accuracy``. Each run goes through
``study.results.analysis.analyze_responses`` as the export's rows; the table gives, over all
runs, the share of conditions whose participant-clustered 95% interval holds the truth,
the same for the naive interval that treats responses as independent (it should fall
short), and the rejection rate of the Wald test and of the Rao-Scott chi-square at 5%.
Prints one table; the figures depend only on the arguments (the seed included).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from study.results.analysis import analyze_responses  # noqa: E402

CONFIDENCE_LEVELS = (1, 2, 3, 4, 5)


def simulated_rows(rng, *, conditions: int, participants: int, items: int, accuracy: float,
                   spread: float) -> list[dict]:  # fmt: skip
    alpha, beta = accuracy * spread, (1 - accuracy) * spread
    rows = []
    for condition in range(conditions):
        abilities = rng.beta(alpha, beta, size=participants)
        for index, ability in enumerate(abilities):
            correct = rng.random(items) < ability
            for item in range(items):
                rows.append(
                    {
                        "participant": f"c{condition}-p{index}",
                        "condition": f"condition-{condition}",
                        "item": f"item-{item}",
                        "phase": "main",
                        "is_correct": bool(correct[item]),
                        "confidence": int(rng.integers(1, 6)),
                        "ai_correct": "",
                        "participant_pilot": False,
                        "participant_excluded": False,
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--participants", type=int, default=20, help="per condition")
    parser.add_argument("--items", type=int, default=12, help="main items per participant")
    parser.add_argument("--conditions", type=int, default=3)
    parser.add_argument("--accuracy", type=float, default=0.7, help="the true accuracy")
    parser.add_argument("--spread", type=float, default=8.0, help="Beta concentration")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    covered = naive_covered = intervals = 0
    wald_rejections = wald_runs = chi_rejections = chi_runs = 0
    started = time.perf_counter()
    for _ in range(args.runs):
        rows = simulated_rows(
            rng,
            conditions=args.conditions,
            participants=args.participants,
            items=args.items,
            accuracy=args.accuracy,
            spread=args.spread,
        )
        report = analyze_responses(rows, n_choices=4, confidence_levels=CONFIDENCE_LEVELS)
        for summary in report.conditions:
            accuracy = summary.accuracy
            intervals += 1
            covered += accuracy.low <= args.accuracy <= accuracy.high
            naive_covered += accuracy.response_low <= args.accuracy <= accuracy.response_high
        if report.wald is not None:
            wald_runs += 1
            wald_rejections += report.wald.p_value < 0.05
        if report.chi_square is not None:
            chi_runs += 1
            chi_rejections += report.chi_square.p_value < 0.05
    seconds = time.perf_counter() - started

    print(
        f"{args.runs} simulated studies under the null: {args.conditions} conditions x "
        f"{args.participants} participants x {args.items} items, true accuracy "
        f"{args.accuracy}, Beta concentration {args.spread}, seed {args.seed} "
        f"({seconds:.0f} s)"
    )
    print(f"{'measure':<52} {'value':>8} {'of':>6}")
    print(f"{'95% interval holds the truth (participant-clustered)':<52} "
          f"{100 * covered / intervals:>7.1f}% {intervals:>6}")  # fmt: skip
    print(f"{'95% interval holds the truth (responses independent)':<52} "
          f"{100 * naive_covered / intervals:>7.1f}% {intervals:>6}")  # fmt: skip
    if wald_runs:
        print(f"{'GEE Wald test rejects at 5% (all conditions equal)':<52} "
              f"{100 * wald_rejections / wald_runs:>7.1f}% {wald_runs:>6}")  # fmt: skip
    if chi_runs:
        print(f"{'Rao-Scott chi-square rejects at 5%':<52} "
              f"{100 * chi_rejections / chi_runs:>7.1f}% {chi_runs:>6}")  # fmt: skip


if __name__ == "__main__":
    main()
