"""Approving and rejecting on Prolific from the reconciliation, against a local stand-in of
Prolific's REST endpoints (a real HTTP server in a thread that records every request); and
the researcher's API token, which is stored encrypted and shown, exported and logged nowhere."""

import io
import json
import logging
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib import admin
from django.db import connection
from django.urls import reverse

from study.models import (
    Participant,
    PlatformIdentity,
    ProlificCredential,
    Response,
    StudyEvent,
)
from study.results.exclusions import participants_apply_exclusions
from study.results.prolific_api import prolific_submissions_approve
from study.results.prolific_token import prolific_token_read
from tests.study.conftest import make_study
from tests.study.test_export import finish
from tests.study.test_reconciliation import HEADER

pytestmark = pytest.mark.django_db

TOKEN = "pRoLiFiCtOkEn-" + "x7Q" * 12 + "Zk9w"
ROWS = (
    "sub-ok,ok,AWAITING REVIEW,,,300,C0DE42\n"
    "sub-nocode,nocode,AWAITING REVIEW,,,300,NOCODE\n"
    "sub-excluded,excluded,AWAITING REVIEW,,,300,C0DE42\n"
    "sub-returned,returned,RETURNED,,,300,\n"
)
REJECTION = (
    "You submitted without the completion code and did not finish the bird identification "
    "trials; the study page explained that both are needed."
)


