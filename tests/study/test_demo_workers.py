"""The embedded demo's precompute workers: two processes split one job, each row computed
once, and rows an interrupted run left claimed are computed again."""

import uuid

import pytest
from django.db import connection
from django.utils import timezone

from explain_engine.models import Explanation, Image
from explain_engine.services.precompute import precompute_job_create
from study.design.demo_workers import precompute_job_compute


def _database_url() -> str:
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    user, host, port = settings_dict["USER"], settings_dict["HOST"], settings_dict["PORT"]
    return f"postgres://{user}@{host}:{port}/{settings_dict['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_compute_a_job_once(classifier, settings, monkeypatch):
    # The workers are other processes: they must find this test's database and files.
    monkeypatch.setenv("DATABASE_URL", _database_url())
    monkeypatch.setenv("EXPLAINSTUDY_MEDIA_ROOT", str(settings.MEDIA_ROOT))
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    images = list(Image.objects.filter(image_set=classifier.image_set, split="test"))
    job = precompute_job_create(
        classifier=classifier, methods=[("gradcam", {})], images=images, batch_size=2
    )
    polls = []
    precompute_job_compute(job, workers=2, poll=lambda: polls.append(1), poll_seconds=0.2)

    rows = Explanation.objects.filter(job=job)
    assert rows.count() == len(images) > 2
    assert set(rows.values_list("status", flat=True)) == {"done"}
    assert set(rows.values_list("attempts", flat=True)) == {1}  # none computed twice
    job.refresh_from_db()
    assert job.status == "done" and polls


@pytest.mark.django_db
def test_rows_an_interrupted_run_left_claimed_are_computed_again(classifier):
    images = list(Image.objects.filter(image_set=classifier.image_set, split="test"))
    job = precompute_job_create(classifier=classifier, methods=[("gradcam", {})], images=images)
    precompute_job_compute(job, workers=0, poll=lambda: None)
    stranded = Explanation.objects.filter(job=job).first()
    # As a worker killed mid-batch leaves it: claimed, never finished.
    Explanation.objects.filter(pk=stranded.pk).update(
        status="running", claim_token=uuid.uuid4(), started_at=timezone.now()
    )
    precompute_job_compute(job, workers=0, poll=lambda: None)
    stranded.refresh_from_db()
    assert stranded.status == "done" and stranded.attempts == 2


def test_ctrl_c_while_waiting_for_the_web_server_stops_the_server(tmp_path, monkeypatch):
    from study.design import demo_workers

    class Server:
        stopped = False

        def poll(self):
            return None

        def terminate(self):
            self.stopped = True

        def wait(self):
            return 0

    server = Server()
    monkeypatch.setattr(demo_workers.subprocess, "Popen", lambda *args, **kwargs: server)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_workers.socket, "create_connection", interrupted)
    with pytest.raises(KeyboardInterrupt):
        demo_workers.demo_server_start("127.0.0.1:1", log_path=tmp_path / "server.log")
    assert server.stopped
