"""Error pages a participant may meet: inside MTurk's frame they show (the same frame policy
as the study's normal pages), and in production (DEBUG off) they are in plain words, with
no framework wording."""

import pytest
from django.db import OperationalError
from django.test import Client
from django.urls import reverse

from study.flow import selectors
from study.models import Participant, Study
from study.researcher import dashboard
from tests.study.conftest import make_study
from tests.study.test_participant_flow import answer_current_trial, post

pytestmark = pytest.mark.django_db

MTURK_QUERY = {
    "js": "1",
    "workerId": "W1",
    "assignmentId": "A1",
    "hitId": "H1",
    "turkSubmitTo": "https://workersandbox.mturk.com",
}
DJANGO_WORDING = ("Not Found", "Server Error", "Bad Request", "requested resource", "Django")


@pytest.fixture(autouse=True)
def _production_error_pages(settings):
    settings.DEBUG = False


def _framable_by_mturk(response) -> bool:
    return (
        "X-Frame-Options" not in response
        and "frame-ancestors https://www.mturk.com" in response["Content-Security-Policy"]
    )


def _unframable(response) -> bool:
    return (
        response["X-Frame-Options"] == "DENY"
        and "frame-ancestors 'none'" in response["Content-Security-Policy"]
    )


def _mturk_in_trials(client, classifier):
    study = make_study(classifier, platform=Study.Platform.MTURK, per_condition=5)
    url = client.get(reverse("study:entry", args=[study.slug]), MTURK_QUERY)["Location"]
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    return study, url


def test_the_bad_answer_page_of_an_mturk_study_shows_in_mturks_frame(client, classifier):
    _, url = _mturk_in_trials(client, classifier)
    trial = client.get(url).context["trial"]
    response = post(
        client, url, page="trials", trial_position=trial.position, answer="x", confidence="inf"
    )
    assert response.status_code == 400
    assert _framable_by_mturk(response)


def test_the_questionnaire_error_page_of_an_mturk_study_shows_in_mturks_frame(client, classifier):
    _, url = _mturk_in_trials(client, classifier)
    participant = Participant.objects.get()
    for _ in participant.trial_item_ids:
        answer_current_trial(client, url, participant)
    response = post(client, url, page="questionnaire", age_band="not a band")
    assert response.status_code == 400 and "form" in response.context
    assert _framable_by_mturk(response)


def test_a_prolific_studys_error_page_stays_unframable(client, study):
    url = client.get(reverse("study:entry", args=[study.slug]), {"js": "1", "PROLIFIC_PID": "p"})[
        "Location"
    ]
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    response = post(client, url, page="trials", trial_position="0", answer="x", confidence="9")
    assert response.status_code == 400
    assert _unframable(response)


def test_the_unavailable_page_shows_in_mturks_frame_for_participants_only(
    client, study, researcher_a, monkeypatch
):
    def database_gone(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(selectors, "participant_by_code", database_gone)
    monkeypatch.setattr(dashboard, "studies_visible_to", database_gone)
    participant_page = client.get(reverse("study:participant", args=[study.slug, "c" * 20]))
    assert participant_page.status_code == 503
    assert _framable_by_mturk(participant_page)
    client.force_login(researcher_a)
    researcher_page = client.get(reverse("researcher-home"))
    assert researcher_page.status_code == 503
    assert _unframable(researcher_page)


def test_not_found_is_plain_words_and_framable_for_participants(client, study):
    response = client.get(reverse("study:participant", args=[study.slug, "no-such-code"]))
    assert response.status_code == 404
    html = response.content.decode()
    assert "This page does not exist" in html
    assert not [words for words in DJANGO_WORDING if words in html]
    assert _framable_by_mturk(response)
    elsewhere = client.get("/nowhere/")
    assert elsewhere.status_code == 404 and "This page does not exist" in elsewhere.content.decode()
    assert _unframable(elsewhere)


def test_a_server_error_is_plain_words_and_framable_for_participants(study, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(selectors, "participant_by_code", broken)
    client = Client(raise_request_exception=False)
    response = client.get(reverse("study:participant", args=[study.slug, "c" * 20]))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on our side" in html and "a bug" not in html
    assert not [words for words in DJANGO_WORDING if words in html]
    assert _framable_by_mturk(response)
