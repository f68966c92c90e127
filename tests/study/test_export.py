"""The long export: one row per response, joined with the item and the AI's output."""

import csv

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from explain_engine.models import Prediction
from study.models import Participant, Response
from study.results.columns import EXPORT_COLUMNS
from tests.study.test_participant_flow import QUESTIONNAIRE, answer_current_trial, enter, post

pytestmark = pytest.mark.django_db


def finish(client, study, pid, *, attention_correct=True):
    url = enter(client, study, pid=pid)
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    participant = Participant.objects.get(platform_identity__worker_id=pid)
    for _ in participant.trial_item_ids:
        answer_current_trial(
            client, url, participant, confidence=5, attention_correct=attention_correct
        )
    client.post(url, QUESTIONNAIRE)
    return participant


def test_export_study_writes_one_row_per_response(client, study, tmp_path):
    finish(client, study, "first")
    finish(client, study, "second")
    out = tmp_path / "responses.csv"
    call_command("export_study", study.slug, "--out", str(out))
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == Response.objects.count() == 2 * study.items.count()
    assert tuple(rows[0]) == EXPORT_COLUMNS
    for row in rows:
        response = Response.objects.get(
            participant_id=row["participant"], trial_position=row["trial_position"]
        )
        prediction = Prediction.objects.get(image=response.item.image)
        assert row["true_label"] == response.item.image.class_label.display_name
        assert row["answer"] == row["true_label"] and row["is_correct"] == "1"
        assert row["confidence"] == "5" and row["client_response_ms"] == "1234"
        assert row["ai_prediction"] == prediction.predicted_label.display_name
        assert row["ai_correct"] == str(int(prediction.is_correct))
        assert row["explanation_method"] in ("none", "gradcam")
        assert (row["explanation"] != "") == (row["explanation_method"] == "gradcam")
        assert int(row["server_response_ms"]) >= 0
        assert "first" not in row["platform_pseudonym"]
        assert row["q_trust_ai"] == "5" and row["q_comments"] == "Nice birds."


def test_export_unknown_study_and_missing_folder(study, tmp_path):
    with pytest.raises(CommandError, match="no study with slug 'nope'"):
        call_command("export_study", "nope", "--out", str(tmp_path / "x.csv"))
    with pytest.raises(CommandError, match="does not exist"):
        call_command("export_study", study.slug, "--out", str(tmp_path / "missing" / "x.csv"))


def test_researcher_pages_need_login_and_show_progress(
    client, study, researcher_a, django_user_model
):
    finish(client, study, "first")
    home = reverse("researcher-home")
    assert client.get(home)["Location"].startswith("/researcher/login/")
    django_user_model.objects.create_user(username="researcher_b", password="pw-long-enough-1")
    client.login(username="researcher_b", password="pw-long-enough-1")
    assert study.slug not in client.get(home).content.decode()  # owns none, is not staff

    client.force_login(researcher_a)
    page = client.get(home).content.decode()
    assert study.slug in page and "Completed" in page
    assert "/s/gulls/?PROLIFIC_PID={{%PROLIFIC_PID%}}&amp;STUDY_ID={{%STUDY_ID%}}" in page
    csv_response = client.get(reverse("researcher-export", args=[study.slug]))
    body = b"".join(csv_response.streaming_content).decode()
    assert body.count("\n") == 1 + study.items.count()
    assert body.startswith(",".join(EXPORT_COLUMNS))
