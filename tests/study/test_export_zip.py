"""The whole export as one zip: both CSVs, the codebook that describes them, the design."""

import csv
import hashlib
import io
import json
import zipfile

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from study.models import Participant
from study.results.columns import EXPORT_COLUMNS, PARTICIPANT_EXPORT_COLUMNS
from study.results.exports import (
    CODEBOOK_COLUMNS,
    ZIP_MEMBERS,
    study_analysis_files,
    study_export_zip,
)
from study.results.rows import study_export_rows, study_participant_rows
from tests.study.conftest import make_study
from tests.study.test_export import finish
from tests.study.test_participant_flow import enter

pytestmark = pytest.mark.django_db


@pytest.fixture
def study_with_people(client, classifier, researcher_owner):
    study = make_study(
        classifier,
        n_attention=1,
        owners=[researcher_owner],
        exclusion_rules={"min_median_response_ms": 2000},
    )
    finish(client, study, "first")
    finish(client, study, "second")
    enter(client, study, pid="third")  # entered, answered nothing yet
    return study


def read_csv(archive: zipfile.ZipFile, name: str) -> list[dict]:
    with archive.open(name) as member:
        return list(csv.DictReader(io.TextIOWrapper(member, encoding="utf-8", newline="")))


def test_rows_have_exactly_the_declared_columns(study_with_people):
    response_rows = list(study_export_rows(study=study_with_people))
    participant_rows = list(study_participant_rows(study=study_with_people))
    assert response_rows and participant_rows
    assert {tuple(row) for row in response_rows} == {EXPORT_COLUMNS}
    assert {tuple(row) for row in participant_rows} == {PARTICIPANT_EXPORT_COLUMNS}


