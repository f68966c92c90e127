"""From the dashboard: preview a condition as a participant sees it, and compute the
explanations the study still misses, with the job's progress."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from explain_engine import selectors as engine_selectors
from study.flow.entry import EntryRefused, participant_preview_start
from study.researcher import dashboard
from study.researcher.forms import PrecomputeStartForm, PreviewForm
from study.researcher.precompute import study_precompute_start
from study.researcher.run_views import form_refused, owned_study

researcher_required = login_required(login_url="researcher-login")


def _visible_study(request: HttpRequest, slug: str):
    return get_object_or_404(dashboard.studies_visible_to(user=request.user), slug=slug)


@researcher_required
@require_POST
def study_preview(request: HttpRequest, slug: str) -> HttpResponse:
    """Start a preview of the chosen condition (any researcher who sees the study: it
    changes nothing of the study) and go to its first page."""
    study = _visible_study(request, slug)
    form = PreviewForm(request.POST, study=study)
    if not form.is_valid():
        return form_refused(request, study, form)
    try:
        participant = participant_preview_start(
            study=study, condition=form.cleaned_data["condition"]
        )
    except EntryRefused as error:
        request.session["launch_error"] = error.reason
        return redirect("researcher-study", slug=study.slug)
    return redirect("study:participant", slug=study.slug, code=participant.code)


@researcher_required
@require_POST
def study_precompute(request: HttpRequest, slug: str) -> HttpResponse:
    study = owned_study(request, slug)
    form = PrecomputeStartForm(request.POST)
    if not form.is_valid():
        return form_refused(request, study, form)
    job, _ = study_precompute_start(study=study)
    return redirect("researcher-study-job", slug=study.slug, job_id=job.pk)


@researcher_required
@require_GET
def study_job(request: HttpRequest, slug: str, job_id: int) -> HttpResponse:
    """One of the study's precompute jobs, for whoever sees the study: progress per method
    with an ETA, refreshed every few seconds while it runs."""
    study = _visible_study(request, slug)
    job = get_object_or_404(study.precompute_jobs.select_related("classifier"), pk=job_id)
    context = {
        "study": study,
        "job": job,
        "progress": engine_selectors.precompute_job_progress(job=job),
        "methods": engine_selectors.precompute_job_method_progress(job=job),
        "eta": engine_selectors.eta_text(engine_selectors.precompute_job_eta_seconds(job=job)),
        "may_see_jobs": request.user.has_perm("explain_engine.view_precomputejob"),
    }
    return render(request, "researcher/study_job.html", context)
