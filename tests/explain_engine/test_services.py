"""Engine services against the database: import, register, predict, precompute."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from explain_engine.datasets.cub import CubFormatError
from explain_engine.methods import GradCAM
from explain_engine.models import Explanation, Image, PrecomputeJob, Prediction
from explain_engine.services.classifiers import classifier_model, classifier_register
from explain_engine.services.errors import EngineInputError
from explain_engine.services.images import image_set_import_cub
from explain_engine.services.precompute import precompute_job_create
from explain_engine.tasks import precompute_job_run
from tests.conftest import TINY_PER_CLASS

pytestmark = pytest.mark.django_db


def test_import_stores_every_image_under_an_opaque_name(image_set):
    images = list(image_set.images.select_related("class_label"))
    assert len(images) == 8 * TINY_PER_CLASS
    assert image_set.classes.count() == 8
    for image in images[:8]:
        name = image.file.name.lower()
        assert "gull" not in name and image.class_label.source_name.lower() not in name
        assert "gull" in image.source_path.lower()  # provenance is kept, just never served
    assert {image.split for image in images} == {"train", "test"}


def test_import_twice_adds_nothing(image_set, tiny_birds_dir):
    again = image_set_import_cub(root=tiny_birds_dir, name="tiny-gulls")
    assert again.pk == image_set.pk
    assert again.images.count() == 8 * TINY_PER_CLASS


def test_import_strips_exif(db, birds_copy):
    first = sorted((birds_copy / "images").rglob("*.jpg"))[0]
    with PILImage.open(first) as original:
        exif = PILImage.Exif()
        exif[0x010E] = "secret description: Herring Gull"
        original.save(first, format="JPEG", exif=exif.tobytes())
    with PILImage.open(first) as check:
        assert check.info.get("exif")
    image_set = image_set_import_cub(root=birds_copy, name="exif-test")
    for image in image_set.images.all():
        with image.file.open("rb") as handle:
            data = handle.read()
        assert b"secret description" not in data
        assert not PILImage.open(io.BytesIO(data)).info.get("exif")


def test_import_class_subset(db, tiny_birds_dir):
    image_set = image_set_import_cub(
        root=tiny_birds_dir, name="two", classes=["California Gull", "Herring_Gull"]
    )
    assert sorted(image_set.classes.values_list("display_name", flat=True)) == [
        "California Gull",
        "Herring Gull",
    ]
    assert image_set.images.count() == 2 * TINY_PER_CLASS


def test_import_of_a_damaged_set_names_the_problem_and_saves_nothing(db, birds_copy):
    lines = (birds_copy / "image_class_labels.txt").read_text().splitlines()
    lines[2] = "3 not-a-number"
    (birds_copy / "image_class_labels.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(CubFormatError, match=r"image_class_labels.txt.*3"):
        image_set_import_cub(root=birds_copy, name="damaged")
    assert not Image.objects.exists()


def test_register_rejects_a_checkpoint_for_another_architecture(image_set, untrained_checkpoint):
    with pytest.raises(EngineInputError, match="resnet18"):
        classifier_register(
            name="wrong",
            image_set=image_set,
            architecture="resnet18",
            checkpoint_path=untrained_checkpoint,
            input_size=64,
        )


def test_register_records_the_checkpoint_hash(classifier, untrained_checkpoint):
    import hashlib

    assert (
        classifier.checkpoint_sha256
        == hashlib.sha256(untrained_checkpoint.read_bytes()).hexdigest()
    )
    assert len(classifier.class_order) == 8


def test_precompute_gradcam_end_to_end_then_nothing_twice(
    classifier, django_capture_on_commit_callbacks
):
    images = list(classifier.image_set.images.filter(split="test"))
    job = precompute_job_create(classifier=classifier, methods=[("gradcam", {})], images=images)
    precompute_job_run.delay(job.pk)

    assert Prediction.objects.filter(classifier=classifier).count() == len(images)
    explanations = list(Explanation.objects.filter(job=job))
    assert len(explanations) == len(images)
    job.refresh_from_db()
    assert job.status == PrecomputeJob.Status.DONE
    for explanation in explanations:
        assert explanation.status == Explanation.Status.DONE
        prediction = Prediction.objects.get(classifier=classifier, image=explanation.image)
        assert explanation.target_index == prediction.predicted_index
        assert explanation.checkpoint_sha256 == classifier.checkpoint_sha256
        assert explanation.params["target_layer"] is None and explanation.params_hash
        assert explanation.device == "cpu" and explanation.runtime_seconds > 0
        assert explanation.attempts == 1
        assert {"torch", "torchvision"} <= set(explanation.library_versions)
        saliency = np.load(explanation.raw_map.open("rb"))
        assert saliency.shape == (64, 64) and saliency.min() >= 0 and saliency.max() <= 1
        with PILImage.open(explanation.overlay.open("rb")) as overlay:
            assert overlay.format == "PNG" and overlay.width == explanation.image.width
        assert "gull" not in explanation.overlay.name.lower()

    second = precompute_job_create(classifier=classifier, methods=[("gradcam", {})], images=images)
    assert precompute_job_run.delay(second.pk).get() == 0
    assert Explanation.objects.count() == len(images)


def test_a_corrupt_image_is_reported_and_the_rest_finish(classifier):
    images = list(classifier.image_set.images.filter(split="test"))
    broken = images[0]
    with open(broken.file.path, "wb") as handle:
        handle.write(b"not a jpeg at all")
    job = precompute_job_create(classifier=classifier, methods=[("gradcam", {})], images=images)
    precompute_job_run.delay(job.pk)
    job.refresh_from_db()
    assert job.status == PrecomputeJob.Status.FAILED
    assert "cannot identify image" in job.image_failures[str(broken.pk)]
    assert job.error == "1 image(s) unreadable"
    assert Explanation.objects.filter(status=Explanation.Status.DONE).count() == len(images) - 1
    assert not Explanation.objects.filter(image=broken).exists()


def test_an_image_that_breaks_during_explanation_fails_with_its_reason(classifier, monkeypatch):
    """The batch it is in is split until the image is alone; it fails, the rest are done."""
    images = list(classifier.image_set.images.filter(split="test").order_by("pk"))
    victim = images[1]
    _, preprocessing = classifier_model(classifier)
    with victim.file.open("rb") as handle, PILImage.open(handle) as pil:
        victim_tensor = preprocessing.to_tensor(pil.convert("RGB"))
    real_explain = GradCAM.explain

    def explain(self, model, batch, targets=None):
        if any(torch.equal(image, victim_tensor) for image in batch):
            raise ValueError("shape mismatch in test")
        return real_explain(self, model, batch, targets)

    monkeypatch.setattr(GradCAM, "explain", explain)
    job = precompute_job_create(
        classifier=classifier, methods=[("gradcam", {})], images=images, batch_size=4
    )
    precompute_job_run.delay(job.pk)
    failed = Explanation.objects.get(image=victim)
    assert failed.status == Explanation.Status.FAILED
    assert failed.error == "ValueError: shape mismatch in test"
    assert not failed.overlay
    assert Explanation.objects.filter(status=Explanation.Status.DONE).count() == len(images) - 1
    job.refresh_from_db()
    assert job.status == PrecomputeJob.Status.FAILED and job.error == "1 explanation(s) failed"


def test_unknown_method_is_refused_before_anything_runs(classifier):
    images = list(classifier.image_set.images.all()[:2])
    with pytest.raises(EngineInputError, match="unknown explanation method 'sailency'"):
        precompute_job_create(classifier=classifier, methods=[("sailency", {})], images=images)
    assert not PrecomputeJob.objects.exists()


def _recording_training(monkeypatch):
    """Record what `classifier_train` passes to the training core (one epoch is enough)."""
    from explain_engine import training

    calls = []
    real = training.train_classifier

    def recording(train_items, test_items, **options):
        calls.append((train_items, options))
        return real(train_items, test_items, **{**options, "epochs": 1})

    monkeypatch.setattr(training, "train_classifier", recording)
    return calls


def test_training_on_the_synthetic_gulls_reveals_each_set_of_marks(image_set, monkeypatch):
    from explain_engine import ground_truth, training
    from explain_engine.datasets.synthetic_birds import read_ground_truth
    from explain_engine.services.classifiers import classifier_train

    calls = _recording_training(monkeypatch)
    classifier = classifier_train(
        image_set=image_set, name="revealed", input_size=64, mark_reveal=0.8
    )
    ((train_items, options),) = calls
    assert options["mark_reveal"] == classifier.training["mark_reveal"] == 0.8
    # one keep mask per set of marks, for each train image in the order of its items
    truth = read_ground_truth(image_set.source_path)
    rows = image_set.images.filter(split=Image.Split.TRAIN).order_by("source_id")
    assert [path for path, _ in train_items] == [Path(row.file.path) for row in rows]
    expected = ground_truth.mark_set_keeps(
        [
            ground_truth.scaled_boxes(truth.mark_boxes[row.source_id], truth.image_size, 64)
            for row in rows
        ],
        truth.minimal_sufficient_sets,
        training.OCCLUSION_GRID,
        64,
    )
    assert options["mark_keeps"].shape == (len(rows), 2, 7, 7)
    torch.testing.assert_close(options["mark_keeps"], expected, rtol=0, atol=0)


def test_training_reveals_nothing_unless_asked_and_needs_ground_truth_to(
    db, image_set, birds_copy, monkeypatch
):
    from explain_engine.services.classifiers import classifier_train

    calls = _recording_training(monkeypatch)
    classifier = classifier_train(image_set=image_set, name="plain", input_size=64)
    ((_, options),) = calls
    assert options["mark_reveal"] == 0.0 and options["mark_keeps"] is None
    assert classifier.training["mark_reveal"] == 0.0

    (birds_copy / "ground_truth.json").unlink()
    no_truth = image_set_import_cub(root=birds_copy, name="no-truth")
    with pytest.raises(EngineInputError, match="mark_reveal needs the ground truth"):
        classifier_train(image_set=no_truth, name="refused", input_size=64, mark_reveal=0.5)
    assert len(calls) == 1
