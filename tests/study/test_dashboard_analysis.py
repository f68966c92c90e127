"""The outcome statistics on the researcher dashboard and in the export zip.

Personas: `researcher_owner` owns the study; `researcher_b` owns nothing; `researcher_a` is
staff and sees every study's researcher pages, the analysis included.
"""

import csv
import io
import re
import zipfile

import pytest
from django.urls import reverse

from study.flow.simulation import BotBehaviour, participants_simulate
from study.models import Study
from study.researcher.services import study_set_show_accuracy
from study.results.exports import ANALYSIS_TXT, ZIP_MEMBERS
from study.results.reports import AnalysisOptions, study_analysis
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db

PLOTS = ("accuracy_by_condition.svg", "accuracy_by_ai_correctness.svg")


def simulate(study, n=12, mean_response_ms=2000):
    """Bots with planted accuracies: 30% without explanations, 90% with Grad-CAM."""
    participants_simulate(
        allow_live=True,
        study=study,
        n=n,
        behaviour_by_condition={
            "none": BotBehaviour(accuracy=0.3, mean_response_ms=mean_response_ms),
            "gradcam": BotBehaviour(accuracy=0.9, mean_response_ms=mean_response_ms),
        },
        default_behaviour=BotBehaviour(accuracy=0.5, mean_response_ms=mean_response_ms),
        seed=5,
    )


@pytest.fixture
def answered_study(classifier, researcher_owner):
    study = make_study(classifier, per_condition=6, n_items=5, owners=[researcher_owner])
    simulate(study)
    return study


def dashboard(client, study, **params):
    response = client.get(reverse("researcher-study", args=[study.slug]), params)
    assert response.status_code == 200
    return response.content.decode()


def plot_urls(page: str) -> list[str]:
    return [url.replace("&amp;", "&") for url in re.findall(r'<img src="([^"]+\.svg[^"]*)"', page)]


def test_owner_sees_tables_and_plots_of_the_planted_difference(
    client, answered_study, researcher_owner
):
    study = answered_study
    study_set_show_accuracy(study=study, show=True)
    client.force_login(researcher_owner)
    page = dashboard(client, study)

    report = study_analysis(study=study)
    none, gradcam = report.conditions
    assert none.accuracy.estimate < gradcam.accuracy.estimate  # the planted 30% vs 90%
    for heading in (
        "Accuracy per condition",
        "Are the conditions equal?",
        "Reliance on the AI",
        "Calibration and response times",
    ):
        assert heading in page
    assert f"{100 * gradcam.accuracy.estimate:.1f}%" in page
    assert f"{100 * gradcam.accuracy.low:.1f}%–{100 * gradcam.accuracy.high:.1f}%" in page
    assert "Rao-Scott" in page
    if report.pairwise:  # the model fits on these bots; the Holm-corrected pair is shown
        assert "gradcam vs none" in page and "p (Holm)" in page
    assert f"{gradcam.brier:.3f}" in page

    urls = plot_urls(page)
    assert [url.split("?")[0].rsplit("/", 1)[1] for url in urls] == list(PLOTS)
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == "image/svg+xml"
        assert "script-src" not in response["Content-Security-Policy"]
        assert response["Content-Security-Policy"].startswith("default-src 'none'")
        assert b"gradcam" in response.content and b"<svg" in response.content


def test_analysis_is_hidden_while_accuracy_is(client, answered_study, researcher_owner):
    study = answered_study
    client.force_login(researcher_owner)
    assert study.status == Study.Status.LIVE and not study.show_accuracy
    page = dashboard(client, study)
    assert "Accuracy so far is hidden" in page
    assert 'id="analysis"' not in page and not plot_urls(page)
    plot = reverse("researcher-analysis-plot", args=[study.slug, "accuracy_by_condition"])
    assert client.get(plot).status_code == 404

    study_set_show_accuracy(study=study, show=True)
    assert 'id="analysis"' in dashboard(client, study)
    assert client.get(plot).status_code == 200


