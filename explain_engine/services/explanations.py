"""A worker's batch of explanations: claiming rows, explaining them as one stacked batch,
storing each result (or its failure) under the claim.

A worker claims its batch with a conditional update that gives the rows a fresh claim token,
explains the images as one stacked batch, and stores each result with another conditional
update on that token: the artifacts and the "done" mark land together, and only for the
latest claim. A claim of a dead worker is taken over by the redelivered task (or, once its
lease has expired, by a re-run of the job).
"""

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import PIL
import PIL.Image
import torch
from django.conf import settings
from django.core.files.base import ContentFile
from django.db.models import F, Q
from django.utils import timezone

from explain_engine import render
from explain_engine.artifacts import ExplanationArtifacts, artifacts_for, concept_artifacts
from explain_engine.methods import REGISTRY, get_method
from explain_engine.models import (
    Classifier,
    Explanation,
)
from explain_engine.services.classifiers import classifier_model, engine_device, library_versions
from explain_engine.services.concept_models import (
    concept_model_fitted,
    concept_model_load,
    concept_model_prototype_tiles,
)
from explain_engine.services.errors import EngineInputError
from explain_engine.services.images import UNREADABLE_IMAGE_ERRORS

logger = logging.getLogger(__name__)


def method_for(*, classifier: Classifier, slug: str, params: dict):
    """The method `slug` with `params` as it runs on `classifier`.

    Parameters that describe the classifier rather than the method (the input normalization
    that SAG's black baseline needs) are filled in from the classifier unless given, so a
    study's condition and the precomputed explanations agree on the parameter hash.
    """
    method_class = REGISTRY.get(slug)
    fields = set()
    if method_class is not None and dataclasses.is_dataclass(method_class):
        fields = {field.name for field in dataclasses.fields(method_class)}
    from_classifier = {}
    if {"pixel_mean", "pixel_std"} <= fields:
        from_classifier = {
            "pixel_mean": list(classifier.normalization_mean),
            "pixel_std": list(classifier.normalization_std),
        }
    try:
        return get_method(slug, **{**from_classifier, **params})
    except ValueError as error:
        raise EngineInputError(str(error)) from error


@dataclass(frozen=True)
class ClaimedBatch:
    token: uuid.UUID
    explanation_ids: list[int]


def explanation_batch_claim(*, explanation_ids: list[int], take_over: bool) -> ClaimedBatch:
    """Take explanations for computing under a fresh claim token.

    Pending rows are always taken. A running row is taken over only when `take_over` (the
    task was redelivered or is retrying: its earlier claim is presumed lost) or when its
    claim is older than the lease. Done and failed rows are never taken.
    """
    token = uuid.uuid4()
    now = timezone.now()
    lease_expired = now - timedelta(seconds=settings.EXPLAINSTUDY_CLAIM_LEASE_SECONDS)
    abandoned = Q(status=Explanation.Status.RUNNING)
    if not take_over:
        abandoned &= Q(started_at__lt=lease_expired)
    Explanation.objects.filter(
        Q(status=Explanation.Status.PENDING) | abandoned, pk__in=explanation_ids
    ).update(
        status=Explanation.Status.RUNNING,
        claim_token=token,
        started_at=now,
        attempts=F("attempts") + 1,
    )
    claimed = Explanation.objects.filter(pk__in=explanation_ids, claim_token=token)
    return ClaimedBatch(token=token, explanation_ids=sorted(claimed.values_list("pk", flat=True)))


# Failures that will happen again on a retry: an unreadable image, a bad shape or value.
DETERMINISTIC_ERRORS = (*UNREADABLE_IMAGE_ERRORS, ValueError)


@dataclass
class _Item:
    explanation: Explanation
    stimulus: PIL.Image.Image
    tensor: torch.Tensor