class StandIn:
    """What the stand-in answers (status, JSON, delay) and every request it received."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        self.answer: dict = {}
        self.delay_s = 0.0


@pytest.fixture
def prolific(settings):
    stand_in = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            stand_in.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "json": json.loads(body) if body else None,
                }
            )
            time.sleep(stand_in.delay_s)
            payload = json.dumps(stand_in.answer).encode()
            self.send_response(stand_in.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.EXPLAINSTUDY_PROLIFIC_API_URL = f"http://127.0.0.1:{server.server_port}"
    settings.EXPLAINSTUDY_PROLIFIC_API_TIMEOUT_S = 2.0
    yield stand_in
    server.shutdown()
    server.server_close()


@pytest.fixture
def reconciled_study(client, classifier, researcher_owner):
    """ok, nocode, excluded (one answer throughout, against the rule) and returned completed
    here, each with their own Prolific submission id."""
    study = make_study(
        classifier, owners=[researcher_owner], exclusion_rules={"max_same_answer_share": 0.5}
    )
    for pid in ("ok", "nocode", "excluded", "returned"):
        finish(client, study, pid)
        PlatformIdentity.objects.filter(worker_id=pid).update(session_id=f"sub-{pid}")
    Response.objects.filter(participant__platform_identity__worker_id="excluded").update(
        answer="same"
    )
    participants_apply_exclusions(study=study)
    return study


@pytest.fixture
def reviewed(client, reconciled_study, researcher_owner, tmp_path):
    """The owner logged in with a token stored, and the reconciliation page of ROWS."""
    client.force_login(researcher_owner)
    stored = client.post(reverse("researcher-prolific-token"), {"token": TOKEN})
    assert stored.status_code == 302
    path = tmp_path / "prolific_export.csv"
    path.write_text(HEADER + ROWS)
    with path.open("rb") as handle:
        page = client.post(
            reverse("researcher-reconcile-prolific", args=[reconciled_study.slug]),
            {"submissions": handle},
        )
    assert page.status_code == 200
    return reconciled_study, page


def _snapshot():
    return list(Participant.objects.order_by("pk").values())


def _dashboard(client, study) -> str:
    return client.get(reverse("researcher-study", args=[study.slug])).content.decode()


def test_token_is_stored_encrypted_and_never_shown_exported_or_listed(
    client,
    reconciled_study,
    researcher_owner,
):
    client.force_login(researcher_owner)
    url = reverse("researcher-prolific-token")
    refused = client.post(url, {"token": "has a space in it, twenty plus"})
    assert refused.status_code == 400 and not ProlificCredential.objects.exists()
    assert client.post(url, {"token": TOKEN}).status_code == 302

    credential = ProlificCredential.objects.get(user=researcher_owner)
    assert TOKEN not in credential.token_encrypted and credential.token_hint == "Zk9w"
    assert prolific_token_read(user=researcher_owner) == TOKEN
    with connection.cursor() as cursor:  # every row of every table, as the database holds it
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            assert TOKEN not in repr(cursor.fetchall()), table

    page = client.get(url).content.decode()
    assert TOKEN not in page and "…Zk9w" in page
    assert TOKEN[:12] not in page

    export = client.get(reverse("researcher-export-zip", args=[reconciled_study.slug]))
    with zipfile.ZipFile(io.BytesIO(b"".join(export.streaming_content))) as archive:
        contents = b"".join(archive.read(name) for name in archive.namelist())
    assert contents and TOKEN.encode() not in contents
    assert ProlificCredential not in admin.site._registry

    assert client.post(reverse("researcher-prolific-token-delete")).status_code == 302
    assert not ProlificCredential.objects.exists()


def test_approve_sends_the_bulk_approval_and_logs_it(client, prolific, reviewed, caplog):
    study, page = reviewed
    caplog.set_level(logging.DEBUG)
    assert "Approve these 1 on Prolific" in page.content.decode()
    state = page.context["review_state"]

    listed = client.post(
        reverse("researcher-prolific-approve-list", args=[study.slug]), {"state": state}
    )
    assert listed.status_code == 200 and listed.content == b"ok\n"
    assert "attachment" in listed["Content-Disposition"]
    assert prolific.requests == []  # the list is a file, nothing is sent

    response = client.post(
        reverse("researcher-prolific-approve", args=[study.slug]), {"state": state}
    )
    assert response.status_code == 302
    [sent] = prolific.requests
    assert (sent["method"], sent["path"]) == ("POST", "/api/v1/submissions/bulk-approve/")
    assert sent["headers"]["Authorization"] == f"Token {TOKEN}"
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["json"] == {"submission_ids": ["sub-ok"]}

    event = StudyEvent.objects.get(study=study)
    assert event.action == StudyEvent.Action.PROLIFIC_APPROVE
    assert event.detail["outcome"] == "sent" and event.detail["submission_ids"] == ["sub-ok"]
    assert TOKEN not in json.dumps(event.detail) and TOKEN not in caplog.text
    dashboard = _dashboard(client, study)
    assert "Prolific is approving 1 submission(s)" in dashboard
    assert "approval sent to Prolific of 1 submission(s): sent" in dashboard
    assert TOKEN not in dashboard


def test_reject_and_approve_one_submission_of_the_mismatches(client, prolific, reviewed):
    study, page = reviewed
    state = page.context["review_state"]
    url = reverse("researcher-prolific-transition", args=[study.slug])
    reject = {
        "state": state,
        "submission_id": "sub-nocode",
        "action": "REJECT",
        "rejection_category": "NO_CODE",
        "message": REJECTION,
    }
    assert client.post(url, {**reject, "message": "Too short."}).status_code == 400
    assert client.post(url, {**reject, "rejection_category": ""}).status_code == 400
    # Only submissions the reconciliation found awaiting review among the mismatches.
    assert client.post(url, {**reject, "submission_id": "sub-ok"}).status_code == 400
    assert client.post(url, {**reject, "submission_id": "sub-returned"}).status_code == 400
    assert client.post(url, {**reject, "state": state[:-3] + "abc"}).status_code == 400
    assert prolific.requests == []

    assert client.post(url, reject).status_code == 302
    approve = {"state": state, "submission_id": "sub-excluded", "action": "APPROVE"}
    assert client.post(url, approve).status_code == 302
    rejected, approved = prolific.requests
    assert rejected["path"] == "/api/v1/submissions/sub-nocode/transition/"
    assert rejected["json"] == {
        "action": "REJECT",
        "message": REJECTION,
        "rejection_category": "NO_CODE",
    }
    assert rejected["headers"]["Authorization"] == f"Token {TOKEN}"
    assert approved["path"] == "/api/v1/submissions/sub-excluded/transition/"
    assert approved["json"] == {"action": "APPROVE"}
    actions = list(
        StudyEvent.objects.filter(study=study).order_by("pk").values_list("action", "reason")
    )
    assert actions == [("prolific_reject", REJECTION), ("prolific_approve", "")]


@pytest.mark.parametrize(
    "failure, expected",
    [
        (
            {"status": 400, "answer": {"error": {"detail": "Submission not awaiting review"}}},
            "(400)",
        ),
        ({"status": 503, "answer": {}}, "(503)"),
        ({"delay_s": 1.0}, "did not answer within 0.3 s"),
    ],
)
def test_a_prolific_error_gives_one_line_and_changes_nothing(
    client, prolific, reviewed, settings, failure, expected
):
    study, page = reviewed
    settings.EXPLAINSTUDY_PROLIFIC_API_TIMEOUT_S = 0.3
    for name, value in failure.items():
        setattr(prolific, name, value)
    before = _snapshot()
    response = client.post(
        reverse("researcher-prolific-approve", args=[study.slug]),
        {"state": page.context["review_state"]},
    )
    assert response.status_code == 302 and len(prolific.requests) == 1
    assert _snapshot() == before
    event = StudyEvent.objects.get(study=study)
    assert event.detail["outcome"] == "failed" and expected in event.detail["error"]
    dashboard = _dashboard(client, study)
    [line] = [line for line in dashboard.splitlines() if "Nothing approved: Prolific" in line]
    assert expected in line and 'role="alert"' in line
    assert "prolific_outcome" not in client.session  # shown once, then gone
    assert TOKEN not in dashboard


def test_bulk_approval_by_study_and_participant_ids_without_submission_ids(
    prolific,
    reconciled_study,
    researcher_owner,
):
    outcome = prolific_submissions_approve(
        study=reconciled_study,
        actor=researcher_owner,
        token=TOKEN,
        submission_ids=[],
        participant_ids=["ok", "nocode"],
        prolific_study_ids=["st-1"],
    )
    assert outcome.ok
    [sent] = prolific.requests
    assert sent["path"] == "/api/v1/submissions/bulk-approve/"
    assert sent["json"] == {"study_id": "st-1", "participant_ids": ["ok", "nocode"]}
