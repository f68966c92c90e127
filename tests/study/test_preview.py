"""A researcher's preview of a condition: the real pages under a banner, in any status of
the study, taking no place and never in the exports, the analysis or the dashboard's counts.

`researcher_owner` owns the study; `researcher_a` is staff (sees it, owns nothing);
`researcher_b` owns nothing and sees nothing.
"""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from explain_engine.tasks import precompute_job_run
from study.design.creation import study_precompute_job
from study.flow.entry import participant_enter, participant_preview_start
from study.flow.simulation import BotBehaviour, participants_simulate
from study.models import Participant, Response, Study
from study.researcher import dashboard, lifecycle
from study.researcher.monitor import participant_monitor
from study.results.reports import study_analysis
from study.results.rows import study_export_rows, study_participant_rows
from tests.study.conftest import make_study
from tests.study.test_participant_flow import QUESTIONNAIRE, answer_current_trial

pytestmark = pytest.mark.django_db


def researcher_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def start_preview(client, study, condition) -> str:
    response = client.post(
        reverse("researcher-preview", args=[study.slug]), {"condition": condition}
    )
    assert response.status_code == 302, response.content.decode()[:300]
    return response["Location"]


def walk_preview(client, url) -> dict[str, str]:
    """Walk a preview from consent to completion; the pages' HTML by page name."""
    participant = Participant.objects.get(code=url.rstrip("/").rsplit("/", 1)[1])
    pages = {"consent": client.get(url).content.decode()}
    assert client.post(url, {"page": "consent", "consent": "yes"}).status_code == 302
    pages["instructions"] = client.get(url).content.decode()
    client.post(url, {"page": "instructions"})
    pages["trials"] = client.get(url).content.decode()
    for _ in participant.trial_item_ids:
        answer_current_trial(client, url, participant)
    pages["questionnaire"] = client.get(url).content.decode()
    finished = client.post(url, QUESTIONNAIRE)
    assert finished.status_code == 302 and finished["Location"] == url  # not to Prolific
    pages["complete"] = client.get(url).content.decode()
    participant.refresh_from_db()
    assert participant.status == Participant.Status.COMPLETED and participant.preview
    return pages


def test_a_preview_of_each_condition_shows_its_figure_and_the_banner(classifier, researcher_owner):
    study = make_study(classifier, owners=[researcher_owner], per_condition=1)
    client = researcher_client(researcher_owner)
    for condition in ("gradcam", "none"):
        pages = walk_preview(client, start_preview(client, study, condition))
        for name, html in pages.items():
            assert f"Preview of condition <strong>{condition}</strong>" in html, name
        assert ("/explanation/" in pages["trials"]) == (condition == "gradcam")
        # The condition's own texts: only an explanation condition asks about it.
        assert ("where the AI looked" in pages["questionnaire"]) == (condition == "gradcam")
        assert "Consent text v1" in pages["consent"]


def _results(study):
    return {
        "conditions": dashboard.study_dashboard(study=study).conditions,
        "progress": dashboard.study_progress(study=study),
        "rows": list(study_export_rows(study=study)),
        "participants": list(study_participant_rows(study=study)),
        "analysis": repr(study_analysis(study=study)),
    }


def test_a_whole_preview_walk_takes_no_place_and_changes_no_result(classifier, researcher_owner):
    study = make_study(classifier, owners=[researcher_owner], per_condition=1)
    (real,) = participants_simulate(
        study=study,
        allow_live=True,
        n=1,
        behaviour_by_condition={},
        default_behaviour=BotBehaviour(accuracy=0.75, mean_response_ms=3000),
    )
    other = "none" if real.condition.name == "gradcam" else "gradcam"
    before = _results(study)

    client = researcher_client(researcher_owner)
    walk_preview(client, start_preview(client, study, other))
    walk_preview(client, start_preview(client, study, real.condition.name))

    assert Participant.objects.filter(study=study, preview=True).count() == 2
    assert Response.objects.filter(participant__preview=True).exists()
    assert _results(study) == before
    # The one place left is still free, in the condition the previews completed.
    newcomer = participant_enter(study=study, worker_id="a-real-person")
    assert newcomer.condition.name == other and not newcomer.preview


