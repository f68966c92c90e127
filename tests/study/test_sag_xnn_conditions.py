"""SAG and XNN conditions, end to end: precompute stores their figures and data through the
same pipeline as the heatmaps, and participants see them at a legible width."""

import io
import json

import numpy as np
import pytest
from django.template.loader import render_to_string
from django.urls import reverse
from PIL import Image as PILImage

from explain_engine.captions import xnn_captions
from explain_engine.models import ConceptModel, Explanation
from explain_engine.reflow import xnn_parts
from explain_engine.render import xnn_concept_panel
from explain_engine.services.concept_models import concept_model_fit
from explain_engine.tasks import precompute_job_run
from study.design.creation import study_create, study_precompute_job
from study.design.launch import study_launch
from study.design.spec import ConditionSpec, StudySpec
from study.flow.stimulus_tokens import stimulus_token
from study.models import Study

pytestmark = pytest.mark.django_db

FAST_XNN = {"k": 3, "epochs": 2, "pretrain_epochs": 1, "max_attempts": 1, "train_batch_size": 8}


@pytest.fixture
def study(trained_classifier):
    images = list(trained_classifier.image_set.images.filter(split="test").order_by("pk"))
    study = study_create(
        StudySpec(
            slug="methods",
            title="Which gull?",
            classifier=trained_classifier,
            platform=Study.Platform.PROLIFIC,
            conditions=[
                ConditionSpec(name="sag", explanation_method="sag"),
                ConditionSpec(name="xnn", explanation_method="xnn", explanation_params=FAST_XNN),
                ConditionSpec(
                    name="xnn-with-answer",
                    explanation_method="xnn",
                    explanation_params=FAST_XNN,
                    show_ai_prediction=True,
                ),
            ],
            main_images=images[:3],
            training_images=images[3:4],
            participants_per_condition=5,
            consent_text="Consent",
            instructions_text="Pick the species.",
            shortcut_margin_points=100,  # a few items: the audit is tested elsewhere
        )
    )
    # two epochs fit a weak concept model: kept as `fit_xnn --accept-weak-fit` keeps one
    concept_model_fit(classifier=trained_classifier, accept_weak_fit=True, **FAST_XNN)
    precompute_job_run.delay(study_precompute_job(study=study).pk)
    return study_launch(study=study)


def test_precompute_stores_sag_graphs_and_xnn_concepts_with_their_figures(study):
    sag = list(Explanation.objects.filter(method="sag"))
    xnn = list(Explanation.objects.filter(method="xnn"))
    assert len(sag) == len(xnn) == 4
    assert all(row.status == Explanation.Status.DONE for row in sag + xnn)
    # One concept model for the classifier, fitted once for all items.
    assert ConceptModel.objects.count() == 1
    for row in sag:
        assert {"nodes", "edges", "mses", "pairs", "roots"} <= set(row.data)
        assert json.loads(row.raw_map.read()) == row.data
        assert row.metrics["minimal_sufficient_explanations"] == len(row.data["mses"])
        assert row.params["pixel_mean"] == list(study.classifier.normalization_mean)
    for row in xnn:
        assert len(row.data["concepts"]) == 3
        maps = np.load(io.BytesIO(row.raw_map.read()))
        assert maps.shape[0] == 3 and maps.min() >= 0 and maps.max() <= 1
        column = row.data["classes"].index(row.target_index)
        rebuilt = sum(c["contributions"][column] for c in row.data["concepts"])
        rebuilt += row.data["bias"][column]
        assert rebuilt == pytest.approx(row.data["rebuilt_scores"][column], abs=1e-4)
    for row in sag + xnn:
        figure = PILImage.open(row.overlay)
        assert figure.width >= 700  # a wide figure, shown across the page


