"""Running a precompute job from a command and showing its progress: in this process (the
embedded default, eager Celery), with the progress shown after each task; or on the
workers, polled until the job is finished.
"""

import time
from collections.abc import Callable

from celery.signals import task_postrun

from explain_engine import selectors
from explain_engine.models import PrecomputeJob
from explain_engine.tasks import precompute_job_run

PROGRESS_BAR_WIDTH = 30
FINISHED = (PrecomputeJob.Status.DONE, PrecomputeJob.Status.FAILED)


def runs_in_process() -> bool:
    """Whether tasks run here rather than on workers (Celery eager: the embedded default)."""
    return precompute_job_run.app.conf.task_always_eager


def progress_line(job: PrecomputeJob) -> str:
    """`[####......] 12/40 done, 1 failed`: meant to be redrawn in place (after a \\r)."""
    progress = selectors.precompute_job_progress(job=job)
    filled = PROGRESS_BAR_WIDTH * progress.finished // max(progress.total, 1)
    bar = "#" * filled + "." * (PROGRESS_BAR_WIDTH - filled)
    return f"[{bar}] {progress.done}/{progress.total} done, {progress.failed} failed"


def precompute_job_run_here(
    job: PrecomputeJob, *, after_each_task: Callable[[], None], fit: bool = True
) -> None:
    """Run the job's tasks in this process (Celery eager), calling `after_each_task` as each
    one ends; `fit` as in `precompute_job_run`."""

    def task_ended(**kwargs):
        after_each_task()

    task_postrun.connect(task_ended, weak=False)
    try:
        precompute_job_run.delay(job.pk, fit=fit)
    finally:
        task_postrun.disconnect(task_ended)


def precompute_job_wait(
    job: PrecomputeJob, *, every_second: Callable[[], None], poll_seconds: float = 1
) -> None:
    """Wait for the workers to finish the job, calling `every_second` at each poll."""
    while True:
        every_second()
        job.refresh_from_db()
        if job.status in FINISHED:
            return
        time.sleep(poll_seconds)
