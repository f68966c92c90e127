"""Prolific reconciliation against a hand-made submissions export."""

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from study.models import Response
from study.results.exclusions import participants_apply_exclusions
from tests.study.conftest import make_study
from tests.study.test_export import finish
from tests.study.test_participant_flow import enter

pytestmark = pytest.mark.django_db

HEADER = "Submission id,Participant id,Status,Started at,Completed at,Time taken,Completion code\n"


@pytest.fixture
def reconciled_study(client, classifier, researcher_owner):
    """Here: ok, nocode, wrongcode, herenotthere, returned and excluded completed (excluded
    gave one answer throughout, against the declared rule); quitter entered and left."""
    study = make_study(
        classifier, owners=[researcher_owner], exclusion_rules={"max_same_answer_share": 0.5}
    )
    for pid in ("ok", "nocode", "wrongcode", "herenotthere", "returned", "excluded"):
        finish(client, study, pid)
    enter(client, study, pid="quitter")
    Response.objects.filter(participant__platform_identity__worker_id="excluded").update(
        answer="same"
    )
    participants_apply_exclusions(study=study)
    return study


def submissions_csv(tmp_path, rows: str):
    path = tmp_path / "prolific_export.csv"
    path.write_text(HEADER + rows)
    return path


ROWS = """se-1,ok,AWAITING REVIEW,,,300,C0DE42
se-1,nocode,AWAITING REVIEW,,,300,NOCODE
se-1,wrongcode,AWAITING REVIEW,,,300,WRONG1
se-1,quitter,AWAITING REVIEW,,,300,C0DE42
se-1,returned,RETURNED,,,300,
se-1,stranger,AWAITING REVIEW,,,300,C0DE42
se-1,excluded,AWAITING REVIEW,,,300,C0DE42
"""


def test_reconciliation_lists_mismatches_and_ids_to_approve(reconciled_study, tmp_path, capsys):
    path = submissions_csv(tmp_path, ROWS)
    call_command("reconcile_prolific", reconciled_study.slug, "--submissions", str(path))
    out = capsys.readouterr().out
    assert "7 submission(s) on Prolific, 6 matched here" in out
    for line in (
        "no code: nocode",
        "wrong code: wrongcode",
        "not completed here: quitter",
        "completed here, not there: returned (RETURNED on Prolific)",
        "unknown participant: stranger",
        "completed here, not there: herenotthere (no submission on Prolific)",
        "excluded here: excluded",
    ):
        assert line in out, line
    assert "mismatches: 7" in out
    assert "to approve: 1\nparticipant ids: ok\nsubmission ids: se-1" in out


def test_another_session_is_a_mismatch(reconciled_study, tmp_path, capsys):
    path = submissions_csv(tmp_path, "se-9,ok,AWAITING REVIEW,,,300,C0DE42\n")
    call_command("reconcile_prolific", reconciled_study.slug, "--submissions", str(path))
    assert "other session: ok (submission se-9 on Prolific, session se-1 here)" in (
        capsys.readouterr().out
    )


def test_a_file_without_the_needed_columns_is_refused(reconciled_study, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("id,status\n1,ok\n")
    with pytest.raises(CommandError, match="missing column.*'Participant id'.*'Completion code'"):
        call_command("reconcile_prolific", reconciled_study.slug, "--submissions", str(path))
    with pytest.raises(CommandError, match="no file"):
        call_command(
            "reconcile_prolific", reconciled_study.slug, "--submissions", str(tmp_path / "x")
        )


def test_upload_on_the_dashboard(client, reconciled_study, researcher_owner, tmp_path):
    client.force_login(researcher_owner)
    url = reverse("researcher-reconcile-prolific", args=[reconciled_study.slug])
    with submissions_csv(tmp_path, ROWS).open("rb") as handle:
        page = client.post(url, {"submissions": handle})
    assert page.status_code == 200
    result = page.context["reconciliation"]
    assert result.approve_participant_ids == ["ok"]
    assert len(result.mismatches) == 7
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with bad.open("rb") as handle:
        refused = client.post(url, {"submissions": handle})
    assert refused.status_code == 400 and "missing column" in refused.content.decode()
