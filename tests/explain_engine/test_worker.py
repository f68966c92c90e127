"""A real Celery worker process against the real broker (CI sets CELERY_BROKER_URL)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config.celery_app import app as celery_app
from explain_engine.models import Explanation, PrecomputeJob
from explain_engine.services.precompute import precompute_job_create
from explain_engine.tasks import precompute_job_run

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(
        not os.environ.get("CELERY_BROKER_URL"), reason="needs CELERY_BROKER_URL (a real broker)"
    ),
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="the worker process must share the test database: needs PostgreSQL",
    ),
]


def _test_database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def start_worker(settings):
    """Start real worker processes (solo pool, like one per GPU); all are stopped after."""
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "EXPLAINSTUDY_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "OMP_NUM_THREADS": "1",
    }
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    subprocess.run(
        [*celery, "purge", "-f", "-Q", "engine,web"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    processes = []

    def start(**extra_env: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [
                *celery,
                "worker",
                "-Q",
                "engine,web",
                "--pool",
                "solo",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env={**env, **extra_env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(process)
        return process

    celery_app.conf.task_always_eager = False
    try:
        yield start
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def worker(start_worker):
    return start_worker()


def _wait_for(job: PrecomputeJob, process, timeout: float = 180) -> PrecomputeJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in (PrecomputeJob.Status.DONE, PrecomputeJob.Status.FAILED):
            return job
        assert process.poll() is None, f"worker exited: {process.stdout.read()}"
        time.sleep(0.5)
    process.kill()
    raise AssertionError(f"job {job.pk} not finished; worker log:\n{process.stdout.read()}")


@pytest.mark.django_db(transaction=True)
def test_real_worker_computes_a_job_and_a_second_run_computes_nothing(classifier, worker):
    assert settings.CELERY_BROKER_URL
    images = list(classifier.image_set.images.filter(split="test"))
    job = precompute_job_create(classifier=classifier, methods=[("gradcam", {})], images=images)
    precompute_job_run.delay(job.pk)
    job = _wait_for(job, worker)
    assert job.status == PrecomputeJob.Status.DONE, job.error
    done = Explanation.objects.filter(status=Explanation.Status.DONE)
    assert done.count() == len(images)
    assert all(e.overlay and Path(e.overlay.path).is_file() for e in done)
    first_finished = sorted(done.values_list("finished_at", flat=True))

    again = precompute_job_create(classifier=classifier, methods=[("gradcam", {})], images=images)
    precompute_job_run.delay(again.pk)
    again = _wait_for(again, worker)
    assert again.status == PrecomputeJob.Status.DONE
    assert Explanation.objects.count() == len(images)
    assert sorted(done.values_list("finished_at", flat=True)) == first_finished


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_job_is_replaced_and_every_explanation_is_stored_once(
    classifier, start_worker, settings
):
    images = list(classifier.image_set.images.all())
    job = precompute_job_create(
        classifier=classifier,
        methods=[("integrated_gradients", {"steps": 64})],
        images=images,
        batch_size=1,
    )
    # Redis hands an unacknowledged message to another worker after the visibility timeout;
    # the lease stays long, so only the redelivery can let the new worker take over.
    short_visibility = {
        "CELERY_VISIBILITY_TIMEOUT": "5",
        "EXPLAINSTUDY_CLAIM_LEASE_SECONDS": "3600",
    }
    first = start_worker(**short_visibility)
    precompute_job_run.delay(job.pk)
    rows = Explanation.objects.filter(job=job)
    deadline = time.monotonic() + 180
    while True:
        assert time.monotonic() < deadline, "the first worker made no progress"
        assert rows.filter(status="done").count() < len(images), "finished before the kill"
        if rows.filter(status="done").count() >= 3:
            # Frozen, the worker cannot store its row and move on between this look and the
            # kill; if it was between two tasks, let it go on and look again.
            os.kill(first.pid, signal.SIGSTOP)
            if rows.filter(status="running").exists():
                break
            os.kill(first.pid, signal.SIGCONT)
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    orphaned = set(rows.filter(status="running").values_list("pk", flat=True))
    assert orphaned, "the killed worker held no claim"
    assert rows.filter(status="done").count() < len(images)

    second = start_worker(**short_visibility)
    job = _wait_for(job, second)
    assert job.status == PrecomputeJob.Status.DONE, job.error
    assert Explanation.objects.count() == rows.count() == len(images)
    assert set(rows.values_list("status", flat=True)) == {"done"}
    # The redelivered task took over the dead worker's claim; every other row ran once.
    attempts = dict(rows.values_list("pk", "attempts"))
    assert {pk: attempts[pk] for pk in orphaned} == dict.fromkeys(orphaned, 2)
    assert set(attempts.values()) == {1, 2}
    referenced = [Path(name).name for row in rows for name in (row.overlay.name, row.raw_map.name)]
    on_disk = {path.name for path in (Path(settings.MEDIA_ROOT) / "explanations").iterdir()}
    assert len(set(referenced)) == 2 * len(images) and set(referenced) <= on_disk
    # At most the killed claim's own two files, if it died between writing and storing.
    assert len(on_disk - set(referenced)) <= 2
