"""Participant pages. Every GET shows where the participant should be; every POST advances
the server-side pointer and redirects, so Back, reload and double-clicks lose nothing.

These views opt out of the request-wide transaction (ATOMIC_REQUESTS): each write they make
is one service call with its own transaction, or one conditional update, so a request cut
short (a lost database) still saves all of a step or none of it, and the hottest pages of
the site skip the BEGIN, COMMIT and savepoints that would wrap their reads.
"""

from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from explain_engine.services.explanations import explanation_comparison_png
from study import platforms
from study.design.frozen import ParticipantAssignment
from study.design.preparation import study_being_prepared
from study.flow import selectors
from study.flow.entry import (
    EntryRefused,
    entry_rate_limited,
    participant_enter,
    participants_expire,
)
from study.flow.pages import PAGES
from study.models import Participant, Study

PROLIFIC_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
# Set on the entry link by static/js/entry.js: the browser runs the study's scripts.
JS_PARAM = "js"
BEING_PREPARED_RETRY_SECONDS = 15


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


def _being_prepared(request: HttpRequest) -> HttpResponse:
    response = render(
        request,
        "study/being_prepared.html",
        {"retry_after": BEING_PREPARED_RETRY_SECONDS},
        status=503,
    )
    response["Retry-After"] = str(BEING_PREPARED_RETRY_SECONDS)
    return response


def _refusal(request: HttpRequest, study: Study, error: EntryRefused) -> HttpResponse:
    return render(
        request, "study/refused.html", {"study": study, "reason": error.reason}, status=error.status
    )


@transaction.non_atomic_requests
@never_cache
@require_http_methods(["GET"])
def entry(request: HttpRequest, slug: str) -> HttpResponse:
    study = Study.objects.filter(slug=slug).first()
    if (study is None or study.status == Study.Status.DRAFT) and study_being_prepared(slug=slug):
        return _framable(_being_prepared(request))
    if study is None:
        raise Http404("No such study.")
    try:
        arrival = platforms.arrival_from_query(study.platform, request.GET)
    except platforms.ArrivalError as error:
        return _framable(_refusal(request, study, EntryRefused(str(error), status=400)))
    if arrival.is_preview:
        # MTurk shows the page before the worker accepts: describe, create nothing.
        return _framable(render(request, "study/mturk_preview.html", {"study": study}))
    if request.GET.get(JS_PARAM) != "1":
        # Only a browser that runs the study's scripts comes back with the flag; without
        # them the trials can be neither timed nor answered, so no one is admitted and no
        # place is taken until it does.
        return _framable(render(request, "study/enable_javascript.html", {"study": study}))
    if entry_rate_limited(request):
        refusal = EntryRefused(
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
        participant = participant_enter(
            study=study,
            worker_id=arrival.worker_id,
            platform_study_id=arrival.platform_study_id,
            session_id=arrival.session_id,
            submit_to=arrival.submit_to,
        )
    except EntryRefused as error:
        return _framable(_refusal(request, study, error))
    if study.platform == Study.Platform.OPEN:
        request.session[_session_key(study)] = participant.code
    return redirect("study:participant", slug=slug, code=participant.code)


_framable = platforms.mturk_framable


def _study_page(response: HttpResponse, study: Study) -> HttpResponse:
    """Every page of an MTurk study, error pages included, may be shown in MTurk's frame;
    other studies' pages may not be framed at all."""
    return _framable(response) if study.platform == Study.Platform.MTURK else response


# No CSRF token: the unguessable code in the URL is the participant's credential, so a
# forged request needs it anyway, and MTurk's cross-site iframe does not send the cookie.
@transaction.non_atomic_requests
@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def participant_page(request: HttpRequest, slug: str, code: str) -> HttpResponse:
    participant = _participant_or_404(slug, code)
    if participant.preview and not selectors.preview_allowed(
        study=participant.study, user=request.user
    ):
        # A preview's link is the researcher's own: to anyone else there is nothing here.
        raise Http404("No such participant.")
    if participants_expire(study=participant.study, participant=participant):
        participant.refresh_from_db()
    page = PAGES[participant.page]
    if request.method == "GET":
        return _study_page(page.show(request, participant), participant.study)
    if request.POST.get("page") != participant.page:
        # A stale form (Back, second tab, double-click): show where they really are.
        return redirect("study:participant", slug=slug, code=code)
    refused = page.submit(request, participant)  # a 400 page or the platform's URL
    if refused is not None:
        return _study_page(refused, participant.study)
    return redirect("study:participant", slug=slug, code=code)


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
    """The A/B stimulus of a comparative question, read from the pictures stored with the
    item's SAG search."""
    assignment = _assignment_or_404(slug, code)
    comparison = selectors.participant_comparison(assignment=assignment, code=code, token=token)
    if comparison is None:
        raise Http404("No such comparison.")
    png = explanation_comparison_png(
        explanation=comparison.explanation, pair_index=comparison.pair_index
    )
    response = HttpResponse(png, "image/png")
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
