"""Lifecycle and quota changes from the dashboard: owners only, each POST through a form,
each change logged (study.lifecycle)."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from study.models import Study
from study.researcher import dashboard, lifecycle
from study.researcher.forms import DeleteSimulatedForm, LifecycleForm, QuotaForm
from study.researcher.services import SimulatedDeletionError, simulated_participants_delete


def owned_study(request: HttpRequest, slug: str) -> Study:
    study = get_object_or_404(dashboard.studies_visible_to(user=request.user), slug=slug)
    if not dashboard.study_is_owned_by(study=study, user=request.user):
        raise PermissionDenied("Only the study's owners may change it.")
    return study


def form_refused(request: HttpRequest, study: Study, form) -> HttpResponse:
    return render(request, "researcher/form_error.html", {"study": study, "form": form}, status=400)


@login_required(login_url="researcher-login")
@require_POST
def study_lifecycle(request: HttpRequest, slug: str) -> HttpResponse:
    study = owned_study(request, slug)
    form = LifecycleForm(request.POST)
    if not form.is_valid():
        return form_refused(request, study, form)
    try:
        lifecycle.study_change(
            study=study,
            action=form.cleaned_data["action"],
            actor=request.user,
            reason=form.cleaned_data["reason"],
        )
    except lifecycle.StudyConfigError as error:
        request.session["launch_error"] = str(error)
    return redirect("researcher-study", slug=study.slug)


@login_required(login_url="researcher-login")
@require_POST
def study_quota(request: HttpRequest, slug: str) -> HttpResponse:
    study = owned_study(request, slug)
    form = QuotaForm(request.POST)
    if not form.is_valid():
        return form_refused(request, study, form)
    try:
        lifecycle.study_quota_set(
            study=study,
            quota=form.cleaned_data["quota"],
            condition=form.cleaned_data["condition"],
            actor=request.user,
            reason=form.cleaned_data["reason"],
        )
    except lifecycle.LifecycleError as error:
        request.session["launch_error"] = str(error)
    return redirect("researcher-study", slug=study.slug)


@login_required(login_url="researcher-login")
@require_POST
def study_simulated_delete(request: HttpRequest, slug: str) -> HttpResponse:
    """Delete the study's simulated participants, as `delete_simulated_participants` does,
    once the owner has typed the study's slug."""
    study = owned_study(request, slug)
    form = DeleteSimulatedForm(request.POST, study=study)
    if not form.is_valid():
        return form_refused(request, study, form)
    try:
        deletion = simulated_participants_delete(
            study=study, requested_by=request.user, reason=form.cleaned_data["reason"]
        )
    except SimulatedDeletionError as error:
        request.session["launch_error"] = str(error)
    else:
        request.session["dashboard_message"] = (
            f"Deleted {deletion.participants_deleted} simulated participant(s) and "
            f"{deletion.responses_deleted} answer(s); the study log keeps the entry."
        )
    return redirect("researcher-study", slug=study.slug)
