"""Error pages in plain words for participants (DEBUG off): no framework wording, nothing
about the server. A participant URL's error page keeps the participant pages' frame policy
(MTurk's iframe may show it), since the worker reads it inside the HIT.
"""

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from study.platforms import mturk_framable

PARTICIPANT_PREFIX = "/s/"


def for_participants(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """An error page under the participant URLs, whose study (and so its platform) may be
    unknown or unreachable here, may be framed by MTurk: it carries no form or button to
    trick anyone into."""
    if request.path.startswith(PARTICIPANT_PREFIX):
        return mturk_framable(response)
    return response


def bad_request(request, exception):
    return for_participants(request, defaults.bad_request(request, exception))


def permission_denied(request, exception):
    return for_participants(request, defaults.permission_denied(request, exception))


def page_not_found(request, exception):
    return for_participants(request, defaults.page_not_found(request, exception))


def server_error(request):
    return for_participants(request, defaults.server_error(request))
