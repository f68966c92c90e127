"""Participant pages. Every GET shows where the participant should be; every POST advances
the server-side pointer and redirects, so Back, reload and double-clicks lose nothing.

These views opt out of the request-wide transaction (ATOMIC_REQUESTS): each write they make
is one service call with its own transaction, or one conditional update, so a request cut
short (a lost database) still saves all of a step or none of it, and the hottest pages of
the site skip the BEGIN, COMMIT and savepoints that would wrap their reads.
"""

from django.conf import settings
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from config.security import client_address, rate_limit_exceeded
from explain_engine.services.explanations import explanation_comparison_file
from study import platforms, selectors, services
from study.answer_forms import (
    ComprehensionForm,
    ConsentForm,
    TrialAnswerForm,
    form_errors_message,
)
from study.forms import QuestionnaireForm
from study.frozen import ParticipantAssignment
from study.models import Participant, Study

PROLIFIC_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")


def _session_key(study: Study) -> str:
    return f"participant:{study.slug}"


def _participant_or_404(slug: str, code: str) -> Participant:
    participant = selectors.participant_by_code(slug=slug, code=code)
    if participant is None:
        raise Http404("No such participant.")
    return participant


def _assignment_or_404(slug: str, code: str) -> ParticipantAssignment:
    assignment = selectors.participant_assignment_by_code(slug=slug, code=code)
    if assignment is None:
        raise Http404("No such participant.")
    return assignment


def _refusal(request: HttpRequest, study: Study, error: services.EntryRefused) -> HttpResponse:
    return render(
        request, "study/refused.html", {"study": study, "reason": error.reason}, status=error.status
    )


