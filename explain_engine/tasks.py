"""Celery interfaces to the engine: ids in, re-fetch, call a service.

Both tasks are acknowledged late: a worker that dies mid-task leaves its message
unacknowledged, and the broker hands it to another worker (Redis: after the visibility
timeout), flagged as redelivered, which then takes over the dead worker's claim.
"""

import logging

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from explain_engine.models import PrecomputeJob
from explain_engine.services import explanations, precompute

logger = logging.getLogger(__name__)

# The database went away (a restart, a network blip): worth retrying after a pause.
LOST_CONNECTION_ERRORS = (OperationalError, InterfaceError)


@shared_task(acks_late=True)
def precompute_job_run(job_id: int) -> int:
    job = PrecomputeJob.objects.select_related("classifier").get(pk=job_id)
    precompute.precompute_job_fit(job=job)
    explanation_ids = precompute.precompute_job_plan(job=job)
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