def explanation_batch_compute(*, batch: ClaimedBatch) -> dict[str, int]:
    """Explain a claimed batch as one stacked tensor and store each result.

    CUDA running out of memory splits the batch in halves, down to single images; a
    deterministic error (unreadable image, bad shape or value) splits it the same way so that
    only the image that causes it fails, with the reason. Returns counts by outcome.
    """
    rows = list(
        Explanation.objects.filter(
            pk__in=batch.explanation_ids,
            claim_token=batch.token,
            status=Explanation.Status.RUNNING,
        ).select_related("classifier", "image")
    )
    outcome = {"done": 0, "failed": 0, "lost": 0}
    if not rows:
        return outcome
    classifier = rows[0].classifier
    model, preprocessing = classifier_model(classifier)
    device = engine_device()
    method, make_artifacts = _method_and_artifacts(classifier, rows[0].method, rows[0].params)
    provenance = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "library_versions": library_versions(),
        "checkpoint_sha256": classifier.checkpoint_sha256,
    }

    def fail(explanation: Explanation, reason: str) -> None:
        stored = explanation_fail(
            explanation_id=explanation.pk, claim_token=batch.token, reason=reason
        )
        outcome["failed" if stored else "lost"] += 1

    items = []
    for explanation in rows:
        try:
            with explanation.image.file.open("rb") as handle, PIL.Image.open(handle) as pil:
                stimulus = pil.convert("RGB")
            items.append(_Item(explanation, stimulus, preprocessing.to_tensor(stimulus)))
        except UNREADABLE_IMAGE_ERRORS as error:
            fail(explanation, f"{type(error).__name__}: {error}")

    def explain(group: list[_Item]) -> None:
        images = torch.stack([item.tensor for item in group])
        targets = torch.tensor([item.explanation.target_index for item in group])
        try:
            started = time.perf_counter()
            result = method.explain(model, images, targets)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - started
        except torch.cuda.OutOfMemoryError as error:
            torch.cuda.empty_cache()
            problem = f"CUDA out of memory even for one image: {error}"
        except DETERMINISTIC_ERRORS as error:
            problem = f"{type(error).__name__}: {error}"
        else:
            for index, item in enumerate(group):
                made = make_artifacts(result, index, item.stimulus)
                stored = explanation_store(
                    explanation=item.explanation,
                    artifacts=made,
                    claim_token=batch.token,
                    runtime_seconds=seconds / len(group),
                    **provenance,
                )
                outcome["done" if stored else "lost"] += 1
            return
        if len(group) == 1:
            fail(group[0].explanation, problem)
            return
        logger.info("splitting a batch of %d after %s", len(group), problem.split(":")[0])
        half = len(group) // 2
        explain(group[:half])
        explain(group[half:])

    if items:
        explain(items)
    return outcome


def _method_and_artifacts(
    classifier: Classifier, slug: str, params: dict
) -> tuple[object, Callable[[object, int, PIL.Image.Image], ExplanationArtifacts]]:
    """The method to run for a batch, and how one image of its result becomes artifacts.

    An XNN is the classifier's fitted concept model (fitted by the job's fit step); its
    panels need the prototypes and class names, which live in the database.
    """
    if slug != "xnn":
        return method_for(classifier=classifier, slug=slug, params=params), artifacts_for
    concept_model = concept_model_fitted(classifier=classifier, **params)
    labels = {label.source_name: label for label in classifier.image_set.classes.all()}
    class_names = [labels[name].display_name for name in classifier.class_order]

    def concept_artifacts_for(result, index: int, stimulus: PIL.Image.Image):
        column = int(result.targets[index])  # per-class mode: that class's own concepts
        item = render.xnn_concept_item(
            result,
            index,
            stimulus,
            concept_model_prototype_tiles(concept_model, column),
            class_names=class_names,
            prototype_ids=concept_model.prototype_ids(column),
        )
        return concept_artifacts(item, concept_model_id=concept_model.pk)

    return concept_model_load(concept_model), concept_artifacts_for


def explanation_store(
    *,
    explanation: Explanation,
    artifacts: ExplanationArtifacts,
    claim_token: uuid.UUID,
    runtime_seconds: float,
    device: str,
    library_versions: dict[str, str],
    checkpoint_sha256: str,
) -> bool:
    """Write the artifacts and mark the explanation done, if the claim is still ours.

    The files are written first under fresh opaque names; the row then points at them in
    one conditional update. If the claim was taken over meanwhile, the files are deleted and
    nothing changes: the row keeps the other claim's result.
    """
    overlay_field = Explanation._meta.get_field("overlay")
    raw_map_field = Explanation._meta.get_field("raw_map")
    overlay_name = overlay_field.storage.save(
        overlay_field.generate_filename(explanation, "figure.png"),
        ContentFile(artifacts.figure_png),
    )
    raw_map_name = raw_map_field.storage.save(
        raw_map_field.generate_filename(explanation, f"analysis.{artifacts.analysis_suffix}"),
        ContentFile(artifacts.analysis),
    )
    stored = Explanation.objects.filter(
        pk=explanation.pk, claim_token=claim_token, status=Explanation.Status.RUNNING
    ).update(
        overlay=overlay_name,
        raw_map=raw_map_name,
        data=artifacts.data,
        metrics=artifacts.metrics,
        runtime_seconds=runtime_seconds,
        device=device,
        library_versions=library_versions,
        checkpoint_sha256=checkpoint_sha256,
        status=Explanation.Status.DONE,
        error="",
        finished_at=timezone.now(),
    )
    if not stored:
        overlay_field.storage.delete(overlay_name)
        raw_map_field.storage.delete(raw_map_name)
    return stored == 1


def explanation_fail(*, explanation_id: int, claim_token: uuid.UUID, reason: str) -> bool:
    """Record why a claimed explanation cannot be computed; False if the claim was lost."""
    failed = Explanation.objects.filter(
        pk=explanation_id, claim_token=claim_token, status=Explanation.Status.RUNNING
    ).update(status=Explanation.Status.FAILED, error=reason[:2000], finished_at=timezone.now())
    return failed == 1


def explanation_batch_fail(*, batch: ClaimedBatch, reason: str) -> None:
    """Fail every row of the batch still held by its claim (an unexpected error)."""
    Explanation.objects.filter(
        pk__in=batch.explanation_ids,
        claim_token=batch.token,
        status=Explanation.Status.RUNNING,
    ).update(status=Explanation.Status.FAILED, error=reason[:2000], finished_at=timezone.now())
