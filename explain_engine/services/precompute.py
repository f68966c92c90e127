"""Precompute jobs: what a job asks for, its steps before the workers start (fit the concept
models its methods need, then plan: predictions and one explanation row per image and
method), splitting its rows into worker batches, and its status.
"""

from django.conf import settings
from django.utils import timezone

from explain_engine.methods import REGISTRY, get_method
from explain_engine.models import (
    Classifier,
    Explanation,
    Image,
    PrecomputeJob,
    Prediction,
)
from explain_engine.services.concept_models import concept_model_fit, concept_model_fitted
from explain_engine.services.errors import EngineInputError
from explain_engine.services.explanations import method_for
from explain_engine.services.predictions import predictions_compute

# Far more images than any GPU holds at once.
MAX_BATCH_SIZE = 4096


def precompute_job_create(
    *,
    classifier: Classifier,
    methods: list[tuple[str, dict]],
    images: list[Image],
    batch_size: int | None = None,
) -> PrecomputeJob:
    """Record what is asked; checks every method and its parameters before anything runs."""
    if not images:
        raise EngineInputError("no images to explain")
    if batch_size is None:
        batch_size = settings.EXPLAINSTUDY_BATCH_SIZE
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise EngineInputError(f"batch size must lie in 1..{MAX_BATCH_SIZE}, not {batch_size}")
    foreign = [image.pk for image in images if image.image_set_id != classifier.image_set_id]
    if foreign:
        raise EngineInputError(f"images {foreign[:5]} are not in the classifier's image set")
    resolved = []
    for slug, params in methods:
        method = method_for(classifier=classifier, slug=slug, params=params)
        resolved.append({"method": slug, "params": method.params()})
    return PrecomputeJob.objects.create(
        classifier=classifier,
        methods=resolved,
        image_ids=[image.pk for image in images],
        batch_size=batch_size,
    )


def precompute_job_fit(*, job: PrecomputeJob) -> None:
    """Fit the models the job's methods need (an XNN's concept model), once, before any row
    is planned or any worker explains with them: minutes of work for an XNN, none when
    fitted already."""
    for spec in job.methods:
        if getattr(REGISTRY[spec["method"]], "needs_fit", False):
            concept_model_fit(classifier=job.classifier, **spec["params"])


def precompute_job_plan(*, job: PrecomputeJob, fitted_only: bool = False) -> list[int]:
    """Compute the predictions the job needs, then create its explanation rows (one per
    image and method, explaining the predicted class). Returns the ids still to compute.
    With `fitted_only`, methods whose model is not fitted yet are left out."""
    images = list(Image.objects.filter(pk__in=job.image_ids))
    failures = predictions_compute(classifier=job.classifier, images=images)
    PrecomputeJob.objects.filter(pk=job.pk).update(image_failures=failures)
    job.image_failures = failures
    images = [image for image in images if image.pk not in failures]
    predicted = dict(
        Prediction.objects.filter(classifier=job.classifier, image__in=images).values_list(
            "image_id", "predicted_index"
        )
    )
    rows = []
    hashes = set()
    for spec in job.methods:
        if fitted_only and not _method_ready(job, spec):
            continue
        method = get_method(spec["method"], **spec["params"])
        params, params_hash = method.params(), method.params_hash()
        hashes.add(params_hash)
        rows.extend(
            Explanation(
                classifier=job.classifier,
                image=image,
                method=method.slug,
                target_index=predicted[image.pk],
                params=params,
                params_hash=params_hash,
                job=job,
                checkpoint_sha256=job.classifier.checkpoint_sha256,
            )
            for image in images
        )
    # Rows that exist already (an earlier job, a rerun) are kept as they are.
    Explanation.objects.bulk_create(rows, ignore_conflicts=True)
    PrecomputeJob.objects.filter(pk=job.pk).update(
        status=PrecomputeJob.Status.RUNNING, finished_at=None, error=""
    )
    wanted = Explanation.objects.filter(classifier=job.classifier, image__in=images).exclude(
        status=Explanation.Status.DONE
    )
    return list(wanted.filter(params_hash__in=hashes).values_list("pk", flat=True))


