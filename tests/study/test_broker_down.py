"""The broker is really down (CELERY_BROKER_URL names a closed port): participants finish a
whole study; precompute keeps the job waiting, and once a broker answers on that port the
periodic sender sends it, with nobody running anything again."""

import json
import shutil
import socket
import subprocess
import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from config.celery_app import app as celery_app
from explain_engine.models import Explanation, PrecomputeJob
from explain_engine.tasks import precompute_jobs_send_waiting
from study.flow.services import PROLIFIC_COMPLETION_URL
from study.models import Participant, Response
from tests.study.conftest import make_study
from tests.study.test_participant_flow import QUESTIONNAIRE, answer_current_trial, post

pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _forget_connections():
    # Celery keeps pools of connections (and producers on them) to the broker it first used.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker_down(settings, monkeypatch):
    """The broker URL names a port nobody listens on, as in an outage; the port it names."""
    port = _closed_port()
    url = f"redis://127.0.0.1:{port}/0"
    previous = (celery_app.conf.task_always_eager, celery_app.conf.broker_url)
    settings.CELERY_BROKER_URL = url
    # Celery reads CELERY_BROKER_URL from the environment before its configuration (CI sets
    # it to the real broker), so the outage must be named there too.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    # The app read the settings when it was configured: point it at the same URL.
    celery_app.conf.broker_url = url
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_transport_options = {"max_retries": 1}
    _forget_connections()
    yield port
    celery_app.conf.task_always_eager, celery_app.conf.broker_url = previous
    celery_app.conf.broker_transport_options = django_settings.CELERY_BROKER_TRANSPORT_OPTIONS
    _forget_connections()


def test_participants_finish_a_whole_study_while_the_broker_is_down(client, study, broker_down):
    with pytest.raises(OSError):  # nothing answers there
        socket.create_connection(("127.0.0.1", broker_down), timeout=1)
    url = client.get(
        reverse("study:entry", args=[study.slug]),
        {"js": "1", "PROLIFIC_PID": "p-outage", "STUDY_ID": "s", "SESSION_ID": "x"},
    )["Location"]
    assert post(client, url, page="consent", consent="yes").status_code == 302
    assert post(client, url, page="instructions").status_code == 302
    participant = Participant.objects.get()
    for _ in participant.trial_item_ids:
        assert answer_current_trial(client, url, participant).status_code == 302
    finished = client.post(url, QUESTIONNAIRE)
    assert finished["Location"] == PROLIFIC_COMPLETION_URL.format(code="C0DE42")
    participant.refresh_from_db()
    assert participant.status == Participant.Status.COMPLETED
    assert participant.questionnaire["trust_ai"] == "5"
    assert Response.objects.count() == len(participant.trial_item_ids)
    assert "C0DE42" in client.get(url).content.decode()


@pytest.fixture
def broker_back():
    """Start a Redis broker on a port (the one that was down)."""
    servers = []

    def start(port: int) -> redis.Redis:
        servers.append(
            subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
                stdout=subprocess.DEVNULL,
            )
        )
        connection = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(100):
            try:
                connection.ping()
                return connection
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    yield start
    for server in servers:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_precompute_made_while_the_broker_is_down_is_sent_once_it_answers(
    classifier, broker_down, broker_back
):
    study = make_study(classifier, slug="outage", launch=False)
    with pytest.raises(CommandError, match="cannot reach the Celery broker.*sent by itself"):
        call_command("precompute", "--study", study.slug)
    job = PrecomputeJob.objects.get()
    assert job.status == PrecomputeJob.Status.PENDING and job.sent_at is None
    assert not Explanation.objects.exists()
    # Beat tries every minute; while the broker is down the sender cannot send either.
    PrecomputeJob.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    schedule = django_settings.CELERY_BEAT_SCHEDULE.values()
    assert "explain_engine.tasks.precompute_jobs_send_waiting" in [e["task"] for e in schedule]
    assert precompute_jobs_send_waiting() == 0

    broker = broker_back(broker_down)
    _forget_connections()
    assert precompute_jobs_send_waiting() == 1  # beat's next minute
    job.refresh_from_db()
    assert job.sent_at is not None
    assert precompute_jobs_send_waiting() == 0  # sent once, not again
    queued = [json.loads(message) for message in broker.lrange("engine", 0, -1)]
    assert [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in queued] == [
        ("explain_engine.tasks.precompute_job_run", f"({job.pk},)")
    ]

    # What a worker does with the message: the job's explanations are computed.
    celery_app.conf.task_always_eager = True
    celery_app.tasks[queued[0]["headers"]["task"]].apply(args=[job.pk])
    job.refresh_from_db()
    assert job.status == PrecomputeJob.Status.DONE
    assert Explanation.objects.filter(status=Explanation.Status.DONE).count() == (
        study.items.count()
    )
