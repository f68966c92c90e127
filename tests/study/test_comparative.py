"""The SAG comparative question: two partial images from the item's SAG search."""

import io
import re
import zipfile

import pytest
from django.urls import reverse
from PIL import Image as PILImage

from explain_engine.methods.sag import larger_picture
from explain_engine.models import Explanation
from explain_engine.tasks import precompute_job_run
from study.design import frozen as frozen_module
from study.design import question_types as question_types_module
from study.design.creation import study_precompute_job
from study.design.frozen import frozen_studies_forget, frozen_study
from study.design.launch import (
    study_config_hash,
    study_design,
    study_launch,
    study_launch_problems,
)
from study.design.question_types import (
    comparative_pair_counts,
    sag_comparison,
    sag_comparisons,
    sag_search,
)
from study.design.spec import StudyConfigError
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
    chosen = frozen_study(comparative).comparisons[trial.item.image_id]
    pair = trial.comparison.data["pairs"][chosen.pair_index]
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


def test_no_pair_is_drawn_in_the_sag_shown_with_it(comparative):
    comparisons = frozen_study(comparative).comparisons
    assert len(comparisons) == comparative.items.count()
    for comparison in comparisons.values():
        graph = comparison.explanation.data
        pair = graph["pairs"][comparison.pair_index]
        drawn = [node["patches"] for node in graph["nodes"]]
        assert pair["a_patches"] not in drawn and pair["b_patches"] not in drawn
        assert not set(pair["a_patches"]) <= set(pair["b_patches"])
        assert not set(pair["b_patches"]) <= set(pair["a_patches"])


def _pair(a, b, answer, kind):
    return {
        "a_node": -1,
        "b_node": -1,
        "a_patches": a,
        "b_patches": b,
        "a_probability": 0.9 if answer == "A" else 0.1,
        "b_probability": 0.1 if answer == "A" else 0.9,
        "gap": 80.0,
        "answer": answer,
        "kind": kind,
    }


def test_items_draw_pairs_so_the_larger_picture_wins_about_half(trained_classifier):
    study = make_study(
        trained_classifier, slug="balance", question_type="sag_comparative", n_items=4, launch=False
    )
    precompute_job_run.delay(study_precompute_job(study=study).pk)
    images = [item.image for item in study.items.order_by("pk")]
    # Every search offers both kinds, the larger picture winning first (as every pair of a
    # node and its child did); the last image has only a pair of the earlier rule.
    for image in images:
        search = sag_comparison(classifier=study.classifier, image=image).explanation
        larger_wins = _pair([1, 2, 24], [3, 4], "A", "larger_more_confident")
        smaller_wins = _pair([10, 11, 24], [12, 13], "B", "smaller_more_confident")
        pairs = [larger_wins, smaller_wins]
        if image == images[-1]:
            pairs = [{**larger_wins, "kind": "edge"}]
        search.data = {**search.data, "pairs": pairs, "pair_candidates": {}}
        search.save(update_fields=["data"])

    comparisons = sag_comparisons(classifier=study.classifier, items=study.items.all())
    assert set(comparisons) == {image.pk for image in images[:3]}
    larger_is_right = [
        larger_picture(c.explanation.data["pairs"][c.pair_index], 7) == c.answer
        for c in comparisons.values()
    ]
    # Always the larger picture: 1 of 3 (it was 3 of 3 with the first pair of each search).
    assert sorted(larger_is_right) == [False, False, True]

    counts = comparative_pair_counts(study=study)
    assert counts["items"] == 4 and counts["items_without_pair"] == 1
    assert counts["items_with_kind"] == {
        "smaller_more_confident": 3,
        "larger_more_confident": 3,
        "same_size": 0,
    }
    assert counts["chosen"] == {
        "smaller_more_confident": 2,
        "larger_more_confident": 1,
        "same_size": 0,
    }
    assert [row["valid"] for row in counts["per_image"]] == [2, 2, 2, 0]

    # Searches offering each kind with either answer (picture A right in the first of each
    # kind, as a search may store them): the draw also balances A and B, so "always A" is at
    # chance (it was 4 of 4 with the first pair of each kind).
    for image in images:
        search = sag_search(classifier=study.classifier, image=image)
        search.data = {
            **search.data,
            "pairs": [
                _pair([1, 2, 24], [3, 4], "A", "larger_more_confident"),
                _pair([7, 8], [5, 6, 24], "B", "larger_more_confident"),
                _pair([14, 15], [16, 17, 24], "A", "smaller_more_confident"),
                _pair([10, 11, 24], [12, 13], "B", "smaller_more_confident"),
            ],
        }
        search.save(update_fields=["data"])
    comparisons = sag_comparisons(classifier=study.classifier, items=study.items.all())
    drawn = [comparisons[image.pk] for image in images]
    assert [c.answer for c in drawn] == ["A", "B", "A", "B"]
    assert sorted(
        larger_picture(c.explanation.data["pairs"][c.pair_index], 7) == c.answer for c in drawn
    ) == [False, False, True, True]


