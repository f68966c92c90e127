"""Researcher pages: a logged-in researcher sees the studies they own (staff see all) and
runs them; anyone else's study is a 404. Launching and settings are for owners only."""

import csv
import io

from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from study.design import launch
from study.design.spec import EXCLUSION_RULES, StudyConfigError
from study.models import Study
from study.researcher import dashboard, lifecycle
from study.researcher.forms import (
    LaunchForm,
    ProlificSubmissionsForm,
    ShowAccuracyForm,
    form_errors_message,
)
from study.researcher.precompute import study_precompute_latest, study_precompute_stalled
from study.researcher.services import study_set_show_accuracy
from study.results import exports
from study.results.columns import EXPORT_COLUMNS
from study.results.exclusions import participants_apply_exclusions
from study.results.prolific_api import REJECTION_CATEGORIES, REJECTION_MESSAGE_MIN
from study.results.prolific_token import prolific_token_hint
from study.results.reconciliation import (
    ProlificFileError,
    prolific_reconcile,
    prolific_submissions_read,
    review_state_sign,
)
from study.results.reports import AnalysisOptions, study_analysis_options
from study.results.rows import study_export_rows

researcher_required = login_required(login_url="researcher-login")

# The dashboard shows the outcome of the last call to Prolific once, under this session key.
PROLIFIC_OUTCOME_KEY = "prolific_outcome"


def _visible_study(request: HttpRequest, slug: str) -> Study:
    studies = dashboard.studies_visible_to(user=request.user).select_related("classifier")
    return get_object_or_404(studies, slug=slug)


def _owned_study(request: HttpRequest, slug: str) -> Study:
    study = _visible_study(request, slug)
    if not dashboard.study_is_owned_by(study=study, user=request.user):
        raise PermissionDenied("Only the study's owners may change it.")
    return study


@researcher_required
def study_list(request: HttpRequest) -> HttpResponse:
    show_archived = request.GET.get("archived") == "1"
    studies = [
        {
            "study": study,
            "progress": dashboard.study_progress(study=study),
            "accuracy_visible": dashboard.study_accuracy_visible(study=study),
            "entry_url": _entry_url_for_platform(request, study),
        }
        for study in dashboard.studies_visible_to(user=request.user)
        .filter(archived_at__isnull=not show_archived)
        .select_related("classifier")
        .order_by("-created_at")
    ]
    preparation = dashboard.preparation_rows()
    return render(
        request,
        "researcher/study_list.html",
        {
            "studies": studies,
            "show_archived": show_archived,
            "preparation": preparation,
            "preparing": any(row["step"].status != "done" for row in preparation),
        },
    )


@researcher_required
def study_dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    study = _visible_study(request, slug)
    options = _analysis_options(request, study)
    precompute_job = study_precompute_latest(study=study)
    context = {
        "dashboard": dashboard.study_dashboard(study=study),
        "analysis": dashboard.study_dashboard_analysis(study=study, options=options),
        "entry_url": _entry_url_for_platform(request, study),
        "is_owner": dashboard.study_is_owned_by(study=study, user=request.user),
        "launch_error": request.session.pop("launch_error", None),
        "notices": request.session.pop("notices", []),
        "prolific_outcome": request.session.pop(PROLIFIC_OUTCOME_KEY, None),
        "message": request.session.pop("dashboard_message", None),
        "actions": lifecycle.study_actions(study=study),
        "events": lifecycle.study_events(study=study),
        "shortcut_audit": launch.study_shortcut_audit(study=study),
        "precompute_job": precompute_job,
        "precompute_stalled": study_precompute_stalled(job=precompute_job),
        "rules": [
            {"name": name, "value": value, "description": EXCLUSION_RULES[name][1]}
            for name, value in study.exclusion_rules.items()
            if name in EXCLUSION_RULES
        ],
    }
    return render(request, "researcher/study_dashboard.html", context)


def _analysis_options(request: HttpRequest, study: Study) -> AnalysisOptions:
    try:
        return study_analysis_options(study=study, params=request.GET)
    except ValueError as error:
        raise BadRequest(str(error)) from error


# matplotlib's SVG styles its shapes with style attributes and a <style> element; the plot
# holds no script, and a document of its own may use its own inline styles.
ANALYSIS_PLOT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


