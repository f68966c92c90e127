"""Concept models (fitted XNNs) against the database: fit once, load, prototypes, command."""

import io
import json

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from explain_engine.methods import get_method
from explain_engine.methods.xnn import r2_score
from explain_engine.models import ConceptModel, Explanation, Image
from explain_engine.services.classifiers import classifier_model
from explain_engine.services.concept_models import (
    PROTOTYPES_PER_CONCEPT,
    concept_model_explain,
    concept_model_fit,
    concept_model_fitted,
    concept_model_load,
)
from explain_engine.services.errors import EngineInputError
from explain_engine.services.images import image_tensor
from explain_engine.services.precompute import (
    precompute_job_create,
    precompute_job_fit,
    precompute_job_plan,
)
from explain_engine.tasks import precompute_job_run
from tests.conftest import TINY_INPUT_SIZE

pytestmark = pytest.mark.django_db

#: Small but complete training, so each fit takes well under a second on the tiny set.
FAST = {
    "epochs": 2,
    "pretrain_epochs": 1,
    "max_attempts": 1,
    "train_batch_size": 8,
    "mode": "shared",
}


def _split_tensors(classifier, split):
    _, preprocessing = classifier_model(classifier)
    images = list(classifier.image_set.images.filter(split=split).order_by("pk"))
    return images, torch.stack([image_tensor(image, preprocessing) for image in images])


def test_fit_creates_one_concept_model_and_a_second_call_reuses_it(classifier):
    first = concept_model_fit(classifier=classifier, accept_weak_fit=True, k=3, **FAST)
    trained = []
    again = concept_model_fit(
        classifier=classifier, accept_weak_fit=True, k=3, progress=trained.append, **FAST
    )
    assert again.pk == first.pk and ConceptModel.objects.count() == 1
    assert trained == []  # found, not fitted again
    # a study condition's stored parameters (classes None = all) name the same fit
    stored = get_method("xnn", k=3, **FAST).params()
    assert concept_model_fit(classifier=classifier, accept_weak_fit=True, **stored) == first
    assert first.classes == list(range(8)) and first.k == 3
    assert first.layer == "input of classifier"
    assert first.params["classes"] == list(range(8)) and len(first.params_hash) == 64
    assert -1e9 < first.r2 <= 1 and 0 <= first.argmax_agreement <= 1
    assert first.fit_report["device"] == "cpu" and first.fit_report["attempts"]
    assert first.file.name.startswith("concept_models/") and "gull" not in first.file.name
    # the same subset in another order is the same concept model; other parameters are not
    subset = concept_model_fit(
        classifier=classifier, accept_weak_fit=True, classes=[5, 2, 1], k=3, **FAST
    )
    assert (
        concept_model_fit(
            classifier=classifier, accept_weak_fit=True, classes=[1, 2, 5], k=3, **FAST
        )
        == subset
    )
    assert subset.classes == [1, 2, 5]
    other = concept_model_fit(
        classifier=classifier, accept_weak_fit=True, classes=[1, 2, 5], k=4, **FAST
    )
    assert other.pk != subset.pk and ConceptModel.objects.count() == 3


def test_the_file_round_trips_to_the_fitted_concepts(classifier):
    concept_model = concept_model_fit(classifier=classifier, accept_weak_fit=True, k=3, **FAST)
    xnn = concept_model_load(concept_model)
    assert xnn.params() == concept_model.params and xnn.fitted_classes == concept_model.classes
    model, _ = classifier_model(classifier)
    # the loaded XNN rebuilds the test scores exactly as well as the record says
    _, test = _split_tensors(classifier, Image.Split.TEST)
    features, logits = xnn.extract(model, test)
    rebuilt = xnn.concepts(features)[2]
    targets = logits[:, concept_model.classes]
    assert r2_score(rebuilt, targets) == pytest.approx(concept_model.r2, abs=1e-6)
    agreement = float((rebuilt.argmax(1) == targets.argmax(1)).float().mean())
    assert agreement == pytest.approx(concept_model.argmax_agreement)
    # and finds the same prototypes among the train images
    train_images, train = _split_tensors(classifier, Image.Split.TRAIN)
    (order,) = xnn.prototypes(model, train, top_n=PROTOTYPES_PER_CONCEPT).tolist()
    assert [[[train_images[i].pk for i in row] for row in order]] == concept_model.prototypes