def _method_ready(job: PrecomputeJob, spec: dict) -> bool:
    """The method needs no fitted model, or its model is fitted already."""
    if not getattr(REGISTRY[spec["method"]], "needs_fit", False):
        return True
    try:
        concept_model_fitted(classifier=job.classifier, **spec["params"])
    except EngineInputError:
        return False
    return True


def explanation_batches(*, explanation_ids: list[int], batch_size: int) -> list[list[int]]:
    """Split explanations into worker batches, each of one classifier, method and parameters."""
    rows = (
        Explanation.objects.filter(pk__in=explanation_ids)
        .order_by("classifier_id", "method", "params_hash", "pk")
        .values_list("pk", "classifier_id", "method", "params_hash")
    )
    groups: dict[tuple, list[int]] = {}
    for pk, *key in rows:
        groups.setdefault(tuple(key), []).append(pk)
    return [
        ids[start : start + batch_size]
        for ids in groups.values()
        for start in range(0, len(ids), batch_size)
    ]


def precompute_job_refresh(*, job: PrecomputeJob) -> PrecomputeJob:
    """Mark the job finished once none of its explanations is pending or running."""
    open_rows = job.explanations.filter(
        status__in=[Explanation.Status.PENDING, Explanation.Status.RUNNING]
    )
    job.refresh_from_db()
    if job.status == PrecomputeJob.Status.RUNNING and not open_rows.exists():
        failed = job.explanations.filter(status=Explanation.Status.FAILED).count()
        problems = []
        if job.image_failures:
            problems.append(f"{len(job.image_failures)} image(s) unreadable")
        if failed:
            problems.append(f"{failed} explanation(s) failed")
        job.status = PrecomputeJob.Status.FAILED if problems else PrecomputeJob.Status.DONE
        job.error = "; ".join(problems)
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
    return job


def precompute_jobs_refresh(*, explanation_ids: list[int]) -> None:
    """Refresh the jobs these explanations belong to."""
    job_ids = set(
        Explanation.objects.filter(pk__in=explanation_ids, job__isnull=False).values_list(
            "job_id", flat=True
        )
    )
    for job in PrecomputeJob.objects.filter(pk__in=job_ids):
        precompute_job_refresh(job=job)


def precompute_job_release_claims(*, job: PrecomputeJob) -> int:
    """Make the job's running rows pending again, for a run that knows no other worker holds
    them (the embedded demo after an interrupted run). A worker whose claim is released this
    way can no longer store its result: its claim token is gone."""
    return job.explanations.filter(status=Explanation.Status.RUNNING).update(
        status=Explanation.Status.PENDING, claim_token=None
    )


def precompute_job_retry_failed(*, job: PrecomputeJob, method: str | None = None) -> int:
    """Put the job's failed explanations (of one method, or all) back to pending and reopen
    the job; running it again then computes them and retries its unreadable images.
    Returns how many explanations were reset."""
    slugs = {spec["method"] for spec in job.methods}
    if method is not None and method not in slugs:
        raise EngineInputError(
            f"job {job.pk} has no method {method!r}; its methods: {', '.join(sorted(slugs))}"
        )
    failed = job.explanations.filter(status=Explanation.Status.FAILED)
    if method is not None:
        failed = failed.filter(method=method)
    reset = failed.update(
        status=Explanation.Status.PENDING, error="", claim_token=None, finished_at=None
    )
    PrecomputeJob.objects.filter(pk=job.pk).update(
        status=PrecomputeJob.Status.PENDING, error="", finished_at=None, sent_at=None
    )
    return reset


def precompute_job_mark_sent(*, job_id: int) -> None:
    """The broker took the job's first task: it no longer waits to be sent."""
    PrecomputeJob.objects.filter(pk=job_id, sent_at__isnull=True).update(sent_at=timezone.now())
