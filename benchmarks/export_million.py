"""Export of a million responses: rows per second and peak memory, on PostgreSQL.

Run (PostgreSQL on 127.0.0.1 as in CI; a few minutes)::

    .venv/bin/python benchmarks/export_million.py [--responses 1000000]

Builds a fresh database (``--database``) with the load benchmark's study, fills it with
``--responses`` answers (participants x items, inserted in bulk), then runs
``manage.py export_study load --out FILE`` and ``export_study load --zip FILE`` as separate
processes at two sizes (a tenth of the rows, then all of them) and reports for each the
rows per second and the process's peak resident memory. The CSV's constant memory shows as
the same peak at both sizes; the zip's analysis adds about 30 bytes per response and, while
the study is under study.results.analysis.MODEL_MAX_CELLS, the model (the 'model' column
says whether analysis.txt has it).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def fill(responses: int, batch: int = 5000) -> int:
    """Insert participants, each answering every item once; returns rows inserted."""
    from django.utils import timezone

    from study.models import Participant, Response, Study

    study = Study.objects.get(slug="load")
    items = list(study.items.select_related("image__class_label"))
    conditions = list(study.conditions.all())
    per_participant = len(items)
    participants = -(-responses // per_participant)
    rng = random.Random(0)
    now = timezone.now()
    inserted = 0
    first = Participant.objects.filter(study=study).count()
    step = max(1, batch // per_participant)
    for start in range(first, first + participants, step):
        count = min(step, first + participants - start)
        made = Participant.objects.bulk_create(
            Participant(
                study=study,
                code=f"bench{start + index:010d}",
                condition=conditions[(start + index) % len(conditions)],
                platform=study.platform,
                platform_pseudonym=f"{start + index:064x}",
                status=Participant.Status.COMPLETED,
                page="complete",
                trial_seed=start + index,
                trial_item_ids=[item.pk for item in items],
                trial_position=per_participant,
            )
            for index in range(count)
        )
        rows = []
        for participant in made:
            for position, item in enumerate(items):
                if inserted + len(rows) >= responses:
                    break
                answer = str(rng.choice([item.image.class_label_id, item.image.class_label_id + 1]))
                rows.append(
                    Response(
                        participant=participant,
                        item=item,
                        phase=item.role,
                        trial_position=position,
                        answer=answer,
                        answer_text="some gull",
                        correct_answer=str(item.image.class_label_id),
                        is_correct=answer == str(item.image.class_label_id),
                        confidence=rng.randint(1, 5),
                        client_response_ms=rng.randint(500, 9000),
                        server_shown_at=now - timedelta(seconds=10),
                        viewport="390x844",
                    )
                )
        Response.objects.bulk_create(rows, batch_size=batch)
        inserted += len(rows)
        if inserted >= responses:
            break
    return inserted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=1_000_000)
    parser.add_argument("--trials", type=int, default=20, help="items per participant")
    parser.add_argument(
        "--database", default="postgres://postgres@127.0.0.1:5432/explainstudy_export"
    )
    args = parser.parse_args()
    os.environ.update(
        DATABASE_URL=args.database,
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="false",
        EXPLAINSTUDY_MEDIA_ROOT=tempfile.mkdtemp(prefix="explainstudy-export-media-"),
        OMP_NUM_THREADS="1",
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    from load_participants import prepare_database

    prepare_database(args.database, args.trials)
    from study.models import Response

    work = Path(tempfile.mkdtemp(prefix="explainstudy-export-"))
    header = (
        f"{'responses':>10} {'export':>6} {'seconds':>8} {'rows/s':>9} {'peak MB':>8} "
        f"{'MB out':>7} {'model':>5}"
    )
    lines = []
    target_sizes = sorted({max(1, args.responses // 10), args.responses})
    for size in target_sizes:
        started = time.perf_counter()
        fill(size - Response.objects.count())
        print(
            f"filled to {Response.objects.count()} responses "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        for kind in ("csv", "zip"):
            out = work / f"export-{size}.{kind}"
            # Each export in a fresh process, so its peak is its own.
            seconds, peak = export_isolated(kind, out)
            lines.append(
                f"{size:>10} {kind:>6} {seconds:>8.1f} {size / seconds:>9.0f} {peak:>8.0f} "
                f"{out.stat().st_size / 1e6:>7.1f} {model_fitted(out) if kind == 'zip' else '':>5}"
            )
            print(lines[-1], flush=True)
    print()
    print(header)
    print("-" * len(header))
    print("\n".join(lines))


def model_fitted(archive: Path) -> str:
    with zipfile.ZipFile(archive) as opened:
        return "yes" if "\nModel: " in opened.read("analysis.txt").decode() else "no"


def export_isolated(kind: str, out: Path) -> tuple[float, float]:
    """Like `export`, but measured in a wrapper process of its own, so each figure is the
    peak of that export alone rather than of every child so far."""
    code = (
        "import resource, subprocess, sys, time;"
        "t = time.perf_counter();"
        "subprocess.run(sys.argv[1:], check=True, capture_output=True);"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    flag = "--zip" if kind == "zip" else "--out"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            sys.executable,
            "manage.py",
            "export_study",
            "load",
            flag,
            str(out),
        ],
        cwd=ROOT,
        env=os.environ,
        check=True,
        capture_output=True,
        text=True,
    )
    seconds, peak_kib = result.stdout.split()
    return float(seconds), int(peak_kib) / 1024


if __name__ == "__main__":
    main()