def test_prototypes_come_from_the_train_split_only(classifier):
    concept_model = concept_model_fit(classifier=classifier, accept_weak_fit=True, k=4, **FAST)
    rows = concept_model.prototype_ids(0)
    assert len(rows) == 4 and all(len(row) == PROTOTYPES_PER_CONCEPT for row in rows)
    ids = {pk for row in rows for pk in row}
    splits = set(Image.objects.filter(pk__in=ids).values_list("split", flat=True))
    assert splits == {Image.Split.TRAIN}
    assert (
        concept_model.fit_report["train_images"]
        == classifier.image_set.images.filter(split=Image.Split.TRAIN).count()
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": [0, 8]}, r"classes must be output indices of 'tiny-classifier' \(0..7\)"),
        ({"classes": []}, "classes must be output indices"),
        ({"k": 9}, "k must be an integer in 3..8"),
        ({"colour": "red"}, "unknown parameter.*colour"),
        ({"layer": "nowhere"}, "'nowhere' is not a module"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_saved(classifier, kwargs, message):
    with pytest.raises(EngineInputError, match=message):
        concept_model_fit(classifier=classifier, accept_weak_fit=True, **{**FAST, **kwargs})
    assert not ConceptModel.objects.exists()


def test_explain_gives_a_panel_the_data_and_one_map_per_concept(classifier):
    concept_model = concept_model_fit(
        classifier=classifier, accept_weak_fit=True, classes=[0, 3, 6], k=3, **FAST
    )
    image = classifier.image_set.images.filter(split=Image.Split.TEST).first()
    item = concept_model_explain(concept_model=concept_model, image=image, target_index=3)

    assert item.heatmaps.shape == (3, TINY_INPUT_SIZE, TINY_INPUT_SIZE)
    assert item.heatmaps.min() >= 0 and item.heatmaps.max() <= 1
    data = json.loads(json.dumps(item.data))
    assert data["classes"] == [0, 3, 6] and data["target_class"] == 3
    assert data["heatmap_method"] == "cmwp"
    sums = np.sum([concept["contributions"] for concept in data["concepts"]], axis=0)
    np.testing.assert_allclose(sums + data["bias"], data["rebuilt_scores"], rtol=1e-5, atol=1e-5)
    assert [concept["prototype_ids"] for concept in data["concepts"]] == concept_model.prototypes[0]
    with PILImage.open(io.BytesIO(item.panel_png)) as panel:
        assert panel.format == "PNG" and panel.width >= 600

    with pytest.raises(EngineInputError, match="class 1 is not explained"):
        concept_model_explain(concept_model=concept_model, image=image, target_index=1)


# ---------------------------------------------------------------------------- command


def test_fit_xnn_command_shows_progress_faithfulness_and_diversity(classifier):
    out = io.StringIO()
    call_command(
        "fit_xnn",
        "--classifier",
        "tiny-classifier",
        "--k",
        "3",
        "--classes",
        "0",
        "Herring Gull",
        "064.Ring_billed_Gull",
        "--epochs",
        "2",
        "--accept-weak-fit",
        stdout=out,
    )
    text = out.getvalue()
    concept_model = ConceptModel.objects.get()
    assert concept_model.classes == [0, 3, 5] and concept_model.params["epochs"] == 2
    assert concept_model.params["mode"] == "per_class" and len(concept_model.prototypes) == 3
    assert "] model 3/3, attempt 1/5" in text and "finetune epoch 2/2" in text
    assert f"R² {concept_model.r2:.3f}" in text and "arg-max agreement" in text
    diversity = concept_model.diversity
    assert set(diversity) == {"activations", "heatmaps"}
    assert f"activations {diversity['activations']:.3f}, heatmaps" in text
    assert concept_model.accepted_weak_fit and "weak fit accepted (--accept-weak-fit)" in text

    again = io.StringIO()
    call_command(
        "fit_xnn", "--classifier", "tiny-classifier", "--k", "3", "--classes", "0", "3", "5",
        "--epochs", "2", stdout=again,
    )  # fmt: skip
    assert "reused" in again.getvalue() and ConceptModel.objects.count() == 1


def test_fit_xnn_command_refuses_a_weak_fit_naming_the_rule_and_the_r2(classifier):
    with pytest.raises(CommandError) as error:
        call_command(
            "fit_xnn", "--classifier", "tiny-classifier", "--k", "3", "--classes", "0", "3",
            "--epochs", "1", stdout=io.StringIO(),
        )  # fmt: skip
    message = str(error.value)
    assert message.startswith("XNN fit refused: the success rule (>= 2 x-features")
    assert "test R² " in message and "--accept-weak-fit" in message and "\n" not in message
    assert not ConceptModel.objects.exists()


def test_a_per_class_concept_model_shows_each_targets_own_concepts(classifier):
    per_class = {**FAST, "mode": "per_class"}
    concept_model = concept_model_fit(
        classifier=classifier, accept_weak_fit=True, classes=[0, 3, 6], k=3, **per_class
    )
    assert len(concept_model.prototypes) == 3 and len(concept_model.prototypes[1]) == 3
    image = classifier.image_set.images.filter(split=Image.Split.TEST).first()
    item = concept_model_explain(concept_model=concept_model, image=image, target_index=3)
    data = item.data
    assert data["target_class"] == 3 and item.heatmaps.shape[0] == 3
    assert [c["prototype_ids"] for c in data["concepts"]] == concept_model.prototypes[1]
    assert concept_model.prototype_ids(1) == concept_model.prototypes[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--classifier", "nope"], "no classifier named 'nope'"),
        (["--classifier", "tiny-classifier", "--k", "2"], "k must be an integer in 3..8; got 2"),
        (["--classifier", "tiny-classifier", "--k", "9"], "k must be an integer in 3..8; got 9"),
        (["--classifier", "tiny-classifier", "--classes", "Dodo"], "unknown class 'Dodo'"),
        (["--classifier", "tiny-classifier", "--classes", "8"], "class index 8 is out of range"),
        (["--classifier", "tiny-classifier", "--layer", "nowhere"], "'nowhere' is not a module"),
    ],
)
def test_fit_xnn_command_errors(classifier, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("fit_xnn", *args, "--epochs", "1", stdout=io.StringIO())
    assert not ConceptModel.objects.exists()


def test_getting_a_fitted_concept_model_never_fits_one(classifier):
    with pytest.raises(EngineInputError, match="no concept model"):
        concept_model_fitted(classifier=classifier, k=3, **FAST)
    assert not ConceptModel.objects.exists()
    fitted = concept_model_fit(classifier=classifier, accept_weak_fit=True, k=3, **FAST)
    assert concept_model_fitted(classifier=classifier, **fitted.params) == fitted


def test_a_precompute_job_fits_its_concept_model_in_its_own_step(classifier):
    images = list(classifier.image_set.images.filter(split="test").order_by("pk"))
    job = precompute_job_create(classifier=classifier, methods=[("xnn", {**FAST})], images=images)
    assert precompute_job_plan(job=job)
    assert not ConceptModel.objects.exists()
    # the tiny classifier's fit is weak: refused, until fit_xnn --accept-weak-fit keeps it
    with pytest.raises(EngineInputError, match="XNN fit refused: the success rule"):
        precompute_job_fit(job=job)
    assert not ConceptModel.objects.exists()
    kept = concept_model_fit(classifier=classifier, accept_weak_fit=True, **FAST)
    precompute_job_fit(job=job)
    assert list(ConceptModel.objects.all()) == [kept] and kept.accepted_weak_fit


def test_a_run_without_fitting_computes_the_other_methods_and_leaves_the_xnn_for_later(
    classifier,
):
    """What the demo's second worker does while the first process fits the XNN."""
    images = list(classifier.image_set.images.filter(split="test").order_by("pk"))
    job = precompute_job_create(
        classifier=classifier, methods=[("gradcam", {}), ("xnn", {**FAST})], images=images
    )
    precompute_job_run.delay(job.pk, fit=False)
    assert not ConceptModel.objects.exists()
    rows = Explanation.objects.filter(job=job)
    assert set(rows.values_list("method", "status").distinct()) == {("gradcam", "done")}
    assert rows.count() == len(images)

    concept_model_fit(classifier=classifier, accept_weak_fit=True, **FAST)
    # a run without fitting now finds the XNN fitted, so it computes it too
    precompute_job_run.delay(job.pk, fit=False)
    assert set(rows.values_list("method", "status").distinct()) == {
        ("gradcam", "done"),
        ("xnn", "done"),
    }
    assert set(rows.values_list("attempts", flat=True)) == {1}
