"""Headers, limits and deployment checks that protect participants and researchers."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import RequestFactory
from django.urls import reverse

from explain_engine.models import Explanation
from study.flow.entry import client_address
from study.models import Participant, Study
from tests.study.conftest import make_study

ROOT = Path(__file__).resolve().parents[2]
PROLIFIC_QUERY = {"js": "1", "STUDY_ID": "st-1", "SESSION_ID": "se-1"}


def _enter(client, study, pid, **extra):
    return client.get(
        reverse("study:entry", args=[study.slug]), {**PROLIFIC_QUERY, "PROLIFIC_PID": pid}, **extra
    )


@pytest.mark.django_db
def test_every_page_gets_a_policy_that_allows_only_own_scripts_and_no_framing(client, study):
    entered = _enter(client, study, "pid-1")
    for response in (entered, client.get(entered["Location"]), client.get("/researcher/login/")):
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "object-src 'none'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "https://app.prolific.com" in policy  # the completion redirect is a form target


@pytest.mark.django_db
def test_mturk_pages_may_be_framed_by_mturk_only_and_keep_the_script_policy(client, classifier):
    study = make_study(classifier, platform=Study.Platform.MTURK)
    response = client.get(
        reverse("study:entry", args=[study.slug]),
        {
            "js": "1",
            "assignmentId": "A1",
            "hitId": "H1",
            "workerId": "W1",
            "turkSubmitTo": "https://www.mturk.com",
        },
    )
    page = client.get(response["Location"])
    policy = page["Content-Security-Policy"]
    assert "frame-ancestors https://www.mturk.com https://workersandbox.mturk.com" in policy
    assert "script-src 'self'" in policy
    assert "X-Frame-Options" not in page


@pytest.mark.django_db
def test_entry_is_rate_limited_per_address_and_the_refused_entry_creates_nothing(
    client, study, settings
):
    settings.EXPLAINSTUDY_ENTRY_RATE_LIMIT = 3
    for index in range(3):
        assert _enter(client, study, f"pid-{index}").status_code == 302
    refused = _enter(client, study, "pid-late")
    assert refused.status_code == 429
    assert "wait a minute" in refused.content.decode()
    assert not Participant.objects.filter(platform_identity__worker_id="pid-late").exists()
    # Another address is not affected.
    assert _enter(client, study, "pid-other", REMOTE_ADDR="10.0.0.9").status_code == 302


def test_client_address_trusts_only_the_configured_number_of_proxies(settings):
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.5"
    )
    settings.EXPLAINSTUDY_TRUSTED_PROXIES = 0
    assert client_address(request) == "10.0.0.1"  # a forged header counts for nothing
    settings.EXPLAINSTUDY_TRUSTED_PROXIES = 1
    assert client_address(request) == "203.0.113.5"  # what our own proxy saw


def test_production_settings_pass_the_deployment_checks():
    environment = {
        **os.environ,
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": "x" * 20 + "-production-secret-for-the-check-" + "y" * 20,
        "DJANGO_ALLOWED_HOSTS": "study.example.org",
    }
    environment.pop("DJANGO_DEBUG", None)
    # The browser tests' conftest sets this for their own process; no deployment does.
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_nothing_served_before_an_answer_tells_the_label_apart(client, classifier):
    """Two participants of one condition see trials of different species at the same
    position: with image ids blanked, every byte of the two pages is the same, and the
    image files carry no label text or metadata."""
    study = make_study(classifier, per_condition=10, n_items=8)
    urls = {}
    # Twelve entrants, six per condition: the chance that every gradcam participant starts on
    # the same species (which would leave nothing to compare) is then negligible.
    for index in range(12):
        url = _enter(client, study, f"pid-scan-{index}")["Location"]
        client.post(url, {"page": "consent", "consent": "yes"})
        client.post(url, {"page": "instructions"})
        participant = Participant.objects.get(platform_identity__worker_id=f"pid-scan-{index}")
        urls[participant] = url
    by_label = {}
    for participant, url in urls.items():
        if participant.condition.explanation_method != "gradcam":
            continue
        page = client.get(url)
        label = page.context["trial"].item.image.class_label
        by_label.setdefault(label.pk, (page, label, participant.code))
    assert len(by_label) >= 2, "the scan needs two trials of different species"
    (first, first_label, first_code), (second, second_label, second_code) = list(by_label.values())[
        :2
    ]
    # Stimuli are addressed by per-participant tokens: no page holds a public id that would
    # be the same for everyone (a leaked "id -> species" list would serve them all).
    public_ids = [str(image.public_id) for image in classifier.image_set.images.all()] + [
        str(public_id) for public_id in Explanation.objects.values_list("public_id", flat=True)
    ]
    for response in (first, second):
        html = response.content.decode()
        assert not [public_id for public_id in public_ids if public_id in html]
    first_tokens = set(re.findall(r"/image/([0-9a-f]{32})/", first.content.decode()))
    second_tokens = set(re.findall(r"/image/([0-9a-f]{32})/", second.content.decode()))
    assert first_tokens and second_tokens and not first_tokens & second_tokens
    blank = re.compile(r"/(image|explanation|comparison)/[0-9a-f]{32}/")

    def normalized(response, code):
        return blank.sub("/STIMULUS/", response.content.decode().replace(code, "CODE"))

    assert normalized(first, first_code) == normalized(second, second_code)
    labels = [first_label, second_label]
    secrets = [text.lower() for label in labels for text in (label.source_name,)]
    for response in (first, second):
        for src in re.findall(r'src="(/s/[^"]+)"', response.content.decode()):
            served = client.get(src)
            assert served.status_code == 200
            body = b"".join(served.streaming_content).lower()
            assert not any(secret.encode() in body for secret in secrets)
            assert b"exif" not in body[:4096]
            assert "filename" not in served.get("Content-Disposition", "")


@pytest.mark.django_db
def test_a_lost_database_connection_gives_a_retry_page_and_saves_nothing(
    client, study, monkeypatch
):
    from django.db import OperationalError

    from study.flow import services
    from study.models import Response

    url = _enter(client, study, "pid-db")["Location"]
    client.post(url, {"page": "consent", "consent": "yes"})
    client.post(url, {"page": "instructions"})
    trial = client.get(url).context["trial"]
    form = {
        "page": "trials",
        "trial_position": trial.position,
        "answer": trial.choices[0].value,
        "confidence": 3,
        "client_response_ms": 900,
    }
    real_advance = services._advance_past_trial

    def database_gone(participant):
        # The response row is written; the connection drops before the step is complete.
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services, "_advance_past_trial", database_gone)
    failed = client.post(url, form)
    assert failed.status_code == 503
    assert failed["Retry-After"] == "5"
    assert "reload this page" in failed.content.decode()
    assert not Response.objects.exists()  # rolled back with the step

    monkeypatch.setattr(services, "_advance_past_trial", real_advance)
    assert client.get(url).context["trial"].position == trial.position  # the same question
    assert client.post(url, form).status_code == 302
    assert Response.objects.count() == 1


def test_platform_ids_with_a_nul_are_stored_without_it():
    """PostgreSQL text cannot hold NUL: a forged STUDY_ID with one gave a 500 at entry."""
    from study.platforms import arrival_from_query

    arrival = arrival_from_query(
        "prolific", {"PROLIFIC_PID": "p\x00id", "STUDY_ID": "s\x00", "SESSION_ID": "\x00x"}
    )
    assert (arrival.worker_id, arrival.platform_study_id, arrival.session_id) == ("pid", "s", "x")
