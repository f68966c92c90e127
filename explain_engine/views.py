"""Researcher pages for precompute jobs: their progress, failures, and retrying failures.

Seeing jobs needs `explain_engine.view_precomputejob`, retrying them
`explain_engine.change_precomputejob` (superusers have both; give staff them by group).
"""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from explain_engine import selectors
from explain_engine.forms import RetryFailedForm
from explain_engine.models import PrecomputeJob
from explain_engine.services.errors import EngineInputError
from explain_engine.services.precompute import precompute_job_retry_failed
from explain_engine.tasks import precompute_job_send


def _researcher_with(permission: str):
    """Anonymous visitors go to the login page; a logged-in user without `permission` gets
    403 (sending them to the login page again would loop)."""

    def decorator(view):
        guarded = login_required(permission_required(permission, raise_exception=True)(view))
        return wraps(view)(guarded)

    return decorator


@require_GET
@_researcher_with("explain_engine.view_precomputejob")
def job_list(request: HttpRequest) -> HttpResponse:
    return render(request, "engine/job_list.html", {"jobs": selectors.precompute_job_list()})


@require_GET
@_researcher_with("explain_engine.view_precomputejob")
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(PrecomputeJob.objects.select_related("classifier"), pk=job_id)
    context = {
        "job": job,
        "progress": selectors.precompute_job_progress(job=job),
        "methods": selectors.precompute_job_method_progress(job=job),
        "eta": selectors.eta_text(selectors.precompute_job_eta_seconds(job=job)),
        "failures": selectors.precompute_job_failures(job=job),
        "image_failures": selectors.precompute_job_image_failures(job=job),
        "may_retry": request.user.has_perm("explain_engine.change_precomputejob"),
    }
    return render(request, "engine/job_detail.html", context)


@require_POST
@_researcher_with("explain_engine.change_precomputejob")
def job_retry_failed(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(PrecomputeJob, pk=job_id)
    form = RetryFailedForm(request.POST)
    try:
        if not form.is_valid():
            raise EngineInputError(f"method: {' '.join(form.errors['method'])}")
        reset = precompute_job_retry_failed(job=job, method=form.cleaned_data["method"] or None)
    except EngineInputError as error:
        return render(
            request, "engine/bad_request.html", {"job": job, "message": str(error)}, status=400
        )
    # With the broker down the job waits, and the periodic sender sends it later.
    transaction.on_commit(lambda: precompute_job_send(job.pk))
    messages.success(request, f"{reset} failed explanation(s) queued again.")
    return redirect("researcher-job", job_id=job.pk)
