"""Precompute from the dashboard: the job `precompute --study SLUG` makes, started once
however often the button is pressed, on the Celery workers when there is a broker, else in a
worker process beside the web server (as the embedded demo runs its workers)."""

from pathlib import Path

from django.conf import settings
from django.db import transaction

from explain_engine.job_progress import runs_in_process
from explain_engine.models import PrecomputeJob
from explain_engine.tasks import precompute_job_send
from study.design.creation import study_precompute_job
from study.design.demo_workers import precompute_worker_start
from study.models import Study

UNFINISHED = (PrecomputeJob.Status.PENDING, PrecomputeJob.Status.RUNNING)


def study_precompute_running(*, study: Study) -> PrecomputeJob | None:
    """The study's unfinished precompute job, if it has one."""
    return study.precompute_jobs.filter(status__in=UNFINISHED).order_by("-pk").first()


def study_precompute_latest(*, study: Study) -> PrecomputeJob | None:
    return study.precompute_jobs.order_by("-pk").first()


def study_precompute_start(*, study: Study) -> tuple[PrecomputeJob, bool]:
    """The study's precompute job and whether this call made it: while one is unfinished,
    that one (a second press, a double post, a second tab start nothing). A new job is
    started once the transaction commits, so its worker sees it."""
    with transaction.atomic():
        # One start at a time per study: two posts at once cannot both find no job.
        locked = Study.objects.select_for_update().get(pk=study.pk)
        running = study_precompute_running(study=locked)
        if running is not None:
            return running, False
        job = study_precompute_job(study=locked)
        transaction.on_commit(lambda: precompute_job_start(job_id=job.pk))
    return job, True


def precompute_job_start(*, job_id: int) -> None:
    """Send the job to the Celery workers, or with no broker (tasks eager, the embedded
    default) start a worker process for it. A broker that is down leaves the job waiting:
    the periodic sender sends it (explain_engine.tasks)."""
    if runs_in_process():
        precompute_worker_start(
            job_id=job_id, log_path=Path(settings.MEDIA_ROOT).parent / "precompute-worker.log"
        )
    else:
        precompute_job_send(job_id)
