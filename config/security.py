"""Response headers that every page gets, and the page a lost database gives.

The content security policy allows only this site's own scripts, styles and images (the
templates have no inline script or style), so even a researcher-written text that slipped
past sanitizing could not run script. Forms may post only here and to the crowd platforms'
completion endpoints, which the platforms' redirects and MTurk's submit form need.
"""

from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

FORM_TARGETS = (
    "https://app.prolific.com",
    "https://www.mturk.com",
    "https://workersandbox.mturk.com",
)


def content_security_policy(frame_ancestors: str) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            "img-src 'self' data:",
            "script-src 'self'",
            "style-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            f"form-action 'self' {' '.join(FORM_TARGETS)}",
            f"frame-ancestors {frame_ancestors}",
        ]
    )


class ContentSecurityPolicyMiddleware:
    """Sets the policy on every response; a view that may be framed (MTurk's HIT pages) sets
    `response.csp_frame_ancestors` to the hosts allowed to frame it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        frame_ancestors = getattr(response, "csp_frame_ancestors", "'none'")
        response.setdefault("Content-Security-Policy", content_security_policy(frame_ancestors))
        return response


class DatabaseUnavailableMiddleware:
    """A lost or restarting database gives a 503 that says to retry, not a server error.

    The step the request was taking was rolled back (the request's transaction under
    ATOMIC_REQUESTS; a participant view's service transaction), so none of it was saved,
    and Django drops the broken connection when the request ends; the next request connects
    afresh. A participant reloads and finds the same question, with every earlier answer kept.
    """

    RETRY_AFTER_SECONDS = 5
    RESEARCHER_PREFIXES = ("/researcher/", "/admin/")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        # A researcher is told what happened to their action, not a participant's reassurance.
        template = (
            "unavailable_researcher.html"
            if request.path.startswith(self.RESEARCHER_PREFIXES)
            else "unavailable.html"
        )
        response = HttpResponse(
            render_to_string(template, {"retry_after": self.RETRY_AFTER_SECONDS}),
            status=503,
        )
        response["Retry-After"] = str(self.RETRY_AFTER_SECONDS)
        return response