def test_plots_are_for_those_who_see_the_study(
    client, answered_study, researcher_b, researcher_a, researcher_owner
):
    study = answered_study
    study_set_show_accuracy(study=study, show=True)
    plot = reverse("researcher-analysis-plot", args=[study.slug, "accuracy_by_condition"])
    assert client.get(plot).status_code == 302  # anonymous: to the login page
    client.force_login(researcher_b)
    assert client.get(plot).status_code == 404
    client.force_login(researcher_a)  # staff see every study, its analysis too
    assert client.get(plot).status_code == 200
    client.force_login(researcher_owner)
    unknown = reverse("researcher-analysis-plot", args=[study.slug, "accuracy_by_mood"])
    assert client.get(unknown).status_code == 404
    response = client.get(reverse("researcher-study", args=[study.slug]), {"include_pilot": "x"})
    assert response.status_code == 400
    assert client.get(plot, {"include_excluded": "yes"}).status_code == 400


def test_toggles_and_the_message_when_nothing_is_analysable(client, classifier, researcher_owner):
    """A pilot counts its pilot participants by default; everyone excluded leaves nothing to
    analyse until the researcher includes the excluded."""
    study = make_study(
        classifier,
        per_condition=6,
        n_items=5,
        owners=[researcher_owner],
        status=Study.Status.PILOT,
        exclusion_rules={"min_median_response_ms": 2000},
    )
    client.force_login(researcher_owner)
    page = dashboard(client, study)
    assert "Nothing to analyse yet: no main-phase responses to analyse." in page

    simulate(study, n=6, mean_response_ms=30_000)  # slow enough: not excluded
    simulate_fast = BotBehaviour(accuracy=0.5, mean_response_ms=50)
    participants_simulate(
        allow_live=True,
        study=study,
        n=2,
        behaviour_by_condition={},
        default_behaviour=simulate_fast,
        seed=9,
    )
    page = dashboard(client, study)
    assert "Pilot participants included" in page and "excluded participants left out" in page
    assert "Left out: 0 pilot and 2 excluded participant(s)." in page
    assert "?include_pilot=1&amp;include_excluded=1#analysis" in page  # the include link
    assert all("include_pilot=1&include_excluded=0" in url for url in plot_urls(page))

    page = dashboard(client, study, include_pilot="0")
    assert "Pilot participants left out" in page
    assert "Nothing to analyse yet" in page and not plot_urls(page)

    page = dashboard(client, study, include_pilot="1", include_excluded="1")
    assert "excluded participants included" in page and "Left out:" not in page
    url = plot_urls(page)[0]
    assert "include_excluded=1" in url and client.get(url).status_code == 200


def test_options_default_by_study_status(classifier):
    live = make_study(classifier, launch=False)
    live.status = Study.Status.LIVE
    from study.results.reports import study_analysis_options

    assert study_analysis_options(study=live, params={}) == AnalysisOptions(False, False)
    live.status = Study.Status.PILOT
    assert study_analysis_options(study=live, params={}) == AnalysisOptions(True, False)
    assert study_analysis_options(
        study=live, params={"include_pilot": "0", "include_excluded": "1"}
    ) == AnalysisOptions(False, True)
    with pytest.raises(ValueError, match="include_pilot must be 0 or 1, not 'true'"):
        study_analysis_options(study=live, params={"include_pilot": "true"})


def test_zip_holds_the_analysis_and_its_codebook_entries(client, answered_study, researcher_owner):
    client.force_login(researcher_owner)
    response = client.get(reverse("researcher-export-zip", args=[answered_study.slug]))
    body = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        assert tuple(archive.namelist()) == (*ZIP_MEMBERS, ANALYSIS_TXT, *PLOTS)
        text = archive.read(ANALYSIS_TXT).decode()
        svgs = {name: archive.read(name).decode() for name in PLOTS}
        with archive.open("codebook.csv") as member:
            codebook = list(csv.DictReader(io.TextIOWrapper(member, encoding="utf-8")))
    assert text.startswith(f"Study {answered_study.slug}: outcome statistics")
    assert "pilot participants left out" in text
    assert "Accuracy per condition" in text and "gradcam" in text and "Brier" in text
    assert "Accuracy by condition" in svgs["accuracy_by_condition.svg"]
    assert "AI wrong" in svgs["accuracy_by_ai_correctness.svg"]
    described = {row["file"]: row["description"] for row in codebook if not row["column"]}
    assert set(described) == {ANALYSIS_TXT, *PLOTS}
    assert "Holm" in described[ANALYSIS_TXT]