def test_the_comparison_picture_is_stored_at_precompute_and_no_request_draws_it(
    client, comparative, monkeypatch
):
    from explain_engine import render

    searches = Explanation.objects.filter(method="sag", status=Explanation.Status.DONE)
    assert searches.exists() and not searches.filter(comparison="").exists()
    url = _to_trial(client, comparative, "cmp-stored")

    def no_drawing(*args, **kwargs):
        raise AssertionError("a participant request drew the comparison")

    monkeypatch.setattr(render, "sag_pair_figure", no_drawing)
    comparison_url = re.search(
        r'src="([^"]*/comparison/[^"]+)"', client.get(url).content.decode()
    ).group(1)
    picture = client.get(comparison_url)
    assert picture.status_code == 200
    # The stored zip holds every pair's picture; the page's is one of them, byte for byte.
    stored = {
        archive.read(name)
        for search in searches
        for archive in [zipfile.ZipFile(search.comparison.open("rb"))]
        for name in archive.namelist()
    }
    assert picture.content in stored


def test_a_search_stored_before_comparisons_were_is_drawn_once(client, comparative, monkeypatch):
    from explain_engine import render

    Explanation.objects.filter(method="sag").update(comparison="")
    from study.design.frozen import frozen_studies_forget

    frozen_studies_forget()
    url = _to_trial(client, comparative, "cmp-legacy")
    comparison_url = re.search(
        r'src="([^"]*/comparison/[^"]+)"', client.get(url).content.decode()
    ).group(1)
    drawn = []
    draw = render.sag_pair_figure
    monkeypatch.setattr(render, "sag_pair_figure", lambda *a, **k: drawn.append(1) or draw(*a, **k))
    first = client.get(comparison_url)
    drawn_first = len(drawn)  # every pair of that search, once, into the stored zip
    frozen_studies_forget()  # another process: a snapshot of its own, from the database
    second = client.get(comparison_url)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert drawn_first >= 1 and len(drawn) == drawn_first


def test_the_pairs_are_drawn_at_launch_and_kept_whatever_the_drawing_code_does(
    comparative, monkeypatch
):
    items = list(comparative.items.all())
    stored = {i.image_id: (i.comparison_explanation_id, i.comparison_pair) for i in items}
    assert len(stored) == 3 and all(pair is not None for _, pair in stored.values())
    design = study_design(study=comparative)
    assert [row["comparison"]["pair"] for row in design["items"]] == [
        item.comparison_pair for item in sorted(items, key=lambda item: item.pk)
    ]
    chosen_at_launch = comparative_pair_counts(study=comparative)["chosen"]
    assert sum(chosen_at_launch.values()) == 3
    # The code that draws pairs changes (here: it finds none): the launched study keeps its,
    # and the audit's printout (`shortcut_audit SLUG`) shows them.
    monkeypatch.setattr(frozen_module, "sag_comparisons", lambda **kwargs: {})
    monkeypatch.setattr(question_types_module, "sag_comparisons", lambda **kwargs: {})
    frozen_studies_forget()
    kept = frozen_study(comparative).comparisons
    assert {key: (c.explanation.pk, c.pair_index) for key, c in kept.items()} == stored
    assert comparative_pair_counts(study=comparative)["chosen"] == chosen_at_launch
    assert study_config_hash(study=comparative) == comparative.config_hash


def test_a_refused_launch_keeps_no_pair(comparative, trained_classifier):
    draft = make_study(
        trained_classifier,
        slug="compare-draft",
        question_type="sag_comparative",
        n_items=3,
        launch=False,
        shortcut_margin_points=0,  # any strategy above chance fails the audit
    )
    precompute_job_run.delay(study_precompute_job(study=draft).pk)
    with pytest.raises(StudyConfigError, match="shortcut audit"):
        study_launch(study=draft, status=Study.Status.LIVE)
    assert not draft.items.filter(comparison_pair__isnull=False).exists()
