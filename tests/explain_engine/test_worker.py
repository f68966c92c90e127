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
from explain_engine.services import precompute_job_create
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
def worker(settings):
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "EXPLAINSTUDY_MEDIA_ROOT": str(settings.MEDIA_ROOT),
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
    process = subprocess.Popen(
        [*celery, "worker", "-Q", "engine,web", "--pool", "solo", "--loglevel", "INFO"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    celery_app.conf.task_always_eager = False
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


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