def test_only_those_who_see_the_study_start_a_preview_and_its_link_is_theirs(
    classifier, researcher_owner, researcher_a, researcher_b
):
    study = make_study(classifier, owners=[researcher_owner])
    url = reverse("researcher-preview", args=[study.slug])
    refused = researcher_client(researcher_b).post(url, {"condition": "gradcam"})
    assert refused.status_code == 404
    assert Client().post(url, {"condition": "gradcam"})["Location"].startswith("/researcher/login/")
    assert researcher_client(researcher_owner).post(url, {"condition": "nope"}).status_code == 400
    assert not Participant.objects.exists()

    preview_url = start_preview(researcher_client(researcher_a), study, "gradcam")  # staff
    for someone in (Client(), researcher_client(researcher_b)):
        assert someone.get(preview_url).status_code == 404
        assert someone.post(preview_url, {"page": "consent", "consent": "yes"}).status_code == 404
    preview = Participant.objects.get()
    assert preview.page == "consent" and preview.consented_at is None


@pytest.mark.parametrize("status", ["draft", "pilot", "live", "paused"])
def test_a_preview_runs_before_and_after_launch(classifier, researcher_owner, status):
    study = make_study(
        classifier,
        owners=[researcher_owner],
        launch=status != "draft",
        status=Study.Status.PILOT if status == "pilot" else Study.Status.LIVE,
    )
    if status == "draft":
        precompute_job_run.delay(study_precompute_job(study=study).pk)
    if status == "paused":
        lifecycle.study_change(study=study, action=lifecycle.Action.PAUSE)
    client = researcher_client(researcher_owner)
    url = start_preview(client, study, "gradcam")
    client.post(url, {"page": "consent", "consent": "yes"})
    client.post(url, {"page": "instructions"})
    trial = client.get(url)
    assert trial.status_code == 200 and trial.context["trial"].explanation is not None
    assert "Preview of condition <strong>gradcam</strong>" in trial.content.decode()
    assert Participant.objects.get().is_pilot is False


def test_a_draft_missing_its_explanations_has_no_preview_yet(classifier, researcher_owner):
    study = make_study(classifier, owners=[researcher_owner], launch=False)
    client = researcher_client(researcher_owner)
    response = client.post(
        reverse("researcher-preview", args=[study.slug]), {"condition": "gradcam"}
    )
    assert response["Location"] == reverse("researcher-study", args=[study.slug])
    assert not Participant.objects.exists()
    dashboard_html = client.get(response["Location"]).content.decode()
    assert "no preview until the draft is complete" in dashboard_html


def test_the_monitor_flags_previews(classifier, researcher_owner):
    study = make_study(classifier, owners=[researcher_owner])
    participant_preview_start(study=study, condition=study.conditions.get(name="none"))
    (row,) = participant_monitor(study=study, flag="preview").rows
    assert "preview" in row.flags
    assert participant_monitor(study=study, flag="live").total == 0


def test_old_previews_go_when_a_new_one_starts_and_all_go_with_a_draft(
    classifier, researcher_owner
):
    study = make_study(classifier, owners=[researcher_owner], launch=False)
    precompute_job_run.delay(study_precompute_job(study=study).pk)
    gradcam = study.conditions.get(name="gradcam")
    old = participant_preview_start(study=study, condition=gradcam)
    Participant.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(days=2))
    new = participant_preview_start(study=study, condition=gradcam)
    assert list(Participant.objects.values_list("pk", flat=True)) == [new.pk]

    lifecycle.study_draft_delete(study=study)  # a draft with a preview is deleted whole
    assert not Study.objects.exists() and not Participant.objects.exists()
