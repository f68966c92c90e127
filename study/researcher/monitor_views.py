"""The participant monitor page and its per-participant changes (owners only, audited)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from study.researcher import dashboard, monitor
from study.researcher.forms import ExclusionForm, MonitorFilterForm, WithdrawForm
from study.researcher.run_views import form_refused, owned_study

researcher_required = login_required(login_url="researcher-login")


@researcher_required
def participant_monitor_page(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(dashboard.studies_visible_to(user=request.user), slug=slug)
    form = MonitorFilterForm(request.GET)
    if not form.is_valid():
        return form_refused(request, study, form)
    filters = {key: value for key, value in form.cleaned_data.items() if value}
    context = {
        "study": study,
        "form": form,
        "monitor": monitor.participant_monitor(study=study, **filters),
        "conditions": list(study.conditions.values_list("name", flat=True)),
        "is_owner": dashboard.study_is_owned_by(study=study, user=request.user),
        "message": request.session.pop("monitor_message", None),
        "limit": monitor.MONITOR_LIMIT,
    }
    return render(request, "researcher/participants.html", context)


def _back(request: HttpRequest, slug: str) -> HttpResponse:
    # Back to the same filtered list the form was posted from, when it says so.
    url = reverse("researcher-participants", args=[slug])
    query = request.POST.get("return_query", "")
    return redirect(f"{url}?{query}" if query and len(query) < 300 else url)


@researcher_required
@require_POST
def participant_exclusion(request: HttpRequest, slug: str) -> HttpResponse:
    study = owned_study(request, slug)
    form = ExclusionForm(request.POST)
    if not form.is_valid():
        return form_refused(request, study, form)
    try:
        monitor.participant_exclusion_set(
            study=study,
            participant_id=form.cleaned_data["participant"],
            decision=form.cleaned_data["decision"],
            reason=form.cleaned_data["reason"],
            actor=request.user,
        )
    except monitor.MonitorError as error:
        request.session["monitor_message"] = str(error)
    return _back(request, slug)


@researcher_required
@require_POST
def participant_withdrawal(request: HttpRequest, slug: str) -> HttpResponse:
    study = owned_study(request, slug)
    form = WithdrawForm(request.POST)
    if not form.is_valid():
        return form_refused(request, study, form)
    try:
        monitor.participant_withdraw_by_id(
            study=study,
            participant_id=form.cleaned_data["participant"],
            reason=form.cleaned_data["reason"],
            actor=request.user,
        )
        request.session["monitor_message"] = (
            "Withdrawn: the participant's answers and ids are deleted."
        )
    except monitor.MonitorError as error:
        request.session["monitor_message"] = str(error)
    return _back(request, slug)
