"""Throughput of the precompute pipeline with real Celery workers, against calling the method.

Explanations per minute for one job computed by 1 and by 2 worker processes (Redis broker,
PostgreSQL, solo pool, one torch thread each, the way one worker per GPU runs), and the
rate of calling the same method directly on the same images in this process (decode,
preprocess, `method.explain` in batches of the same size; no database, no files). The
pipeline's overhead is the time per explanation it adds over the direct call: the broker,
the claims, the overlay PNG and raw map written through storage, the provenance.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pipeline_bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/7 \\
    .venv/bin/python benchmarks/pipeline_throughput.py [--per-class 4] [--method gradcam]

The database is created if missing and migrated; the synthetic images (demo size, 224 px)
and media go to a temporary folder. The classifier is an untrained small CNN: its weights
do not change the cost of an explanation.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _ensure_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if not exists.fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def _start_workers(count: int, env: dict, logs: Path) -> list[subprocess.Popen]:
    processes = []
    for index in range(count):
        log = logs / f"worker-{count}-{index}.log"
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "-Q",
                    "engine,web",
                    "--pool",
                    "solo",
                    "--without-mingle",
                    "--without-gossip",
                    "--loglevel",
                    "INFO",
                    "-n",
                    f"bench{index}@%h",
                ],
                cwd=ROOT,
                env=env,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + 120
    for index in range(count):
        log = logs / f"worker-{count}-{index}.log"
        while " ready." not in log.read_text():
            if time.monotonic() > deadline or processes[index].poll() is not None:
                _stop(processes)
                raise RuntimeError(f"worker {index} did not start:\n{log.read_text()}")
            time.sleep(0.2)
    return processes


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=4, help="images per species (8 of them)")
    parser.add_argument("--method", default="integrated_gradients")
    parser.add_argument("--params", default="{}", help="JSON method parameters")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get(
        "CELERY_BROKER_URL"
    ):
        sys.exit("set DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis)")
    _ensure_database(os.environ["DATABASE_URL"])
    scratch = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    try:
        _run(args, scratch)
    finally:
        shutil.rmtree(scratch)


def _run(args: argparse.Namespace, scratch: Path) -> None:
    os.environ["EXPLAINSTUDY_MEDIA_ROOT"] = str(scratch / "media")
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

    import django

    django.setup()
    import json

    import torch
    from django.core.management import call_command

    from config.celery_app import app as celery_app
    from explain_engine import classifiers
    from explain_engine.datasets.synthetic_birds import generate_synthetic_birds
    from explain_engine.methods import get_method
    from explain_engine.models import Classifier, Explanation, Image, ImageSet, PrecomputeJob
    from explain_engine.services.classifiers import classifier_model, classifier_register
    from explain_engine.services.images import image_set_import_cub, image_tensor
    from explain_engine.services.precompute import precompute_job_create
    from explain_engine.services.predictions import predictions_compute
    from explain_engine.tasks import precompute_job_run

    torch.set_num_threads(1)
    call_command("migrate", verbosity=0)
    Classifier.objects.filter(name="bench-classifier").delete()
    Image.objects.filter(image_set__name="bench-birds").delete()  # labels are protected
    ImageSet.objects.filter(name="bench-birds").delete()
    generate_synthetic_birds(
        scratch / "birds", per_class=args.per_class, seed=0, image_size=args.image_size
    )
    image_set = image_set_import_cub(root=scratch / "birds", name="bench-birds")
    torch.manual_seed(0)
    checkpoint = scratch / "small_cnn.pt"
    torch.save(classifiers.build_model("small_cnn", 8).state_dict(), checkpoint)
    classifier = classifier_register(
        name="bench-classifier",
        image_set=image_set,
        architecture="small_cnn",
        checkpoint_path=checkpoint,
        input_size=args.image_size,
    )
    images = list(image_set.images.order_by("pk"))
    params = json.loads(args.params)
    method = get_method(args.method, **params)
    print(
        f"{len(images)} images of {args.image_size} px, {args.method} {method.params()}, "
        f"batches of {args.batch_size}, small_cnn on the CPU, 1 torch thread per process"
    )

    # Direct: what a script calling the method would do with the same images.
    model, preprocessing = classifier_model(classifier)
    predictions_compute(classifier=classifier, images=images)
    targets = {p.image_id: p.predicted_index for p in classifier.predictions.all()}
    started = time.perf_counter()
    for start in range(0, len(images), args.batch_size):
        chunk = images[start : start + args.batch_size]
        batch = torch.stack([image_tensor(image, preprocessing) for image in chunk])
        method.explain(model, batch, torch.tensor([targets[image.pk] for image in chunk]))
    direct_seconds = time.perf_counter() - started

    env = {**os.environ}
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()  # tasks an interrupted run left behind
    rows = [("direct call, this process", 1, direct_seconds)]
    for workers in (1, 2):
        Explanation.objects.filter(classifier=classifier).delete()
        processes = _start_workers(workers, env, scratch)
        try:
            job = precompute_job_create(
                classifier=classifier,
                methods=[(args.method, params)],
                images=images,
                batch_size=args.batch_size,
            )
            started = time.perf_counter()
            precompute_job_run.delay(job.pk)
            while job.status not in (PrecomputeJob.Status.DONE, PrecomputeJob.Status.FAILED):
                time.sleep(0.1)
                job.refresh_from_db()
            seconds = time.perf_counter() - started
        finally:
            _stop(processes)
        if job.status != PrecomputeJob.Status.DONE:
            sys.exit(f"job failed: {job.error}")
        rows.append((f"pipeline, {workers} worker(s)", workers, seconds))

    count = len(images)
    print(f"\n{'':28} {'procs':>5} {'seconds':>8} {'expl/min':>9} {'s/expl':>7}")
    for name, procs, seconds in rows:
        rate = count / seconds * 60
        print(f"{name:28} {procs:>5} {seconds:>8.1f} {rate:>9.1f} {seconds / count:>7.3f}")
    one, two = rows[1][2], rows[2][2]
    print(f"\n2 workers vs 1: {one / two:.2f}x (goal: at least 1.8x)")
    overhead = (one - direct_seconds) / count
    print(
        f"pipeline overhead over the direct call: {overhead * 1000:.0f} ms per explanation "
        f"({(one / direct_seconds - 1) * 100:.0f}% of the direct time)"
    )


if __name__ == "__main__":
    main()
