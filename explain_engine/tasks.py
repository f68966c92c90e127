"""Celery interfaces to the engine: ids in, re-fetch, call a service.

Both tasks are acknowledged late: a worker that dies mid-task leaves its message
unacknowledged, and the broker hands it to another worker (Redis: after the visibility
timeout), flagged as redelivered, which then takes over the dead worker's claim.
"""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable

from explain_engine import selectors
from explain_engine.models import PrecomputeJob
from explain_engine.orphans import orphan_files_remove
from explain_engine.services import explanations, precompute

logger = logging.getLogger(__name__)

# The database went away (a restart, a network blip): worth retrying after a pause.
LOST_CONNECTION_ERRORS = (OperationalError, InterfaceError)


def precompute_job_send(job_id: int, *, fit: bool = True) -> bool:
    """Queue the job's first task; False if the broker cannot be reached. The job then
    waits, and `precompute_jobs_send_waiting` (Celery beat, every minute) sends it once the
    broker answers again: nobody has to run anything a second time. `fit` as in
    `precompute_job_run`."""
    try:
        precompute_job_run.delay(job_id, fit=fit)
    except BrokerUnreachable as error:
        logger.warning("precompute job %s waits for the broker: %s", job_id, error)
        return False
    precompute.precompute_job_mark_sent(job_id=job_id)
    return True


# A job is sent right after it is saved; the periodic task leaves young jobs to that send.
SEND_GRACE = timedelta(seconds=30)


@shared_task
def precompute_jobs_send_waiting() -> int:
    """Send every job the broker could not take when it was made; the number sent.

    Beat itself can only start this task once the broker answers, so it runs exactly when
    there is something it can do."""
    waiting = selectors.precompute_jobs_waiting(created_before=timezone.now() - SEND_GRACE)
    return sum(precompute_job_send(job_id) for job_id in waiting.values_list("pk", flat=True))


@shared_task(acks_late=True)
def precompute_job_run(job_id: int, fit: bool = True) -> int:
    """Fit what the job's methods need, plan its rows and send their batches. With `fit`
    False nothing is fitted and only the rows of methods that need no fitted model, or whose
    model is fitted already, are planned: the rest wait for a run that fits (the demo
    computes the others this way while it fits the XNN)."""
    # Sent by any path (a direct call included): it is not waiting for the broker any more.
    precompute.precompute_job_mark_sent(job_id=job_id)
    job = PrecomputeJob.objects.select_related("classifier").get(pk=job_id)
    if fit:
        precompute.precompute_job_fit(job=job)
    explanation_ids = precompute.precompute_job_plan(job=job, fitted_only=not fit)
    batches = precompute.explanation_batches(
        explanation_ids=explanation_ids, batch_size=job.batch_size
    )
    # A task runs in autocommit: the rows are visible to other workers already.
    for batch in batches:
        explanation_batch_run.delay(batch)
    precompute.precompute_job_refresh(job=job)
    return len(explanation_ids)


@shared_task(bind=True, acks_late=True, max_retries=None)
def explanation_batch_run(self, explanation_ids: list[int]) -> dict[str, int]:
    # A redelivered message or a retry means this task's earlier claim (if it got that far)
    # belongs to a run that is gone, so the rows it left running may be taken over.
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    take_over = redelivered or self.request.retries > 0
    try:
        batch = explanations.explanation_batch_claim(
            explanation_ids=explanation_ids, take_over=take_over
        )
        try:
            outcome = explanations.explanation_batch_compute(batch=batch)
        except LOST_CONNECTION_ERRORS:
            raise
        except Exception as error:
            # Not a known failure: record it on the rows, then let Celery log the traceback.
            explanations.explanation_batch_fail(
                batch=batch, reason=f"{type(error).__name__}: {error}"
            )
            precompute.precompute_jobs_refresh(explanation_ids=explanation_ids)
            raise
        precompute.precompute_jobs_refresh(explanation_ids=explanation_ids)
    except LOST_CONNECTION_ERRORS as error:
        if self.request.retries >= settings.EXPLAINSTUDY_TASK_MAX_RETRIES:
            raise
        close_old_connections()
        countdown = settings.EXPLAINSTUDY_RETRY_BACKOFF_SECONDS * 2**self.request.retries
        logger.warning("database connection lost (%s); retrying in %.0f s", error, countdown)
        raise self.retry(exc=error, countdown=countdown) from error
    return outcome


@shared_task
def orphan_files_remove_old() -> int:
    """Beat's periodic clean-up: files nothing points at, older than the claim lease."""
    lease = timedelta(seconds=settings.EXPLAINSTUDY_CLAIM_LEASE_SECONDS)
    return len(orphan_files_remove(older_than=lease))
