"""SAG and XNN conditions, end to end: precompute stores their figures and data through the
same pipeline as the heatmaps, and participants see them at a legible width."""

import io
import json

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image as PILImage

from explain_engine.models import ConceptModel, Explanation
from explain_engine.tasks import precompute_job_run
from study.design.creation import study_create, study_precompute_job
from study.design.launch import study_launch
from study.design.spec import ConditionSpec, StudySpec
from study.models import Study

pytestmark = pytest.mark.django_db

FAST_XNN = {"k": 3, "epochs": 2, "pretrain_epochs": 1, "max_attempts": 1, "batch_size": 8}


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
            ],
            main_images=images[:3],
            training_images=images[3:4],
            participants_per_condition=5,
            consent_text="Consent",
            instructions_text="Pick the species.",
            shortcut_margin_points=100,  # a few items: the audit is tested elsewhere
        )
    )
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


def test_participants_see_the_wide_figure_with_a_full_size_toggle(client, study):
    seen = set()
    for index in range(2):
        url = client.get(
            reverse("study:entry", args=[study.slug]),
            {"js": "1", "PROLIFIC_PID": f"w-{index}", "STUDY_ID": "s", "SESSION_ID": "x"},
        )["Location"]
        client.post(url, {"page": "consent", "consent": "yes"})
        client.post(url, {"page": "instructions"})
        page = client.get(url)
        html = page.content.decode()
        method = page.context["trial"].explanation.method
        seen.add(method)
        assert 'class="wide-explanation"' in html and 'id="zoom-toggle"' in html
        assert "heatmap-toggle" not in html
        word = "some parts of the photo" if method == "sag" else "each row is one concept"
        assert word in html
    assert seen == {"sag", "xnn"}
