"""The precompute pipeline in-process: claims, batches, transient and deterministic errors."""

import io
import json
from datetime import timedelta

import numpy as np
import pytest
import torch
from django.db import OperationalError
from django.utils import timezone
from PIL import Image as PILImage

from config.celery_app import app as celery_app
from explain_engine import render
from explain_engine.artifacts import ExplanationArtifacts, saliency_artifacts
from explain_engine.methods import GradCAM
from explain_engine.models import Explanation, PrecomputeJob
from explain_engine.services import explanations
from explain_engine.services.explanations import explanation_batch_claim, explanation_batch_compute
from explain_engine.services.precompute import precompute_job_create, precompute_job_plan
from explain_engine.tasks import explanation_batch_run, precompute_job_run

pytestmark = pytest.mark.django_db


def _planned(classifier, batch_size=8) -> tuple[PrecomputeJob, list[int]]:
    images = list(classifier.image_set.images.filter(split="test").order_by("pk"))
    job = precompute_job_create(
        classifier=classifier, methods=[("gradcam", {})], images=images, batch_size=batch_size
    )
    return job, sorted(precompute_job_plan(job=job))


def _artifact_files(settings) -> list[str]:
    folder = settings.MEDIA_ROOT / "explanations"
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def explain_calls(monkeypatch):
    """Batch sizes `GradCAM.explain` was called with."""
    sizes = []
    real_explain = GradCAM.explain

    def explain(self, model, images, targets=None):
        sizes.append(images.shape[0])
        return real_explain(self, model, images, targets)

    monkeypatch.setattr(GradCAM, "explain", explain)
    return sizes


# ------------------------------------------------------------------------------ claims


def test_a_claim_takes_pending_rows_once(classifier):
    _, ids = _planned(classifier)
    first = explanation_batch_claim(explanation_ids=ids, take_over=False)
    assert first.explanation_ids == ids
    second = explanation_batch_claim(explanation_ids=ids, take_over=False)
    assert second.explanation_ids == []
    rows = Explanation.objects.filter(pk__in=ids)
    assert {(row.status, row.claim_token, row.attempts) for row in rows} == {
        ("running", first.token, 1)
    }


def test_a_taken_over_claim_cannot_store_and_leaves_no_files(classifier, settings):
    _, ids = _planned(classifier)
    lost = explanation_batch_claim(explanation_ids=ids, take_over=False)
    taken = explanation_batch_claim(explanation_ids=ids, take_over=True)
    assert taken.explanation_ids == ids and taken.token != lost.token

    assert explanation_batch_compute(batch=lost) == {"done": 0, "failed": 0, "lost": 0}
    # Even a result computed before the take-over cannot land: its store is refused.
    explanation = Explanation.objects.select_related("image").get(pk=ids[0])
    refused = explanations.explanation_store(
        explanation=explanation,
        artifacts=ExplanationArtifacts(b"png", b"npy", "npy", {}, {}),
        claim_token=lost.token,
        runtime_seconds=1.0,
        device="cpu",
        library_versions={},
        checkpoint_sha256="",
    )
    assert refused is False
    assert _artifact_files(settings) == []

    assert explanation_batch_compute(batch=taken) == {"done": len(ids), "failed": 0, "lost": 0}
    rows = Explanation.objects.filter(pk__in=ids)
    assert {(row.status, row.attempts) for row in rows} == {("done", 2)}
    stored = sorted(
        name.split("/")[-1] for row in rows for name in (row.overlay.name, row.raw_map.name)
    )
    assert _artifact_files(settings) == stored and len(stored) == 2 * len(ids)


def test_a_running_row_is_taken_over_once_its_lease_has_expired(classifier, settings):
    _, ids = _planned(classifier)
    explanation_batch_claim(explanation_ids=ids, take_over=False)
    assert explanation_batch_claim(explanation_ids=ids, take_over=False).explanation_ids == []
    Explanation.objects.filter(pk=ids[0]).update(
        started_at=timezone.now() - timedelta(seconds=settings.EXPLAINSTUDY_CLAIM_LEASE_SECONDS + 1)
    )
    assert explanation_batch_claim(explanation_ids=ids, take_over=False).explanation_ids == [ids[0]]


