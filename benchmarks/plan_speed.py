"""How long a power plan takes, and its figures for the demo design, with the closed-form check.

Run (no database needed; a few minutes on a busy 2-core machine)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/plan_speed.py [--sims 100]

1. The closed-form check: two conditions at 50% and 62%, 20 items, 15 participants each, no
   ability or item variation and nobody inattentive, so every answer is an independent
   draw: the simulated power of the model's contrast against the two-proportion z-test.
2. The demo design (six conditions, eight main items and two attention checks over eight
   species, the demo's exclusion rules, 50 participants per condition planned), with no
   explanation at 50% and every explanation 15 points higher: `plan_study demo --baseline
   0.5 --difference 0.15` does the same on the demo's database. Prints the plan and the
   seconds it took, with the machine's load average (the machine is shared).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from scipy import stats  # noqa: E402

from study.demo import DEMO_ATTENTION_CHECKS, EXCLUSION_RULES  # noqa: E402
from study.planning import (  # noqa: E402
    PlanAssumptions,
    PlanDesign,
    accuracies_for_difference,
    plan_study,
    plan_text,
    power_at,
)
from study.services import exclusion_reasons  # noqa: E402

DEMO_CONDITIONS = ("no-explanation", "gradcam", "igos", "igospp", "sag", "xnn")


def closed_form_check(sims: int) -> None:
    p1, p2, n, items = 0.5, 0.62, 15, 20
    design = PlanDesign(conditions=("a", "b"), main_items=items, attention_items=0, n_choices=4)
    assumptions = PlanAssumptions(
        accuracies={"a": p1, "b": p2}, ability_sd=0, item_sd=0, inattentive_share=0
    )
    started = time.perf_counter()
    point = power_at(
        design, assumptions, n=n, sims=sims, alpha=0.05, seed=1, exclusion_reasons=exclusion_reasons
    )
    seconds = time.perf_counter() - started
    se = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / (n * items))
    closed = stats.norm.cdf((p2 - p1) / se - stats.norm.ppf(0.975))
    mc = math.sqrt(closed * (1 - closed) / sims)
    print("Closed-form check (two proportions, independent answers):")
    print(
        f"{'':<4}{'p1':>5} {'p2':>5} {'resp/arm':>9} {'closed form':>12} {'simulated':>10} "
        f"{'MC s.e.':>8} {'seconds':>8}"
    )
    print(
        f"{'':<4}{p1:>5.2f} {p2:>5.2f} {n * items:>9} {closed:>12.3f} "
        f"{point.pairwise[('a', 'b')]:>10.3f} {mc:>8.3f} {seconds:>8.1f}"
    )
    print()


def demo_plan(sims: int) -> None:
    design = PlanDesign(
        conditions=DEMO_CONDITIONS,
        main_items=8,
        attention_items=DEMO_ATTENTION_CHECKS,
        n_choices=8,
        exclusion_rules=EXCLUSION_RULES,
        planned_n=50,
    )
    assumptions = PlanAssumptions(
        accuracies=accuracies_for_difference(DEMO_CONDITIONS, baseline=0.5, difference=0.15)
    )
    load = os.getloadavg()[0]
    started = time.perf_counter()
    plan = plan_study(design, assumptions, exclusion_reasons=exclusion_reasons, sims=sims)
    seconds = time.perf_counter() - started
    print("Demo design:")
    print(plan_text(plan))
    simulated = sum(point.sims for point in plan.points)
    print(f"{'sims per n':>10} {'points':>7} {'studies':>8} {'seconds':>8} {'load avg':>9}")
    print(f"{sims:>10} {len(plan.points):>7} {simulated:>8} {seconds:>8.1f} {load:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=100)
    args = parser.parse_args()
    closed_form_check(max(args.sims, 200))
    demo_plan(args.sims)


if __name__ == "__main__":
    main()
