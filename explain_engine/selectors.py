"""Reads for the engine."""

from dataclasses import dataclass

from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

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
    # Seconds left at the rate so far (finished rows over the time since the method's first
    # row started); None before any row finished, or when none is left.
    eta_seconds: float | None = None

    @property
    def eta(self) -> str:
        return eta_text(self.eta_seconds)


def eta_text(seconds: float | None) -> str:
    """'about 4 min left' for the pages; empty when there is no estimate."""
    if seconds is None:
        return ""
    if seconds < 60:
        return "under a minute left"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60:02d} min left"


def _eta_seconds(*, left: int, finished: int, first_started, now) -> float | None:
    if not left or not finished or first_started is None:
        return None
    elapsed = max((now - first_started).total_seconds(), 0.001)
    return left * elapsed / finished


@dataclass(frozen=True)
class JobSummary:
    job: PrecomputeJob
    progress: JobProgress

    @property
    def method_names(self) -> list[str]:
        return precompute_job_method_names(job=self.job)


@dataclass(frozen=True)
class ImageFailure:
    image: Image | None
    image_id: int
    reason: str


def precompute_job_progress(*, job: PrecomputeJob) -> JobProgress:
    return JobProgress(**job.explanations.aggregate(**_status_counts()))


def precompute_job_method_progress(*, job: PrecomputeJob, now=None) -> list[MethodProgress]:
    """Progress per method, in the order the job lists its methods (each once, though two
    conditions may use one method with different parameters), with its ETA."""
    now = now or timezone.now()
    rows = {
        row.pop("method"): row
        for row in job.explanations.values("method").annotate(
            first_started=Min("started_at"), **_status_counts()
        )
    }
    empty = {"total": 0, "first_started": None, **dict.fromkeys(WorkStatus.values, 0)}
    progress = []
    for slug in precompute_job_method_names(job=job):
        counts = dict(rows.get(slug, empty))
        first_started = counts.pop("first_started")
        row = MethodProgress(method=slug, **counts)
        eta = _eta_seconds(
            left=row.pending + row.running,
            finished=row.finished,
            first_started=first_started,
            now=now,
        )
        progress.append(MethodProgress(method=slug, eta_seconds=eta, **counts))
    return progress


def precompute_job_method_names(*, job: PrecomputeJob) -> list[str]:
    """The job's method slugs, each once, in the order the job lists them."""
    return list(dict.fromkeys(spec["method"] for spec in job.methods))


def precompute_job_eta_seconds(*, job: PrecomputeJob, now=None) -> float | None:
    """Seconds until the whole job is done at its rate so far (None: no rate yet, or done)."""
    counts = job.explanations.aggregate(first_started=Min("started_at"), **_status_counts())
    return _eta_seconds(
        left=counts[WorkStatus.PENDING] + counts[WorkStatus.RUNNING],
        finished=counts[WorkStatus.DONE] + counts[WorkStatus.FAILED],
        first_started=counts["first_started"],
        now=now or timezone.now(),
    )


def precompute_job_last_activity(*, job: PrecomputeJob):
    """When a row of the job was last claimed or finished (its creation if never)."""
    latest = job.explanations.aggregate(started=Max("started_at"), finished=Max("finished_at"))
    return max(t for t in (job.created_at, latest["started"], latest["finished"]) if t)


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
        # The studies a job was made for (Study.precompute_jobs, declared by the study app).
        .prefetch_related("studies")
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
