"""Reads for the engine."""

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from explain_engine.models import Explanation, Image, PrecomputeJob

WorkStatus = Explanation.Status


def _status_counts(prefix: str = "") -> dict:
    """Count aggregates of explanations by status (`prefix` is the path to them)."""
    field = f"{prefix}status" if prefix else "status"
    pk = f"{prefix}pk" if prefix else "pk"
    counts = {"total": Count(pk)}
    for status in WorkStatus.values:
        counts[status] = Count(pk, filter=Q(**{field: status}))
    return counts


@dataclass(frozen=True)
class JobProgress:
    total: int
    done: int
    running: int
    pending: int
    failed: int

    @property
    def finished(self) -> int:
        return self.done + self.failed


@dataclass(frozen=True)
class MethodProgress(JobProgress):
    method: str


@dataclass(frozen=True)
class JobSummary:
    job: PrecomputeJob
    progress: JobProgress


@dataclass(frozen=True)
class ImageFailure:
    image: Image | None
    image_id: int
    reason: str


def precompute_job_progress(*, job: PrecomputeJob) -> JobProgress:
    return JobProgress(**job.explanations.aggregate(**_status_counts()))


def precompute_job_method_progress(*, job: PrecomputeJob) -> list[MethodProgress]:
    """Progress per method, in the order the job lists its methods."""
    rows = {
        row.pop("method"): row
        for row in job.explanations.values("method").annotate(**_status_counts())
    }
    empty = {"total": 0, **dict.fromkeys(WorkStatus.values, 0)}
    order = list(dict.fromkeys(spec["method"] for spec in job.methods))
    return [MethodProgress(method=slug, **rows.get(slug, empty)) for slug in order]


def precompute_job_failures(*, job: PrecomputeJob) -> QuerySet[Explanation]:
    return (
        job.explanations.filter(status=WorkStatus.FAILED)
        .select_related("image")
        .order_by("method", "image__source_id")
    )


def precompute_job_image_failures(*, job: PrecomputeJob) -> list[ImageFailure]:
    """The images the job could not read or predict, with the reason."""
    ids = [int(image_id) for image_id in job.image_failures]
    images = Image.objects.in_bulk(ids)
    return [
        ImageFailure(image=images.get(int(image_id)), image_id=int(image_id), reason=reason)
        for image_id, reason in sorted(job.image_failures.items(), key=lambda kv: int(kv[0]))
    ]


def precompute_job_list(*, limit: int = 50) -> list[JobSummary]:
    """The most recent jobs with their progress."""
    jobs = (
        PrecomputeJob.objects.select_related("classifier")
        .annotate(**_status_counts("explanations__"))
        .order_by("-created_at", "-pk")[:limit]
    )
    fields = ["total", *WorkStatus.values]
    return [
        JobSummary(job=job, progress=JobProgress(**{f: getattr(job, f) for f in fields}))
        for job in jobs
    ]


def precompute_jobs_waiting(*, created_before) -> QuerySet[PrecomputeJob]:
    """Jobs no worker has started whose first task the broker never took (it was down)."""
    return PrecomputeJob.objects.filter(
        status=PrecomputeJob.Status.PENDING, sent_at__isnull=True, created_at__lt=created_before
    ).order_by("pk")