@researcher_required
def study_analysis_plot(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    study = _visible_study(request, slug)
    options = _analysis_options(request, study)
    svg = dashboard.study_analysis_plot(study=study, name=name, options=options)
    if svg is None:
        raise Http404("No such plot, or nothing to analyse, or accuracy is hidden.")
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Content-Security-Policy"] = ANALYSIS_PLOT_POLICY
    response["Cache-Control"] = "private, no-cache"
    return response


@researcher_required
@require_POST
def study_launch(request: HttpRequest, slug: str) -> HttpResponse:
    study = _owned_study(request, slug)
    form = LaunchForm(request.POST)
    if not form.is_valid():
        return _bad_request(request, study, form_errors_message(form))
    try:
        lifecycle.study_change(
            study=study,
            action=lifecycle.launch_action(study=study, status=form.cleaned_data["status"]),
            actor=request.user,
            shortcut_override_reason=form.cleaned_data["shortcut_override_reason"],
        )
    except StudyConfigError as error:
        request.session["launch_error"] = str(error)
    return redirect("researcher-study", slug=study.slug)


@researcher_required
@require_POST
def study_show_accuracy(request: HttpRequest, slug: str) -> HttpResponse:
    study = _owned_study(request, slug)
    form = ShowAccuracyForm(request.POST)
    if not form.is_valid():
        return _bad_request(request, study, form_errors_message(form))
    study_set_show_accuracy(study=study, show=form.cleaned_data["show"] == "yes")
    return redirect("researcher-study", slug=study.slug)


def _bad_request(request: HttpRequest, study: Study, message: str) -> HttpResponse:
    context = {"study": study, "message": message}
    return render(request, "researcher/bad_request.html", context, status=400)


# What the researcher pastes into Prolific: Prolific fills in the placeholders per participant.
PROLIFIC_URL_PARAMETERS = (
    "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
)


def _entry_url_for_platform(request: HttpRequest, study: Study) -> str:
    url = request.build_absolute_uri(reverse("study:entry", args=[study.slug]))
    if study.platform == Study.Platform.PROLIFIC:
        url += PROLIFIC_URL_PARAMETERS
    return url


class _Echo:
    def write(self, value: str) -> str:
        return value


@researcher_required
def study_export_csv(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    study = _visible_study(request, slug)
    participants_apply_exclusions(study=study)
    writer = csv.DictWriter(_Echo(), fieldnames=EXPORT_COLUMNS)
    rows = study_export_rows(study=study)
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in _with_header(rows)), content_type="text/csv"
    )
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-responses.csv"'
    return response


def _with_header(rows):
    yield dict(zip(EXPORT_COLUMNS, EXPORT_COLUMNS, strict=True))
    yield from rows


@researcher_required
def study_export_zip(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    study = _visible_study(request, slug)
    participants_apply_exclusions(study=study)
    response = StreamingHttpResponse(
        exports.study_export_zip(study=study), content_type="application/zip"
    )
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-export.zip"'
    return response


@researcher_required
@require_POST
def study_reconcile_prolific(request: HttpRequest, slug: str) -> HttpResponse:
    study = _visible_study(request, slug)
    form = ProlificSubmissionsForm(request.POST, request.FILES)
    context = {"study": study}
    if not form.is_valid():
        context["error"] = form_errors_message(form)
        return render(request, "researcher/reconciliation.html", context, status=400)
    upload = form.cleaned_data["submissions"]
    try:
        text = io.TextIOWrapper(upload.file, encoding="utf-8-sig", newline="")
        submissions = prolific_submissions_read(text)
    except (ProlificFileError, UnicodeDecodeError) as error:
        context["error"] = f"{upload.name}: {error}"
        return render(request, "researcher/reconciliation.html", context, status=400)
    reconciliation = prolific_reconcile(study=study, submissions=submissions)
    context.update(
        reconciliation=reconciliation,
        review_state=review_state_sign(study=study, reconciliation=reconciliation),
        is_owner=dashboard.study_is_owned_by(study=study, user=request.user),
        credential=prolific_token_hint(user=request.user),
        rejection_categories=REJECTION_CATEGORIES,
        rejection_message_min=REJECTION_MESSAGE_MIN,
    )
    return render(request, "researcher/reconciliation.html", context)
