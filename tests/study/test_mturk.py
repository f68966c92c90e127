"""MTurk ExternalQuestion: preview creates nothing, the HIT runs in MTurk's iframe, and it
ends with a form posted to turkSubmitTo."""

import pytest
from django.urls import reverse

from study.models import Participant, PlatformIdentity, Study
from tests.study.conftest import make_study
from tests.study.test_participant_flow import QUESTIONNAIRE, answer_current_trial, post

pytestmark = pytest.mark.django_db

SANDBOX = "https://workersandbox.mturk.com"


def accepted(worker="W1", assignment="A1"):
    return {
        "js": "1",
        "workerId": worker,
        "assignmentId": assignment,
        "hitId": "H1",
        "turkSubmitTo": SANDBOX,
    }


@pytest.fixture
def mturk_study(classifier):
    return make_study(classifier, platform=Study.Platform.MTURK, per_condition=5)


def test_preview_describes_the_task_and_creates_nothing(client, mturk_study):
    response = client.get(
        reverse("study:entry", args=[mturk_study.slug]),
        {"js": "1", "assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "H1"},
    )
    assert response.status_code == 200
    assert "Accept the HIT to start" in response.content.decode()
    assert "X-Frame-Options" not in response
    assert "frame-ancestors https://www.mturk.com" in response["Content-Security-Policy"]
    assert not Participant.objects.exists()


def test_accepted_worker_runs_in_the_iframe_and_submits_to_mturk(client, mturk_study):
    entry = client.get(reverse("study:entry", args=[mturk_study.slug]), accepted())
    url = entry["Location"]
    page = client.get(url)
    assert "X-Frame-Options" not in page and "frame-ancestors" in page["Content-Security-Policy"]
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    participant = Participant.objects.get()
    for _ in participant.trial_item_ids:
        answer_current_trial(client, url, participant)
    done = client.post(url, QUESTIONNAIRE)
    assert done["Location"] == url  # stays on the site: the HIT ends with a form POST
    html = client.get(url).content.decode()
    assert f'action="{SANDBOX}/mturk/externalSubmit"' in html
    assert 'name="assignmentId" value="A1"' in html
    assert 'name="completion_code" value="C0DE42"' in html


def test_a_returned_and_reaccepted_hit_resumes_with_the_new_assignment(client, mturk_study):
    first = client.get(reverse("study:entry", args=[mturk_study.slug]), accepted())["Location"]
    again = client.get(reverse("study:entry", args=[mturk_study.slug]), accepted(assignment="A2"))[
        "Location"
    ]
    assert first == again and Participant.objects.count() == 1
    assert PlatformIdentity.objects.get().session_id == "A2"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"js": "1"}, "must be opened from Amazon Mechanical Turk"),
        ({**accepted(), "turkSubmitTo": "https://evil.example"}, "not an MTurk address"),
        ({"js": "1", "workerId": "W1", "hitId": "H1"}, "lacks assignmentId"),
    ],
)
def test_bad_mturk_links_are_refused(client, mturk_study, query, message):
    response = client.get(reverse("study:entry", args=[mturk_study.slug]), query)
    assert response.status_code == 400 and message in response.content.decode()
    assert not Participant.objects.exists()


def test_prolific_pages_stay_unframable(client, study):
    url = client.get(reverse("study:entry", args=[study.slug]), {"js": "1", "PROLIFIC_PID": "p"})[
        "Location"
    ]
    assert client.get(url)["X-Frame-Options"] == "DENY"
