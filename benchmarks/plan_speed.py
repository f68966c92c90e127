"""How long a power plan takes, and its figures for the demo design, with the closed-form check.

Run (no database needed; a few minutes on a busy 2-core machine)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/plan_speed.py [--sims 100]

1. The closed-form check: two conditions at 50% and 58%, 20 items, no ability or item
   variation and nobody inattentive, so every answer is an independent draw: the power of
   the model's contrast, simulated at 15 participants per condition and projected to 30 and
   45, against the two-proportion z-test; and the n for 80% power from both.
2. The demo design (six conditions, `DEMO_MAIN_ITEMS` (12) main items and two attention
   checks over eight species, the demo's exclusion rules, 50 participants per condition
   planned), with no explanation at 50% and every explanation 15 points higher:
   `plan_study demo --baseline 0.5 --difference 0.15` does the same on the demo's database.
   Prints the plan and the seconds it took, with the machine's load average (the machine is shared).
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

from study.design.demo import DEMO_ATTENTION_CHECKS, DEMO_MAIN_ITEMS, EXCLUSION_RULES  # noqa: E402
from study.results.exclusions import exclusion_reasons  # noqa: E402
from study.results.planning import (  # noqa: E402
    PlanAssumptions,
    PlanDesign,
    accuracies_for_difference,
    contrasts,
    needed_n,
    plan_study,
    plan_text,
    projected_point,
    simulate_studies,
    simulated_point,
)

WIDTHS = (4, 9, 12, 7, 10, 8)
DEMO_CONDITIONS = ("no-explanation", "gradcam", "igos", "igospp", "sag", "xnn")


def _closed_form(p1: float, p2: float, responses: int) -> float:
    se = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / responses)
    return float(stats.norm.cdf((p2 - p1) / se - stats.norm.ppf(0.975)))


def closed_form_check(sims: int) -> None:
    p1, p2, items = 0.5, 0.58, 20
    design = PlanDesign(conditions=("a", "b"), main_items=items, attention_items=0, n_choices=4)
    assumptions = PlanAssumptions(
        accuracies={"a": p1, "b": p2}, ability_sd=0, item_sd=0, inattentive_share=0
    )
    started = time.perf_counter()
    studies = simulate_studies(
        design,
        assumptions,
        n=15,
        sims=sims,
        alpha=0.05,
        seed=1,
        exclusion_reasons=exclusion_reasons,
    )
    seconds = time.perf_counter() - started
    print(f"Closed-form check (two proportions {p1} vs {p2}, {items} independent answers each,")
    print(f"{sims} simulated studies at n = 15, {seconds:.1f} s):")
    header = ("n", "resp/arm", "closed form", "plan", "how", "MC s.e.")
    print("    " + " ".join(f"{h:>{w}}" for h, w in zip(header, WIDTHS, strict=True)))
    for n in (15, 30, 45):
        point = simulated_point(studies) if n == 15 else projected_point(studies, n, alpha=0.05)
        closed = _closed_form(p1, p2, n * items)
        how = "simulated" if point.simulated else "projected"
        mc = math.sqrt(closed * (1 - closed) / sims)
        print(
            f"{'':<4}{n:>4} {n * items:>9} {closed:>12.3f} {point.wald:>7.3f} {how:>10} {mc:>8.3f}"
        )
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    closed_n = math.ceil(z**2 * (p1 * (1 - p1) + p2 * (1 - p2)) / (p2 - p1) ** 2 / items)
    [omnibus, _] = needed_n([studies], contrasts(design, assumptions), alpha=0.05, max_n=100)
    print(f"    n for 80% power: closed form {closed_n}, plan {omnibus.n}")
    print()


def demo_plan(sims: int) -> None:
    design = PlanDesign(
        conditions=DEMO_CONDITIONS,
        main_items=DEMO_MAIN_ITEMS,
        attention_items=DEMO_ATTENTION_CHECKS,
        n_choices=8,
        exclusion_rules=EXCLUSION_RULES,
        planned_n=50,
    )
    assumptions = PlanAssumptions(
        accuracies=accuracies_for_difference(DEMO_CONDITIONS, baseline=0.5, difference=0.15)
    )
    load = os.getloadavg()[0]
    started, cpu_started = time.perf_counter(), time.process_time()
    plan = plan_study(design, assumptions, exclusion_reasons=exclusion_reasons, sims=sims)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print("Demo design:")
    print(plan_text(plan))
    simulated = sum(studies.sims for studies in plan.simulated)
    # On a shared machine the wall time depends on the others; the CPU time does not.
    print(f"{'studies simulated':>17} {'wall s':>7} {'CPU s':>6} {'load avg':>9}")
    print(f"{simulated:>17} {seconds:>7.1f} {cpu:>6.1f} {load:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=100)
    args = parser.parse_args()
    closed_form_check(max(args.sims, 200))
    demo_plan(args.sims)


if __name__ == "__main__":
    main()
