"""A precompute job's explanations scored against the synthetic gulls' ground truth."""

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile

from explain_engine.datasets.synthetic_birds import read_ground_truth
from explain_engine.models import Explanation, PrecomputeJob, Prediction
from explain_engine.services.concept_models import concept_model_fit
from explain_engine.services.errors import EngineInputError
from explain_engine.services.ground_truth import precompute_job_ground_truth
from explain_engine.services.precompute import precompute_job_create
from explain_engine.tasks import precompute_job_run

pytestmark = pytest.mark.django_db


def _job(classifier) -> PrecomputeJob:
    images = list(classifier.image_set.images.filter(split="test").order_by("pk"))
    job = precompute_job_create(
        classifier=classifier,
        methods=[
            ("gradcam", {}),
            ("sag", {"max_depth": 2, "ranking_iterations": 1, "ranking_steps": 2}),
        ],
        images=images,
    )
    precompute_job_run.delay(job.pk)
    job.refresh_from_db()
    assert job.status == PrecomputeJob.Status.DONE
    return job


def _plant(row: Explanation, x: float, y: float, image_size: int, map_size: int) -> None:
    """Replace the row's stored map by one peaking at (x, y) of the generated image."""
    saliency = np.zeros((map_size, map_size), dtype=np.float32)
    factor = map_size / image_size
    saliency[int(y * factor), int(x * factor)] = 1.0
    stream = io.BytesIO()
    np.save(stream, saliency, allow_pickle=False)
    row.raw_map.save("planted.npy", ContentFile(stream.getvalue()), save=True)


def test_the_report_scores_every_image_and_is_stored_on_the_job(classifier, tiny_birds_dir):
    job = _job(classifier)
    report = precompute_job_ground_truth(job=job, truth_root=tiny_birds_dir)
    job.refresh_from_db()
    assert job.ground_truth == report
    every = report["all_photos"]
    assert report["images"] == len(job.image_ids) > 0
    assert set(every["saliency"]) == {"gradcam"}
    assert every["saliency"]["gradcam"]["images"] == len(job.image_ids)
    assert every["sag"]["images"] == len(job.image_ids)
    assert every["xnn"] is None and report["xnn"] is None
    goals = {goal for goal, _holds, _figure in every["goals"]}
    assert "SAG median MSE size <= 6 of 49" in goals


def test_the_goals_are_scored_on_the_photos_the_classifier_answers_correctly(
    classifier, tiny_birds_dir
):
    job = _job(classifier)
    truth = read_ground_truth(tiny_birds_dir)
    rows = list(Explanation.objects.filter(job=job, method="gradcam").select_related("image"))
    # Half the photos answered correctly, their maps on a mark; the rest wrong, off the marks.
    predictions = Prediction.objects.filter(
        classifier=classifier, image__in=[r.image for r in rows]
    )
    correct = set()
    for index, row in enumerate(sorted(rows, key=lambda r: r.image_id)):
        prediction = predictions.get(image=row.image)
        x, y, w, h = truth.mark_boxes[row.image.source_id]["legs"]
        if index % 2 == 0:
            prediction.predicted_label = row.image.class_label
            _plant(row, x + w / 2, y + h / 2, truth.image_size, map_size=32)
            correct.add(row.image_id)
        else:
            prediction.predicted_label = classifier.image_set.classes.exclude(
                pk=row.image.class_label_id
            ).first()
            corner_x = 0 if x > truth.image_size / 2 else truth.image_size - 1
            _plant(row, corner_x, 0, truth.image_size, map_size=32)
        prediction.save()
    report = precompute_job_ground_truth(job=job, truth_root=tiny_birds_dir)
    assert report["images"] == len(rows) and report["images_right"] == len(correct) > 0
    assert report["saliency"]["gradcam"]["images"] == len(correct)
    assert report["saliency"]["gradcam"]["pointing"] == 1.0
    assert report["sag"]["images"] == len(correct)
    assert report["all_photos"]["saliency"]["gradcam"]["pointing"] == len(correct) / len(rows)

    # No photo answered correctly: nothing to score the goals on, the all-photo figures stay.
    for row in rows:
        wrong = classifier.image_set.classes.exclude(pk=row.image.class_label_id).first()
        predictions.filter(image=row.image).update(predicted_label=wrong)
    report = precompute_job_ground_truth(job=job, truth_root=tiny_birds_dir)
    assert report["images_right"] == 0
    assert (report["saliency"], report["sag"], report["goals"]) == ({}, None, [])
    assert report["all_photos"]["saliency"]["gradcam"]["images"] == len(rows)


def test_a_map_peaking_on_a_mark_scores_a_hit_at_any_map_size(classifier, tiny_birds_dir):
    job = _job(classifier)
    truth = read_ground_truth(tiny_birds_dir)
    rows = list(Explanation.objects.filter(job=job, method="gradcam").select_related("image"))
    for row in rows:
        x, y, w, h = truth.mark_boxes[row.image.source_id]["legs"]
        _plant(row, x + w / 2, y + h / 2, truth.image_size, map_size=32)
    report = precompute_job_ground_truth(job=job, truth_root=tiny_birds_dir)["all_photos"]
    assert report["saliency"]["gradcam"]["pointing"] == 1.0
    assert report["saliency"]["gradcam"]["mass"] == 1.0

    for row in rows:  # the far corner from the bird's legs: no mark within 15 px at 224
        x, y, w, h = truth.mark_boxes[row.image.source_id]["legs"]
        corner_x = 0 if x > truth.image_size / 2 else truth.image_size - 1
        _plant(row, corner_x, 0, truth.image_size, map_size=32)
    report = precompute_job_ground_truth(job=job, truth_root=tiny_birds_dir)["all_photos"]
    assert report["saliency"]["gradcam"]["pointing"] == 0.0


def test_per_class_concepts_are_read_per_explained_class(classifier, tiny_birds_dir):
    # Concept j of one class's SRAE has nothing to do with concept j of another's: the
    # parts are read per explained class, never pooled over the concept slot.
    fast = {"k": 3, "epochs": 2, "pretrain_epochs": 1, "max_attempts": 1, "mode": "per_class"}
    concept_model_fit(classifier=classifier, accept_weak_fit=True, **fast)
    images = list(classifier.image_set.images.filter(split="test").order_by("pk"))
    job = precompute_job_create(classifier=classifier, methods=[("xnn", fast)], images=images)
    precompute_job_run.delay(job.pk)
    report = precompute_job_ground_truth(job=job, truth_root=tiny_birds_dir)["all_photos"]
    rows = Explanation.objects.filter(job=job, method="xnn", status="done")
    explained = {classifier.class_order[row.target_index] for row in rows}
    assert report["xnn"]["images"] == len(images) == rows.count()
    assert set(report["xnn"]["models_parts"]) == explained
    assert all(len(parts) == 3 for parts in report["xnn"]["models_parts"].values())


def test_a_folder_without_ground_truth_is_refused(classifier, tmp_path):
    images = list(classifier.image_set.images.all()[:1])
    job = precompute_job_create(classifier=classifier, methods=[("gradcam", {})], images=images)
    with pytest.raises(EngineInputError, match="no readable ground truth"):
        precompute_job_ground_truth(job=job, truth_root=tmp_path)
    job.refresh_from_db()
    assert job.ground_truth == {}
