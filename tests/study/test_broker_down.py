"""The broker is down: participants keep working; precompute says so and resumes later."""

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from kombu.exceptions import OperationalError

from config.celery_app import app as celery_app
from explain_engine.models import Explanation
from explain_engine.tasks import precompute_job_run
from study.models import Participant, Response
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_down():
    """Tasks go to a broker nobody listens on (a closed port), as in an outage."""
    previous = (celery_app.conf.task_always_eager, celery_app.conf.broker_url)
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = "redis://127.0.0.1:9/0"
    celery_app.conf.broker_transport_options = {"max_retries": 1}
    _forget_connections()
    yield
    celery_app.conf.task_always_eager, celery_app.conf.broker_url = previous
    _forget_connections()


def _forget_connections():
    # Celery keeps pools of connections (and producers on them) to the broker it first used.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def test_participants_finish_a_study_while_the_broker_is_down(client, study, broker_down):
    url = client.get(
        reverse("study:entry", args=[study.slug]),
        {"js": "1", "PROLIFIC_PID": "p-outage", "STUDY_ID": "s", "SESSION_ID": "x"},
    )["Location"]
    client.post(url, {"page": "consent", "consent": "yes"})
    client.post(url, {"page": "instructions"})
    participant = Participant.objects.get()
    for _ in participant.trial_item_ids:
        trial = client.get(url).context["trial"]
        answered = client.post(
            url,
            {
                "page": "trials",
                "trial_position": trial.position,
                "answer": trial.choices[0].value,
                "confidence": 3,
                "client_response_ms": 800,
            },
        )
        assert answered.status_code == 302
    assert Response.objects.count() == len(participant.trial_item_ids)


def test_precompute_with_the_broker_down_keeps_the_job_and_a_later_run_computes_it(
    classifier, monkeypatch
):
    study = make_study(classifier, slug="outage", launch=False)

    def unreachable(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    celery_app.conf.task_always_eager = False
    monkeypatch.setattr(precompute_job_run, "delay", unreachable)
    with pytest.raises(
        CommandError, match="cannot reach the Celery broker.*run this command again"
    ):
        call_command("precompute", "--study", study.slug)
    assert not Explanation.objects.exists()

    # The broker is back (here: the tasks run in-process again).
    monkeypatch.undo()
    celery_app.conf.task_always_eager = True
    call_command("precompute", "--study", study.slug)
    items = study.items.count()
    assert Explanation.objects.filter(status=Explanation.Status.DONE).count() == items
