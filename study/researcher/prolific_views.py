"""Prolific from the researcher's pages: the API token (entered here, stored encrypted, never
shown back), the reconciliation's approve list as a file, and approving and rejecting
submissions through Prolific's API (owners only; each call in the study's log)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from study.models import Study
from study.researcher.forms import (
    ProlificReviewForm,
    ProlificTokenForm,
    ProlificTransitionForm,
    form_errors_message,
)
from study.researcher.run_views import owned_study
from study.researcher.views import PROLIFIC_OUTCOME_KEY, _bad_request, _visible_study
from study.results.prolific_api import (
    prolific_submission_transition,
    prolific_submissions_approve,
)
from study.results.prolific_token import (
    ProlificTokenError,
    prolific_token_delete,
    prolific_token_hint,
    prolific_token_read,
    prolific_token_store,
)
from study.results.reconciliation import (
    ReviewStateError,
    approve_list_text,
    review_state_read,
)

researcher_required = login_required(login_url="researcher-login")


@sensitive_post_parameters("token")  # kept out of Django's error reports
@researcher_required
def prolific_token_page(request: HttpRequest) -> HttpResponse:
    form = ProlificTokenForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            prolific_token_store(user=request.user, token=form.cleaned_data["token"])
            request.session["prolific_token_saved"] = True
            return redirect("researcher-prolific-token")
        status = 400
    context = {
        "form": form,
        "credential": prolific_token_hint(user=request.user),
        "saved": request.session.pop("prolific_token_saved", False),
        "deleted": request.session.pop("prolific_token_deleted", False),
    }
    return render(request, "researcher/prolific_token.html", context, status=status)


@researcher_required
@require_POST
def prolific_token_remove(request: HttpRequest) -> HttpResponse:
    request.session["prolific_token_deleted"] = prolific_token_delete(user=request.user)
    return redirect("researcher-prolific-token")


def _review_state(request: HttpRequest, study: Study, form_class):
    form = form_class(request.POST)
    if not form.is_valid():
        return form, None, form_errors_message(form)
    try:
        state = review_state_read(study=study, signed=form.cleaned_data["state"])
    except ReviewStateError as error:
        return form, None, str(error)
    return form, state, ""


@researcher_required
@require_POST
def prolific_approve_list(request: HttpRequest, slug: str) -> HttpResponse:
    study = _visible_study(request, slug)
    _, state, error = _review_state(request, study, ProlificReviewForm)
    if state is None:
        return _bad_request(request, study, error)
    response = HttpResponse(
        approve_list_text(state.approve_participant_ids), content_type="text/plain; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-prolific-approve.txt"'
    return response


def _outcome(request: HttpRequest, study: Study, *, ok: bool, message: str) -> HttpResponse:
    request.session[PROLIFIC_OUTCOME_KEY] = {"ok": ok, "message": message}
    # Straight to the reconciliation section, where the outcome is shown.
    return redirect(reverse("researcher-study", args=[study.slug]) + "#prolific")


@researcher_required
@require_POST
@sensitive_variables("token")  # innermost: the frame that holds it
def prolific_approve(request: HttpRequest, slug: str) -> HttpResponse:
    study = owned_study(request, slug)
    _, state, error = _review_state(request, study, ProlificReviewForm)
    if state is None:
        return _bad_request(request, study, error)
    try:
        token = prolific_token_read(user=request.user)
    except ProlificTokenError as token_error:
        return _outcome(request, study, ok=False, message=f"Nothing approved: {token_error}.")
    outcome = prolific_submissions_approve(
        study=study,
        actor=request.user,
        token=token,
        submission_ids=state.approve_submission_ids,
        participant_ids=state.approve_participant_ids,
        prolific_study_ids=state.prolific_study_ids,
    )
    return _outcome(request, study, ok=outcome.ok, message=outcome.message)


@researcher_required
@require_POST
@sensitive_variables("token")  # innermost: the frame that holds it
def prolific_transition(request: HttpRequest, slug: str) -> HttpResponse:
    study = owned_study(request, slug)
    form, state, error = _review_state(request, study, ProlificTransitionForm)
    if state is None:
        return _bad_request(request, study, error)
    submission_id = form.cleaned_data["submission_id"]
    if submission_id not in state.reviewable:
        return _bad_request(
            request, study, f"Submission {submission_id} is not one this reconciliation found."
        )
    try:
        token = prolific_token_read(user=request.user)
    except ProlificTokenError as token_error:
        return _outcome(request, study, ok=False, message=f"Nothing sent: {token_error}.")
    outcome = prolific_submission_transition(
        study=study,
        actor=request.user,
        token=token,
        submission_id=submission_id,
        participant_id=state.reviewable[submission_id],
        action=form.cleaned_data["action"],
        message=form.cleaned_data["message"],
        rejection_category=form.cleaned_data["rejection_category"],
    )
    return _outcome(request, study, ok=outcome.ok, message=outcome.message)