def test_zip_holds_both_csvs_the_codebook_and_the_design(study_with_people, tmp_path):
    study = study_with_people
    path = tmp_path / "export.zip"
    call_command("export_study", study.slug, "--zip", str(path))
    with zipfile.ZipFile(path) as archive:
        assert tuple(archive.namelist()) == ZIP_MEMBERS
        responses = read_csv(archive, "responses.csv")
        participants = read_csv(archive, "participants.csv")
        codebook = read_csv(archive, "codebook.csv")
        design = json.loads(archive.read("design.json"))

    assert len(responses) == 2 * study.items.count()
    assert tuple(responses[0]) == EXPORT_COLUMNS
    assert {row["participant_excluded"] for row in responses} == {"1"}  # 1234 ms < 2000 ms
    assert {row["participant_pilot"] for row in responses} == {"0"}

    assert len(participants) == 3 and tuple(participants[0]) == PARTICIPANT_EXPORT_COLUMNS
    by_status = {row["participant_status"]: row for row in participants}
    done = by_status["completed"]
    assert done["main_trials"] == "4" and done["main_correct"] == "4"
    assert done["main_accuracy"] == "1.0" and done["median_response_ms"] == "1234"
    assert done["attention_checks"] == "1" and done["q_trust_ai"] == "5"
    assert done["exclusion_reasons"] == "median response time 1234 ms (below 2000 ms)"
    assert float(done["duration_s"]) >= 0
    assert by_status["active"]["main_trials"] == "0" and by_status["active"]["duration_s"] == ""

    assert tuple(codebook[0]) == CODEBOOK_COLUMNS
    for file_name, columns in (
        ("responses.csv", EXPORT_COLUMNS),
        ("participants.csv", PARTICIPANT_EXPORT_COLUMNS),
    ):
        described = [row["column"] for row in codebook if row["file"] == file_name]
        assert tuple(described) == columns
    assert all(row["description"] for row in codebook)

    assert design["config_hash"] == study.config_hash
    frozen = json.dumps(design["design"], sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(frozen.encode()).hexdigest() == study.config_hash
    assert {c["name"] for c in design["design"]["conditions"]} == {"none", "gradcam"}
    assert len(design["design"]["items"]) == study.items.count()
    assert all(item["explanations"]["gradcam"] for item in design["design"]["items"])
    assert design["design"]["texts"]["consent"] == "Consent text v1"
    assert design["design"]["exclusion_rules"] == {"min_median_response_ms": 2000}


def test_zip_streams_from_the_dashboard(client, study_with_people, researcher_owner):
    client.force_login(researcher_owner)
    response = client.get(reverse("researcher-export-zip", args=[study_with_people.slug]))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/zip"
    body = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert tuple(archive.namelist()) == ZIP_MEMBERS
        assert archive.testzip() is None


def test_zip_is_written_in_chunks(study_with_people, monkeypatch):
    """The archive leaves as it is written: no chunk holds more than a small part of it."""
    n_rows = 30_000

    def many_rows(*, study):
        for index in range(n_rows):
            yield {column: f"{column}-{index * 7919 % 100_003}" for column in EXPORT_COLUMNS}

    monkeypatch.setattr("study.results.exports.study_export_rows", many_rows)
    chunks = list(study_export_zip(study=study_with_people))
    total = sum(len(chunk) for chunk in chunks)
    assert max(len(chunk) for chunk in chunks) < total / 10
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as archive:
        assert len(read_csv(archive, "responses.csv")) == n_rows


def test_export_study_keeps_its_csv_mode_and_refuses_both(study_with_people, tmp_path):
    out = tmp_path / "responses.csv"
    call_command("export_study", study_with_people.slug, "--out", str(out))
    assert out.read_text().splitlines()[0] == ",".join(EXPORT_COLUMNS)
    with pytest.raises(CommandError):
        call_command(
            "export_study",
            study_with_people.slug,
            "--out",
            str(out),
            "--zip",
            str(tmp_path / "x.zip"),
        )
    with pytest.raises(CommandError, match="does not exist"):
        call_command("export_study", study_with_people.slug, "--zip", str(tmp_path / "no" / "x"))


def test_pilot_participant_is_flagged_in_participants_csv(client, classifier):
    study = make_study(classifier, status="pilot")
    finish(client, study, "pilot-person")
    [row] = list(study_participant_rows(study=study))
    assert row["participant_pilot"] == 1
    assert Participant.objects.get().is_pilot


def test_zip_reads_the_responses_once_and_analyses_them_as_the_dashboard_does(client, classifier):
    study = make_study(classifier)
    finish(client, study, "first")
    finish(client, study, "second")
    with CaptureQueriesContext(connection) as queries:
        body = b"".join(study_export_zip(study=study))
    response_reads = [q["sql"] for q in queries if '"study_response"."interactions"' in q["sql"]]
    assert len(response_reads) == 1, response_reads
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        analysis = archive.read("analysis.txt").decode()
    read_separately = {file.name: file.content for file in study_analysis_files(study=study)}
    assert analysis == read_separately["analysis.txt"]
    assert "none" in analysis and "gradcam" in analysis


def test_codebook_gives_every_column_a_type_and_correct_answer_reads_like_answer(
    client, classifier
):
    """Analysts read the codebook, not the code: every exported column is in it with a type
    (and confidence with its range, times with their unit), and correct_answer is in answer's
    vocabulary, so that answer == correct_answer exactly on the correct rows."""
    from study.results.columns import TYPES
    from study.results.exports import codebook_rows

    study = make_study(classifier, n_attention=1)
    finish(client, study, "right")
    finish(client, study, "wrong", attention_correct=False)
    codebook = {(row["file"], row["column"]): row for row in codebook_rows()}
    for file_name, columns in (
        ("responses.csv", EXPORT_COLUMNS),
        ("participants.csv", PARTICIPANT_EXPORT_COLUMNS),
    ):
        assert [column for column in columns if (file_name, column) not in codebook] == []
        assert {codebook[(file_name, column)]["type"] for column in columns} <= set(TYPES)
    confidence = codebook[("responses.csv", "confidence")]
    assert (confidence["type"], confidence["allowed_values"]) == ("integer", "1..5")
    assert codebook[("responses.csv", "response_ms")]["unit"] == "ms"
    assert codebook[("responses.csv", "is_correct")]["allowed_values"] == "0, 1"

    rows = list(study_export_rows(study=study))
    wrong = [row for row in rows if row["is_correct"] == 0]
    assert wrong, "the second participant failed the attention check"
    assert all((row["answer"] == row["correct_answer"]) == row["is_correct"] for row in rows)
    main_answers = {row["correct_answer"] for row in rows if row["phase"] == "main"}
    assert main_answers and main_answers <= _display_names(study)


def _display_names(study):
    from explain_engine.models import ClassLabel

    return set(
        ClassLabel.objects.filter(image_set_id=study.classifier.image_set_id).values_list(
            "display_name", flat=True
        )
    )
