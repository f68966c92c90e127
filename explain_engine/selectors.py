"""Reads for the engine."""

from dataclasses import dataclass

from django.db.models import Count, Q

from explain_engine.models import Explanation, PrecomputeJob


@dataclass(frozen=True)
class JobProgress:
    total: int
    done: int
    failed: int


def precompute_job_progress(*, job: PrecomputeJob) -> JobProgress:
    counts = job.explanations.aggregate(
        total=Count("pk"),
        done=Count("pk", filter=Q(status=Explanation.Status.DONE)),
        failed=Count("pk", filter=Q(status=Explanation.Status.FAILED)),
    )
    return JobProgress(**counts)
