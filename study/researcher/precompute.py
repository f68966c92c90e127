"""Precompute from the dashboard: the job `precompute --study SLUG` makes, started once
however often the button is pressed, on the Celery workers when there is a broker, else in a
worker process beside the web server (as the embedded demo runs its workers)."""

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from explain_engine.job_progress import runs_in_process
from explain_engine.models import PrecomputeJob
from explain_engine.selectors import precompute_job_last_activity
from explain_engine.services.precompute import precompute_job_release_claims
from explain_engine.tasks import precompute_job_send
from study.design.creation import study_precompute_job
from study.design.demo_workers import precompute_worker_start
from study.models import Study

UNFINISHED = (PrecomputeJob.Status.PENDING, PrecomputeJob.Status.RUNNING)


def study_precompute_running(*, study: Study) -> PrecomputeJob | None:
    """The study's unfinished precompute job, if it has one."""
    return study.precompute_jobs.filter(status__in=UNFINISHED).order_by("-pk").first()


#: An embedded worker claims a batch, computes it and stores it: one batch of the slowest
#: method (iGOS++ on 8 images, on a busy CPU) takes minutes, never this long.
STALLED_AFTER_SECONDS = 15 * 60


def study_precompute_stalled(*, job: PrecomputeJob | None) -> bool:
    """An unfinished job in the embedded mode whose rows have seen no claim and no result for
    `STALLED_AFTER_SECONDS`: its worker process died (with a broker, Celery redelivers and
    the periodic sender sends waiting jobs)."""
    if job is None or job.status not in UNFINISHED or not runs_in_process():
        return False
    quiet_since = timezone.now() - timedelta(seconds=STALLED_AFTER_SECONDS)
    return precompute_job_last_activity(job=job) < quiet_since


def study_precompute_latest(*, study: Study) -> PrecomputeJob | None:
    return study.precompute_jobs.order_by("-pk").first()


def study_precompute_start(*, study: Study) -> tuple[PrecomputeJob, bool]:
    """The study's precompute job and whether this call made it: while one is unfinished,
    that one (a second press, a double post, a second tab start nothing). A new job is
    started once the transaction commits, so its worker sees it. A stalled job (its worker
    process died, `study_precompute_stalled`) gets a new worker."""
    with transaction.atomic():
        # One start at a time per study: two posts at once cannot both find no job.
        locked = Study.objects.select_for_update().get(pk=study.pk)
        running = study_precompute_running(study=locked)
        if running is not None:
            if study_precompute_stalled(job=running):
                # No worker is alive to store what it claimed: free its rows for the new one.
                precompute_job_release_claims(job=running)
                transaction.on_commit(lambda: precompute_job_start(job_id=running.pk))
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
