"""The SAG comparative question: two partial images from the item's SAG search."""

import io
import re

import pytest
from django.urls import reverse
from PIL import Image as PILImage

from explain_engine.models import Explanation
from study.design.launch import study_launch_problems
from study.design.question_types import sag_comparison
from study.models import Participant, Response, Study
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db

QUERY = {"STUDY_ID": "s", "SESSION_ID": "x"}


@pytest.fixture
def comparative(trained_classifier):
    return make_study(
        trained_classifier, slug="compare", question_type="sag_comparative", n_items=3
    )


def _to_trial(client, study, pid):
    url = client.get(
        reverse("study:entry", args=[study.slug]), {"js": "1", **QUERY, "PROLIFIC_PID": pid}
    )["Location"]
    client.post(url, {"page": "consent", "consent": "yes"})
    client.post(url, {"page": "instructions"})
    return url


def test_precompute_runs_the_sag_search_every_item_needs_and_launch_checks_it(comparative):
    assert comparative.status == Study.Status.LIVE
    for item in comparative.items.select_related("image"):
        comparison = sag_comparison(classifier=comparative.classifier, image=item.image)
        assert comparison is not None
        pair = comparison.explanation.data["pairs"][comparison.pair_index]
        assert comparison.answer == pair["answer"]
        more, less = (
            (pair["a_probability"], pair["b_probability"])
            if pair["answer"] == "A"
            else (pair["b_probability"], pair["a_probability"])
        )
        assert more > less
    # Without the searches the study cannot launch, and the problem says why.
    Explanation.objects.filter(method="sag").update(status=Explanation.Status.FAILED)
    problems = study_launch_problems(study=comparative)
    assert any("no SAG comparison pair" in problem for problem in problems)


def test_participant_sees_the_pair_without_confidences_and_is_scored_by_the_search(
    client, comparative
):
    url = _to_trial(client, comparative, "cmp-1")
    page = client.get(url)
    trial = page.context["trial"]
    html = page.content.decode()
    assert trial.comparison is not None
    assert [choice.value for choice in trial.choices] == ["A", "B"]
    comparison_url = re.search(r'src="([^"]*/comparison/[^"]+)"', html).group(1)
    picture = client.get(comparison_url)
    assert picture.status_code == 200 and picture["Content-Type"] == "image/png"
    width, height = PILImage.open(io.BytesIO(picture.content)).size
    assert width > 2 * height * 0.8  # two images side by side
    pair = trial.comparison.data["pairs"][0]
    for probability in (pair["a_probability"], pair["b_probability"]):
        assert f"{probability:.2f}" not in html and f"{100 * probability:.0f}%" not in html

    wrong = "B" if pair["answer"] == "A" else "A"
    client.post(
        url,
        {
            "page": "trials",
            "trial_position": trial.position,
            "answer": wrong,
            "confidence": 2,
            "client_response_ms": 1500,
        },
    )
    response = Response.objects.get()
    assert response.correct_answer == pair["answer"] and not response.is_correct


def test_another_participant_or_study_cannot_fetch_the_comparison(
    client, comparative, trained_classifier
):
    url = _to_trial(client, comparative, "cmp-2")
    comparison_url = re.search(
        r'src="([^"]*/comparison/[^"]+)"', client.get(url).content.decode()
    ).group(1)
    explanation_id = comparison_url.rstrip("/").rsplit("/", 1)[1]
    other = make_study(trained_classifier, slug="other-study")
    other_url = _to_trial(client, other, "cmp-3")
    code = Participant.objects.get(platform_identity__worker_id="cmp-3").code
    assert other_url.endswith(f"/p/{code}/")
    foreign = reverse("study:comparison", args=[other.slug, code, explanation_id])
    assert client.get(foreign).status_code == 404
    stranger = comparison_url.replace(
        Participant.objects.get(platform_identity__worker_id="cmp-2").code, "x" * 32
    )
    assert client.get(stranger).status_code == 404