def test_participants_see_the_figure_laid_out_by_the_page(client, study):
    """One participant per condition (balanced assignment). The XNN prototypes (training
    photos of the AI's answer) are on the page only where the condition shows the answer."""
    seen = set()
    for index in range(3):
        url = client.get(
            reverse("study:entry", args=[study.slug]),
            {"js": "1", "PROLIFIC_PID": f"w-{index}", "STUDY_ID": "s", "SESSION_ID": "x"},
        )["Location"]
        client.post(url, {"page": "consent", "consent": "yes"})
        client.post(url, {"page": "instructions"})
        page = client.get(url)
        html = page.content.decode()
        explanation = page.context["trial"].explanation
        condition = page.context["participant"].condition
        seen.add(condition.name)
        assert "heatmap-toggle" not in html and "zoom-toggle" not in html
        # Not the stored wide PNG: its parts, as data: images in the page.
        code = url.rstrip("/").rsplit("/", 1)[1]
        stored = reverse("study:explanation", args=[study.slug, code, explanation.public_id])
        assert f'src="{stored}"' not in html
        if explanation.method == "sag":
            assert 'class="wide-explanation sag-figure"' in html
            assert html.count('class="sag-card') == len(explanation.data["nodes"])
        else:
            assert html.count('class="xnn-row"') == len(explanation.data["concepts"])
            prototypes = _prototype_srcs(explanation)
            assert len(prototypes) >= len(explanation.data["concepts"])
            shown = [src for src in prototypes if src in html]
            if condition.show_ai_prediction:
                assert 'class="wide-explanation xnn-figure"' in html
                assert shown == prototypes and "Training images with this concept" in html
                answer = page.context["trial"].ai_prediction.predicted_label.display_name
                assert f"Why the AI chose {answer}" in html
            else:
                assert 'class="wide-explanation xnn-figure no-prototypes"' in html
                assert shown == [] and "Training images" not in html
                assert "training photos of each concept are not shown" in html
                assert "Why the AI chose its answer" in html
                # one picture per concept: its heatmap on the photo
                assert html.count('src="data:image/png;base64,') == len(
                    explanation.data["concepts"]
                )
            # The stored panel, prototypes and all, is not served to a participant.
            token = stimulus_token(code=code, kind="explanation", public_id=explanation.public_id)
            assert (
                client.get(reverse("study:explanation", args=[study.slug, code, token])).status_code
                == 404
            )
        assert html.count('src="data:image/png;base64,') >= 2
    assert seen == {"sag", "xnn", "xnn-with-answer"}


def _prototype_srcs(explanation):
    """The data: URIs of the explanation's prototype tiles, as the page would show them."""
    with explanation.overlay.open("rb") as handle:
        parts = xnn_parts(handle.read(), explanation.data, xnn_captions(None))
    return [src for row in parts.concepts for src in row.prototype_srcs]


def test_the_page_says_which_concepts_the_photo_does_not_hold():
    """A concept whose x-feature is 0 on the photo gets the faded photo, not a heatmap, and
    alternative text that says so, also from a panel stored with every concept's map (as
    panels were before absent concepts were faded)."""
    image = PILImage.new("RGB", (64, 64), (128, 128, 128))
    maps = np.ones((3, 64, 64), dtype=np.float32)
    tiles = [[PILImage.new("RGB", (32, 32), (90, 90, 90))] for _ in range(3)]
    buffer = io.BytesIO()
    xnn_concept_panel(image, maps, np.array([1.0, 0.0, 0.5]), tiles, None).save(buffer, "PNG")
    data = {
        "classes": [0, 1],
        "target_class": 1,
        "concepts": [
            {"activation": a, "contributions": [0.0, c], "prototype_ids": [j]}
            for j, (a, c) in enumerate([(2.0, 1.0), (0.0, 0.0), (1.0, 0.5)])
        ],
    }
    parts = xnn_parts(buffer.getvalue(), data, xnn_captions(None, prototypes=False))
    html = render_to_string("study/_xnn_figure.html", {"parts": parts})
    assert 'alt="Concept 1: Where in this image"' in html
    assert 'alt="Concept 2: Not in this photo"' in html
    assert 'alt="Concept 3: Where in this image"' in html
    assert "a grey square: not in this photo" in html  # the caption explains them
    with PILImage.open(io.BytesIO(parts.concepts[1].heatmap_png)) as square:
        pixels = np.asarray(square.convert("RGB")).astype(int)
    assert (pixels.max(axis=2) - pixels.min(axis=2)).max() <= 2  # grey: the map is gone


def test_the_page_says_when_the_photo_holds_none_of_the_concepts():
    """Every x-feature 0: the rows explain nothing (the rebuilt score is the bias alone), and
    the figure says so; with one concept held it does not."""
    image = PILImage.new("RGB", (64, 64), (128, 128, 128))
    tiles = [[PILImage.new("RGB", (32, 32), (90, 90, 90))] for _ in range(2)]
    buffer = io.BytesIO()
    xnn_concept_panel(image, np.ones((2, 64, 64), np.float32), np.zeros(2), tiles, None).save(
        buffer, "PNG"
    )
    data = {
        "classes": [0, 1],
        "target_class": 1,
        "concepts": [
            {"activation": 0.0, "contributions": [0.0, 0.0], "prototype_ids": [j]} for j in range(2)
        ],
    }
    note = "None of these concepts is in this photo: they do not show why the AI chose its answer."

    def page() -> str:
        parts = xnn_parts(buffer.getvalue(), data, xnn_captions(None, prototypes=False))
        return render_to_string("study/_xnn_figure.html", {"parts": parts})

    assert note in page()
    named = xnn_captions("Western Gull").drawn["none_present"][0]
    assert named.endswith("do not show why the AI chose Western Gull.")  # the answer shown
    data["concepts"][0]["activation"] = 0.5
    assert note not in page()
