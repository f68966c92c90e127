"""Celery interfaces to the engine: ids in, re-fetch, call a service."""

import logging

from celery import shared_task

from explain_engine import services
from explain_engine.models import Explanation, PrecomputeJob

logger = logging.getLogger(__name__)

# Failures that will happen again on a retry: an unreadable image, a bad shape or value.
DETERMINISTIC_ERRORS = (*services.UNREADABLE_IMAGE_ERRORS, ValueError)


@shared_task(acks_late=True)
def precompute_job_run(job_id: int) -> int:
    job = PrecomputeJob.objects.select_related("classifier").get(pk=job_id)
    explanation_ids = services.precompute_job_plan(job=job)
    for explanation_id in explanation_ids:
        explanation_run.delay(explanation_id)
    services.precompute_job_refresh(job=job)
    return len(explanation_ids)


@shared_task(acks_late=True)
def explanation_run(explanation_id: int) -> str:
    if not services.explanation_claim(explanation_id=explanation_id):
        return "skipped"
    try:
        services.explanation_compute(explanation_id=explanation_id)
        status = Explanation.Status.DONE
    except DETERMINISTIC_ERRORS as error:
        logger.warning("explanation %s failed: %s", explanation_id, error)
        services.explanation_fail(
            explanation_id=explanation_id, reason=f"{type(error).__name__}: {error}"
        )
        status = Explanation.Status.FAILED
    except Exception as error:
        services.explanation_fail(
            explanation_id=explanation_id, reason=f"{type(error).__name__}: {error}"
        )
        raise
    finally:
        job_id = (
            Explanation.objects.filter(pk=explanation_id).values_list("job_id", flat=True).first()
        )
        if job_id is not None:
            services.precompute_job_refresh(job=PrecomputeJob.objects.get(pk=job_id))
    return status