def test_done_and_failed_rows_are_never_claimed_again(classifier):
    _, ids = _planned(classifier)
    explanation_batch_run.delay(ids)
    Explanation.objects.filter(pk=ids[0]).update(status=Explanation.Status.FAILED)
    assert explanation_batch_claim(explanation_ids=ids, take_over=True).explanation_ids == []


def test_a_redelivered_task_takes_over_the_rows_its_dead_run_left_running(classifier):
    _, ids = _planned(classifier)
    explanation_batch_claim(explanation_ids=ids, take_over=False)  # then the worker died

    def run(redelivered: bool) -> dict:
        explanation_batch_run.push_request(delivery_info={"redelivered": redelivered}, retries=0)
        try:
            return explanation_batch_run.run(ids)
        finally:
            explanation_batch_run.pop_request()

    assert run(redelivered=False) == {"done": 0, "failed": 0, "lost": 0}
    assert run(redelivered=True) == {"done": len(ids), "failed": 0, "lost": 0}
    assert set(Explanation.objects.values_list("status", "attempts")) == {("done", 2)}


# ------------------------------------------------------------------------------ batches


def test_a_job_explains_its_images_in_batches_of_its_size(classifier, explain_calls):
    job, ids = _planned(classifier, batch_size=3)
    precompute_job_run.delay(job.pk)
    assert sorted(explain_calls) == sorted([3] * (len(ids) // 3) + [len(ids) % 3])
    rows = Explanation.objects.filter(pk__in=ids)
    assert {(row.status, row.attempts) for row in rows} == {("done", 1)}
    assert all(row.runtime_seconds > 0 for row in rows)


def test_batched_explanations_equal_single_ones(classifier):
    job, ids = _planned(classifier, batch_size=8)
    precompute_job_run.delay(job.pk)
    batched = {row.pk: np.load(row.raw_map.open("rb")) for row in Explanation.objects.all()}
    Explanation.objects.update(status=Explanation.Status.PENDING, claim_token=None)
    for pk in ids:
        explanation_batch_run.delay([pk])
    for row in Explanation.objects.all():
        np.testing.assert_allclose(np.load(row.raw_map.open("rb")), batched[row.pk], atol=1e-5)


def test_cuda_out_of_memory_retries_with_smaller_batches(classifier, monkeypatch):
    real_explain = GradCAM.explain
    sizes = []

    def explain(self, model, images, targets=None):
        sizes.append(images.shape[0])
        if images.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real_explain(self, model, images, targets)

    monkeypatch.setattr(GradCAM, "explain", explain)
    job, ids = _planned(classifier, batch_size=8)
    precompute_job_run.delay(job.pk)
    assert sizes == [8, 4, 2, 2, 4, 2, 2]
    assert set(Explanation.objects.values_list("status", flat=True)) == {"done"}
    job.refresh_from_db()
    assert job.status == PrecomputeJob.Status.DONE


def test_out_of_memory_even_for_one_image_fails_the_rows_with_the_reason(classifier, monkeypatch):
    def explain(self, model, images, targets=None):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    monkeypatch.setattr(GradCAM, "explain", explain)
    job, ids = _planned(classifier, batch_size=4)
    precompute_job_run.delay(job.pk)
    rows = Explanation.objects.filter(pk__in=ids)
    assert {row.status for row in rows} == {"failed"}
    assert {row.error for row in rows} == {
        "CUDA out of memory even for one image: CUDA out of memory. Tried to allocate 2 GiB"
    }
    job.refresh_from_db()
    assert job.status == PrecomputeJob.Status.FAILED
    assert job.error == f"{len(ids)} explanation(s) failed"


def test_an_image_unreadable_when_explained_fails_alone(classifier):
    job, ids = _planned(classifier, batch_size=8)
    victim = Explanation.objects.select_related("image").get(pk=ids[2])
    with open(victim.image.file.path, "wb") as handle:
        handle.write(b"broken after it was predicted")
    explanation_batch_run.delay(ids)
    victim.refresh_from_db()
    assert victim.status == "failed" and "cannot identify image file" in victim.error
    assert Explanation.objects.filter(status="done").count() == len(ids) - 1


# ------------------------------------------------------------------------------ transient


@pytest.fixture
def eager_retries(settings):
    """Celery runs an eager task's retries only when it does not propagate errors."""
    settings.EXPLAINSTUDY_RETRY_BACKOFF_SECONDS = 0
    previous = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_eager_propagates = previous


@pytest.mark.django_db(transaction=True)
def test_a_lost_database_connection_is_retried_and_the_batch_finishes(
    classifier, monkeypatch, settings, eager_retries
):
    real_store = explanations.explanation_store
    calls = []

    def store(**kwargs):
        calls.append(kwargs["explanation"].pk)
        if len(calls) == 3:
            raise OperationalError("server closed the connection unexpectedly")
        return real_store(**kwargs)

    monkeypatch.setattr(explanations, "explanation_store", store)
    job, ids = _planned(classifier, batch_size=8)
    precompute_job_run.delay(job.pk)
    rows = Explanation.objects.filter(pk__in=ids).order_by("pk")
    assert [row.status for row in rows] == ["done"] * len(ids)
    # The first two were stored before the connection dropped; the retry took over the rest.
    assert [row.attempts for row in rows] == [1, 1] + [2] * (len(ids) - 2)
    assert len(_artifact_files(settings)) == 2 * len(ids)
    job.refresh_from_db()
    assert job.status == PrecomputeJob.Status.DONE


@pytest.mark.django_db(transaction=True)
def test_lost_connections_are_retried_a_bounded_number_of_times(
    classifier, monkeypatch, settings, eager_retries
):
    settings.EXPLAINSTUDY_TASK_MAX_RETRIES = 2
    claims = []

    def claim(**kwargs):
        claims.append(kwargs["take_over"])
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(explanations, "explanation_batch_claim", claim)
    _, ids = _planned(classifier)
    result = explanation_batch_run.delay(ids)
    with pytest.raises(OperationalError, match="could not connect"):
        result.get()
    assert claims == [False, True, True]
    assert set(Explanation.objects.values_list("status", flat=True)) == {"pending"}


# ------------------------------------------------------------------------------ artifacts


def test_saliency_artifacts_hold_the_overlay_the_map_and_the_score():
    stimulus = PILImage.new("RGB", (40, 30), (120, 130, 140))
    saliency = np.linspace(0, 1, 20 * 10, dtype=np.float32).reshape(10, 20)
    made = saliency_artifacts(stimulus, saliency, 0.75)
    with PILImage.open(io.BytesIO(made.figure_png)) as figure:
        assert figure.format == "PNG" and figure.width == 40
    np.testing.assert_array_equal(render.load_saliency_npy(io.BytesIO(made.analysis)), saliency)
    assert made.analysis_suffix == "npy"
    assert made.data == {} and made.metrics == {"target_score": 0.75}


def test_any_method_s_artifacts_are_stored_with_their_data(classifier, settings):
    """What SAG or XNN will hand over: a figure, a JSON analysis and structured data."""
    _, ids = _planned(classifier)
    batch = explanation_batch_claim(explanation_ids=ids[:1], take_over=False)
    graph = {"nodes": [{"patches": [1, 2], "confidence": 0.9}], "edges": []}
    stored = explanations.explanation_store(
        explanation=Explanation.objects.get(pk=ids[0]),
        artifacts=ExplanationArtifacts(
            figure_png=b"\x89PNG...",
            analysis=json.dumps(graph).encode(),
            analysis_suffix="json",
            data=graph,
            metrics={"minimal_sets": 1.0},
        ),
        claim_token=batch.token,
        runtime_seconds=0.5,
        device="cpu",
        library_versions={"torch": torch.__version__},
        checkpoint_sha256=classifier.checkpoint_sha256,
    )
    row = Explanation.objects.get(pk=ids[0])
    assert stored and row.status == "done" and row.data == graph
    assert row.raw_map.name.endswith(".json") and json.loads(row.raw_map.read()) == graph
    assert row.metrics == {"minimal_sets": 1.0}
    assert "gull" not in row.overlay.name and "figure" not in row.overlay.name