@transaction.non_atomic_requests
@never_cache
@require_http_methods(["GET"])
def entry(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    if rate_limit_exceeded(
        "entry",
        client_address(request),
        limit=settings.EXPLAINSTUDY_ENTRY_RATE_LIMIT,
        window_seconds=60,
    ):
        refusal = services.EntryRefused(
            "Too many people started this study from your network in the last minute. "
            "Please wait a minute and open the link again.",
            status=429,
        )
        return _framable(_refusal(request, study, refusal))
    try:
        arrival = platforms.arrival_from_query(study.platform, request.GET)
    except platforms.ArrivalError as error:
        return _framable(_refusal(request, study, services.EntryRefused(str(error), status=400)))
    if arrival.is_preview:
        # MTurk shows the page before the worker accepts: describe, create nothing.
        return _framable(render(request, "study/mturk_preview.html", {"study": study}))
    if study.platform == Study.Platform.OPEN and not arrival.worker_id:
        # An open link has no id; the session remembers who this browser is.
        code = request.session.get(_session_key(study))
        if code and Participant.objects.filter(study=study, code=code).exists():
            return redirect("study:participant", slug=slug, code=code)
    try:
        participant = services.participant_enter(
            study=study,
            worker_id=arrival.worker_id,
            platform_study_id=arrival.platform_study_id,
            session_id=arrival.session_id,
            submit_to=arrival.submit_to,
        )
    except services.EntryRefused as error:
        return _framable(_refusal(request, study, error))
    if study.platform == Study.Platform.OPEN:
        request.session[_session_key(study)] = participant.code
    return redirect("study:participant", slug=slug, code=participant.code)


_framable = platforms.mturk_framable


def _study_page(response: HttpResponse, study: Study) -> HttpResponse:
    """Every page of an MTurk study, error pages included, may be shown in MTurk's frame;
    other studies' pages may not be framed at all."""
    return _framable(response) if study.platform == Study.Platform.MTURK else response


def _render_page(request: HttpRequest, participant: Participant) -> HttpResponse:
    study = participant.study
    context = {"study": study, "participant": participant}
    page = participant.page
    if page in (services.PAGE_INSTRUCTIONS, services.PAGE_TRIALS):
        context["gallery"] = selectors.reference_gallery(study=study)
    if page == services.PAGE_TRIALS:
        participant = services.trial_mark_shown(participant=participant)
        context["trial"] = selectors.trial_current(participant=participant)
        context["confidence_scale"] = services.CONFIDENCE_SCALE
    elif page == services.PAGE_QUESTIONNAIRE:
        context["form"] = _questionnaire_form(participant)
    elif page == services.PAGE_FEEDBACK:
        context["feedback"] = selectors.feedback_for(participant=participant)
    elif page in (services.PAGE_COMPLETE, services.PAGE_DECLINED, services.PAGE_SCREENED_OUT):
        context["completion_url"] = services.completion_url(participant=participant)
        context["mturk_submit"] = selectors.mturk_submission_for(participant=participant)
    return _study_page(render(request, f"study/page_{page}.html", context), study)


# No CSRF token: the unguessable code in the URL is the participant's credential, so a
# forged request needs it anyway, and MTurk's cross-site iframe does not send the cookie.
@transaction.non_atomic_requests
@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def participant_page(request: HttpRequest, slug: str, code: str) -> HttpResponse:
    participant = _participant_or_404(slug, code)
    if services.participants_expire(study=participant.study, participant=participant):
        participant.refresh_from_db()
    if request.method == "GET":
        return _render_page(request, participant)

    submitted_page = request.POST.get("page")
    if submitted_page != participant.page:
        # A stale form (Back, second tab, double-click): show where they really are.
        return redirect("study:participant", slug=slug, code=code)
    if submitted_page == services.PAGE_CONSENT:
        form = ConsentForm(request.POST)
        if not form.is_valid():
            return _bad_request(request, participant, form_errors_message(form))
        participant = services.participant_consent(
            participant=participant, agreed=form.cleaned_data["consent"] == "yes"
        )
        destination = services.completion_url(participant=participant)
        if participant.status == Participant.Status.DECLINED and destination:
            return redirect(destination)
    elif submitted_page == services.PAGE_FEEDBACK:
        services.feedback_acknowledge(participant=participant)
    elif submitted_page == services.PAGE_COMPREHENSION:
        form = ComprehensionForm(request.POST, questions=participant.study.comprehension_questions)
        if not form.is_valid():
            return _bad_request(request, participant, "please answer every question")
        participant = services.comprehension_submit(participant=participant, answers=form.answers())
        destination = services.completion_url(participant=participant)
        if participant.status == Participant.Status.SCREENED_OUT and destination:
            return redirect(destination)
    elif submitted_page == services.PAGE_INSTRUCTIONS:
        services.participant_finish_instructions(participant=participant)
    elif submitted_page == services.PAGE_TRIALS:
        form = TrialAnswerForm(request.POST)
        if not form.is_valid():
            return _bad_request(request, participant, form_errors_message(form))
        try:
            services.response_record(participant=participant, **form.cleaned_data)
        except services.InvalidAnswer as error:
            return _bad_request(request, participant, str(error))
    elif submitted_page == services.PAGE_QUESTIONNAIRE:
        form = _questionnaire_form(participant, data=request.POST)
        if not form.is_valid():
            context = {"study": participant.study, "participant": participant, "form": form}
            response = render(request, "study/page_questionnaire.html", context, status=400)
            return _study_page(response, participant.study)
        participant = services.questionnaire_submit(
            participant=participant, answers=form.cleaned_data
        )
        destination = services.completion_url(participant=participant)
        # With a debrief, the completion page shows it with the link back to the platform.
        if (
            participant.page == services.PAGE_COMPLETE
            and destination
            and not participant.study.debrief_text
        ):
            return redirect(destination)
    return redirect("study:participant", slug=slug, code=code)


def _bad_request(request: HttpRequest, participant: Participant, message: str) -> HttpResponse:
    context = {"study": participant.study, "participant": participant, "message": message}
    response = render(request, "study/bad_request.html", context, status=400)
    return _study_page(response, participant.study)


def _questionnaire_form(participant: Participant, data=None) -> QuestionnaireForm:
    shows_explanations = bool(participant.condition.explanation_method)
    return QuestionnaireForm(data, shows_explanations=shows_explanations)


@transaction.non_atomic_requests
@require_http_methods(["GET"])
def participant_image(request: HttpRequest, slug: str, code: str, image_id) -> FileResponse:
    assignment = _assignment_or_404(slug, code)
    image = selectors.participant_image(assignment=assignment, public_id=image_id)
    if image is None:
        raise Http404("No such image.")
    return _private_file(image.file)


@transaction.non_atomic_requests
@require_http_methods(["GET"])
def participant_explanation(
    request: HttpRequest, slug: str, code: str, explanation_id
) -> FileResponse:
    assignment = _assignment_or_404(slug, code)
    explanation = selectors.participant_explanation(assignment=assignment, public_id=explanation_id)
    if explanation is None:
        raise Http404("No such explanation.")
    return _private_file(explanation.overlay)


@transaction.non_atomic_requests
@require_http_methods(["GET"])
def participant_comparison(
    request: HttpRequest, slug: str, code: str, explanation_id
) -> HttpResponse:
    """The A/B stimulus of a comparative question, drawn from the item's SAG search."""
    assignment = _assignment_or_404(slug, code)
    explanation = selectors.participant_comparison(assignment=assignment, public_id=explanation_id)
    if explanation is None:
        raise Http404("No such comparison.")
    return _private_file(explanation_comparison_file(explanation=explanation))


def _private_file(field_file) -> FileResponse:
    # A handle of its own: the field file belongs to the study's snapshot, which other
    # requests share, and reopening it would rewind a file another response is sending.
    response = FileResponse(field_file.storage.open(field_file.name, "rb"))
    # The stored name is random but still not the participant's business.
    response["Content-Disposition"] = "inline"
    response["Cache-Control"] = "private, max-age=3600"
    return response
