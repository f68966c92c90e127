"""What each crowd platform puts in the entry URL, and where a finished worker goes.

Prolific appends PROLIFIC_PID, STUDY_ID and SESSION_ID. MTurk's ExternalQuestion appends
workerId, assignmentId, hitId and turkSubmitTo, and shows the page once before acceptance as
a preview with assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE and no workerId.
"""

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

MTURK_PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"
# The form that ends a HIT is posted to turkSubmitTo; only Amazon's hosts are accepted, so a
# crafted link cannot make the study post a worker's data elsewhere.
MTURK_SUBMIT_HOSTS = ("www.mturk.com", "workersandbox.mturk.com")
MTURK_FRAME_ANCESTORS = "https://www.mturk.com https://workersandbox.mturk.com"


def mturk_framable(response):
    """Let MTurk's worker site show `response` in its iframe, and no one else (the content
    security middleware writes the frame-ancestors policy; X-Frame-Options is left off)."""
    response.xframe_options_exempt = True
    response.csp_frame_ancestors = MTURK_FRAME_ANCESTORS
    return response


class ArrivalError(ValueError):
    """An entry URL that does not carry what the platform must send."""


@dataclass(frozen=True)
class Arrival:
    worker_id: str = ""
    platform_study_id: str = ""
    session_id: str = ""  # Prolific SESSION_ID or MTurk assignmentId
    submit_to: str = ""  # MTurk turkSubmitTo
    is_preview: bool = False


def _param(query, name: str) -> str:
    # No platform id holds a NUL; PostgreSQL text cannot store one (a forged query gave a 500)
    return query.get(name, "").replace("\x00", "").strip()[:200]


def arrival_from_query(platform: str, query) -> Arrival:
    if platform == "prolific":
        return Arrival(
            worker_id=_param(query, "PROLIFIC_PID"),
            platform_study_id=_param(query, "STUDY_ID"),
            session_id=_param(query, "SESSION_ID"),
        )
    if platform == "mturk":
        assignment_id = _param(query, "assignmentId")
        if assignment_id == MTURK_PREVIEW_ASSIGNMENT:
            return Arrival(is_preview=True)
        arrival = Arrival(
            worker_id=_param(query, "workerId"),
            platform_study_id=_param(query, "hitId"),
            session_id=assignment_id,
            submit_to=_param(query, "turkSubmitTo"),
        )
        if arrival.worker_id and not (arrival.session_id and arrival.submit_to):
            raise ArrivalError("the MTurk link lacks assignmentId or turkSubmitTo")
        if arrival.submit_to:
            parts = urlsplit(arrival.submit_to)
            if parts.scheme != "https" or parts.hostname not in MTURK_SUBMIT_HOSTS:
                raise ArrivalError("turkSubmitTo is not an MTurk address")
        return arrival
    return Arrival(worker_id=_param(query, "PROLIFIC_PID"))


def mturk_submit_url(submit_to: str) -> str:
    return submit_to.rstrip("/") + "/mturk/externalSubmit"


def platform_pseudonym(*, platform: str, worker_id: str) -> str:
    """A keyed hash of the platform's worker id: what the database keeps instead of it."""
    key = settings.PSEUDONYM_KEY.encode()
    return hmac.new(key, f"{platform}:{worker_id}".encode(), hashlib.sha256).hexdigest()
