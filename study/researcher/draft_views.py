"""Create a study from a study file on the web, edit or delete a draft, export its file.
The file is checked by the code `create_study --from FILE` runs (StudySpec)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from study.design.creation import study_warnings
from study.design.study_files import StudyFileError, study_create_from_text
from study.models import Study
from study.researcher import dashboard, lifecycle
from study.researcher.forms import DeleteDraftForm, StudyFileForm
from study.researcher.run_views import form_refused, owned_study

researcher_required = login_required(login_url="researcher-login")
EXAMPLE_HINT = "The schema is that of examples/study.toml; every key is checked."


def _created(request: HttpRequest, study: Study) -> HttpResponse:
    request.session["notices"] = study_warnings(study=study)
    return redirect("researcher-study", slug=study.slug)


@researcher_required
def study_new(request: HttpRequest) -> HttpResponse:
    form = StudyFileForm(request.POST or None, request.FILES or None)
    context = {"form": form, "study": None, "hint": EXAMPLE_HINT}
    if request.method == "POST" and form.is_valid():
        try:
            study = study_create_from_text(text=form.cleaned_data["text"], owner=request.user)
        except StudyFileError as error:
            context["error"] = str(error)
            return render(request, "researcher/study_file.html", context, status=400)
        return _created(request, study)
    status = 400 if request.method == "POST" else 200
    return render(request, "researcher/study_file.html", context, status=status)


@researcher_required
def study_edit(request: HttpRequest, slug: str) -> HttpResponse:
    study = owned_study(request, slug)
    initial = {"text": study.source_toml}
    form = StudyFileForm(request.POST or None, request.FILES or None, initial=initial)
    context = {"form": form, "study": study, "hint": EXAMPLE_HINT}
    if study.status != Study.Status.DRAFT:
        context["error"] = f"only a draft can be edited; {study.slug!r} is {study.status}"
        return render(request, "researcher/study_file.html", context, status=409)
    if request.method == "POST" and form.is_valid():
        try:
            study = lifecycle.study_draft_replace(
                study=study, text=form.cleaned_data["text"], actor=request.user
            )
        except (StudyFileError, lifecycle.LifecycleError) as error:
            context["error"] = str(error)
            return render(request, "researcher/study_file.html", context, status=400)
        return _created(request, study)
    status = 400 if request.method == "POST" else 200
    return render(request, "researcher/study_file.html", context, status=status)


@researcher_required
def study_file_download(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(dashboard.studies_visible_to(user=request.user), slug=slug)
    if not study.source_toml:
        raise Http404("This study was not created from a study file.")
    response = HttpResponse(study.source_toml, content_type="application/toml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{study.slug}.toml"'
    return response


@researcher_required
@require_POST
def study_delete(request: HttpRequest, slug: str) -> HttpResponse:
    study = owned_study(request, slug)
    form = DeleteDraftForm(request.POST, study=study)
    if not form.is_valid():
        return form_refused(request, study, form)
    try:
        lifecycle.study_draft_delete(study=study)
    except lifecycle.LifecycleError as error:
        request.session["launch_error"] = str(error)
        return redirect("researcher-study", slug=study.slug)
    return redirect("researcher-home")
