"""Participant pages. Every GET shows where the participant should be; every POST advances
the server-side pointer and redirects, so Back, reload and double-clicks lose nothing.

These views opt out of the request-wide transaction (ATOMIC_REQUESTS): each write they make
is one service call with its own transaction, or one conditional update, so a request cut
short (a lost database) still saves all of a step or none of it, and the hottest pages of
the site skip the BEGIN, COMMIT and savepoints that would wrap their reads.
"""

import json

from django.conf import settings
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from config.security import client_address, rate_limit_exceeded
from study import platforms, selectors, services
from study.condition_texts import explanation_texts
from study.forms import QuestionnaireForm
from study.frozen import ParticipantAssignment
from study.models import Participant, Study

PROLIFIC_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
# Set on the entry link by static/js/entry.js: the browser runs the study's scripts.
JS_PARAM = "js"


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
    try:
        arrival = platforms.arrival_from_query(study.platform, request.GET)
    except platforms.ArrivalError as error:
        return _framable(_refusal(request, study, services.EntryRefused(str(error), status=400)))
    if arrival.is_preview:
        # MTurk shows the page before the worker accepts: describe, create nothing.
        return _framable(render(request, "study/mturk_preview.html", {"study": study}))
    if request.GET.get(JS_PARAM) != "1":
        # Only a browser that runs the study's scripts comes back with the flag; without
        # them the trials can be neither timed nor answered, so no one is admitted and no
        # place is taken until it does.
        return _framable(render(request, "study/enable_javascript.html", {"study": study}))
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


def _framable(response: HttpResponse) -> HttpResponse:
    """Let MTurk's worker site show the page in its iframe, and no one else."""
    response.xframe_options_exempt = True
    response.csp_frame_ancestors = platforms.MTURK_FRAME_ANCESTORS
    return response


def _render_page(request: HttpRequest, participant: Participant) -> HttpResponse:
    study = participant.study
    context = {"study": study, "participant": participant}
    page = participant.page
    if page in (services.PAGE_INSTRUCTIONS, services.PAGE_TRIALS):
        context["gallery"] = selectors.reference_gallery(study=study)
    if page == services.PAGE_INSTRUCTIONS:
        context["explanation_texts"] = explanation_texts(participant.condition.explanation_method)
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
    response = render(request, f"study/page_{page}.html", context)
    return _framable(response) if study.platform == Study.Platform.MTURK else response


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
        participant = services.participant_consent(
            participant=participant, agreed=request.POST.get("consent") == "yes"
        )
        destination = services.completion_url(participant=participant)
        if participant.status == Participant.Status.DECLINED and destination:
            return redirect(destination)
    elif submitted_page == services.PAGE_FEEDBACK:
        services.feedback_acknowledge(participant=participant)
    elif submitted_page == services.PAGE_COMPREHENSION:
        questions = participant.study.comprehension_questions
        try:
            answers = [int(request.POST[f"q{index}"]) for index in range(len(questions))]
        except (KeyError, ValueError):
            return _bad_request(request, participant, "please answer every question")
        participant = services.comprehension_submit(participant=participant, answers=answers)
        destination = services.completion_url(participant=participant)
        if participant.status == Participant.Status.SCREENED_OUT and destination:
            return redirect(destination)
    elif submitted_page == services.PAGE_INSTRUCTIONS:
        services.participant_finish_instructions(participant=participant)
    elif submitted_page == services.PAGE_TRIALS:
        try:
            services.response_record(
                participant=participant,
                trial_position=int(request.POST["trial_position"]),
                answer=request.POST["answer"],
                confidence=_optional_int(request.POST.get("confidence")),
                client_response_ms=_optional_int(request.POST.get("client_response_ms")),
                viewport=request.POST.get("viewport", ""),
                interactions=json.loads(request.POST.get("interactions") or "[]"),
                stimulus_missing=_optional_flag(request.POST.get("stimulus_missing")),
            )
        except (KeyError, ValueError) as error:
            message = f"missing field {error}" if isinstance(error, KeyError) else str(error)
            return _bad_request(request, participant, message)
    elif submitted_page == services.PAGE_QUESTIONNAIRE:
        form = _questionnaire_form(participant, data=request.POST)
        if not form.is_valid():
            context = {"study": participant.study, "participant": participant, "form": form}
            return render(request, "study/page_questionnaire.html", context, status=400)
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
    return render(request, "study/bad_request.html", context, status=400)


def _questionnaire_form(participant: Participant, data=None) -> QuestionnaireForm:
    return QuestionnaireForm(data, explanation_method=participant.condition.explanation_method)


def _optional_flag(value: str | None) -> bool:
    if value not in (None, "", "0", "1"):
        raise ValueError("stimulus_missing must be 0 or 1")
    return value == "1"


def _optional_int(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    return int(float(value))


@transaction.non_atomic_requests
@require_http_methods(["GET"])
def participant_image(request: HttpRequest, slug: str, code: str, token: str) -> FileResponse:
    assignment = _assignment_or_404(slug, code)
    image = selectors.participant_image(assignment=assignment, code=code, token=token)
    if image is None:
        raise Http404("No such image.")
    return _private_file(image.file)


@transaction.non_atomic_requests
@require_http_methods(["GET"])
def participant_explanation(request: HttpRequest, slug: str, code: str, token: str) -> FileResponse:
    assignment = _assignment_or_404(slug, code)
    explanation = selectors.participant_explanation(assignment=assignment, code=code, token=token)
    if explanation is None:
        raise Http404("No such explanation.")
    return _private_file(explanation.overlay)


@transaction.non_atomic_requests
@require_http_methods(["GET"])
def participant_comparison(request: HttpRequest, slug: str, code: str, token: str) -> HttpResponse:
    """The A/B stimulus of a comparative question, drawn from the item's SAG search."""
    assignment = _assignment_or_404(slug, code)
    explanation = selectors.participant_comparison(assignment=assignment, code=code, token=token)
    if explanation is None:
        raise Http404("No such comparison.")
    response = HttpResponse(services.comparison_png(explanation=explanation), "image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _private_file(field_file) -> FileResponse:
    # A handle of its own: the field file belongs to the study's snapshot, which other
    # requests share, and reopening it would rewind a file another response is sending.
    response = FileResponse(field_file.storage.open(field_file.name, "rb"))
    # The stored name is random but still not the participant's business.
    response["Content-Disposition"] = "inline"
    response["Cache-Control"] = "private, max-age=3600"
    return response
