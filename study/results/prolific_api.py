"""Approving and rejecting Prolific submissions through Prolific's REST API, each call
recorded in the study's audit log (StudyEvent) with its outcome.

Request shapes, as Prolific's API reference documents them:

- Authentication, every request: header ``Authorization: Token <token>``
  ("Header authentication of the form Token <token>"; tokens carry full permission and do
  not expire). Bodies are JSON (``Content-Type: application/json``).
- Approve or reject one submission
  (https://docs.prolific.com/api-reference/submissions/transition-submission)::

      POST /api/v1/submissions/{id}/transition/
      {"action": "APPROVE"}
      {"action": "REJECT", "message": "<at least 100 characters>",
       "rejection_category": "<category>"}

  ``id`` is the submission id, "the ID we pass to the survey platform using %SESSION_ID%".
  ``message`` and ``rejection_category`` are required for REJECT; the message is sent to
  the participant and "must be at least 100 chars long". A transition cannot be undone; the
  endpoint is idempotent (the same request twice: the second is ignored).
  Categories (`REJECTION_CATEGORIES`): the enum ``SubmissionTransitionRejectionCategory``
  of a client generated from Prolific's OpenAPI specification (the reference page names
  the field an enum without listing its values in the text we could read).
- Bulk approve (https://docs.prolific.com/api-reference/submissions/bulk-approve-submissions)::

      POST /api/v1/submissions/bulk-approve/
      {"submission_ids": ["<id>", ...]}
      {"study_id": "<Prolific study id>", "participant_ids": ["<PROLIFIC_PID>", ...]}

  Two payload variants; Prolific "strongly recommend[s]" the submission ids, which need not
  be of one study. We send submission ids when every submission to approve has one, else
  the study id (the STUDY_ID the participants entered with) and their participant ids.
  The answer is "Bulk approve in progress".

The base URL is the setting EXPLAINSTUDY_PROLIFIC_API_URL (tests point it at a local
stand-in), the timeout EXPLAINSTUDY_PROLIFIC_API_TIMEOUT_S. A refusal (4xx, 5xx), a timeout
or no connection gives the researcher one line and changes nothing here but the audit entry.
"""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.views.decorators.debug import sensitive_variables

from study.models import Study, StudyEvent

TRANSITION_PATH = "/api/v1/submissions/{id}/transition/"
BULK_APPROVE_PATH = "/api/v1/submissions/bulk-approve/"

REJECTION_CATEGORIES = {
    "TOO_QUICKLY": "too quick",
    "TOO_SLOWLY": "too slow",
    "FAILED_INSTRUCTIONS": "did not follow the instructions",
    "FAILED_CHECK": "failed attention checks",
    "LOW_EFFORT": "low effort",
    "MALINGERING": "malingering",
    "NO_CODE": "no completion code",
    "BAD_CODE": "wrong completion code",
    "NO_DATA": "no data",
    "UNSUPP_DEVICE": "unsupported device",
    "INCOMP_LONGITUDINAL": "incomplete longitudinal study",
    "OTHER": "other",
}
REJECTION_MESSAGE_MIN = 100  # characters, as Prolific requires
ERROR_DETAIL_MAX = 200


class ProlificAPIError(Exception):
    """Prolific refused the request or did not answer; the message is one line."""

    def __init__(self, message: str, *, http_status: int | None = None):
        super().__init__(message)
        self.http_status = http_status


def _one_line(text: str) -> str:
    return " ".join(text.split())[:ERROR_DETAIL_MAX]


def _error_detail(text: str) -> str:
    """What Prolific says went wrong: the `detail` of its JSON error when there is one."""
    try:
        answer = json.loads(text)
    except ValueError:
        return _one_line(text)
    while isinstance(answer, dict):
        inner = answer.get("error", answer.get("detail"))
        if inner is None:
            break
        answer = inner
    return _one_line(answer if isinstance(answer, str) else json.dumps(answer))


@sensitive_variables("token", "request")
def prolific_post(*, token: str, path: str, body: dict) -> dict:
    """POST `body` as JSON to Prolific's `path`; its JSON answer (empty: {}).

    Raises ProlificAPIError for an HTTP error status, a timeout or no connection. The token
    goes only into the Authorization header, never into a message."""
    url = settings.EXPLAINSTUDY_PROLIFIC_API_URL.rstrip("/") + path
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(
            request, timeout=settings.EXPLAINSTUDY_PROLIFIC_API_TIMEOUT_S
        ) as answer:
            content = answer.read()
    except urllib.error.HTTPError as error:
        detail = _error_detail(error.read().decode("utf-8", "replace")) or error.reason
        raise ProlificAPIError(
            f"Prolific refused it ({error.code}): {detail}", http_status=error.code
        ) from None
    except TimeoutError:
        raise ProlificAPIError(
            f"Prolific did not answer within {settings.EXPLAINSTUDY_PROLIFIC_API_TIMEOUT_S:g} s"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, TimeoutError):
            raise ProlificAPIError(
                f"Prolific did not answer within {settings.EXPLAINSTUDY_PROLIFIC_API_TIMEOUT_S:g} s"
            ) from None
        raise ProlificAPIError(f"Prolific could not be reached: {_one_line(str(reason))}") from None
    try:
        return json.loads(content) if content.strip() else {}
    except ValueError:
        return {}


@dataclass(frozen=True)
class ReviewOutcome:
    ok: bool
    message: str


def _record(
    *,
    study: Study,
    action: str,
    actor: AbstractBaseUser,
    request: str,
    ids: dict,
    error: ProlificAPIError | None,
    reason: str = "",
    extra: dict | None = None,
) -> None:
    StudyEvent.objects.create(
        study=study,
        action=action,
        status_before=study.status,
        status_after=study.status,
        actor=actor,
        reason=reason[:500],
        detail={
            "request": request,
            "submissions": max(
                len(ids.get("submission_ids", [])), len(ids.get("participant_ids", []))
            ),
            **ids,
            **(extra or {}),
            "outcome": "failed" if error else "sent",
            "http_status": error.http_status if error else 200,
            **({"error": str(error)} if error else {}),
        },
    )


def prolific_submissions_approve(
    *,
    study: Study,
    actor: AbstractBaseUser,
    token: str,
    submission_ids: list[str],
    participant_ids: list[str],
    prolific_study_ids: list[str],
) -> ReviewOutcome:
    """Bulk-approve the reconciliation's approve list: by submission ids when each has
    one, else by Prolific study id and participant ids (see the module's docstring)."""
    if not participant_ids:
        return ReviewOutcome(False, "Nothing to approve.")
    if len(submission_ids) == len(participant_ids):
        body: dict = {"submission_ids": submission_ids}
    elif len(prolific_study_ids) == 1:
        body = {"study_id": prolific_study_ids[0], "participant_ids": participant_ids}
    else:
        return ReviewOutcome(
            False,
            "Some submissions have no submission id and the participants entered from "
            f"{len(prolific_study_ids)} Prolific studies: approve them on Prolific's site "
            "with the downloaded list.",
        )
    error = None
    try:
        prolific_post(token=token, path=BULK_APPROVE_PATH, body=body)
    except ProlificAPIError as caught:
        error = caught
    _record(
        study=study,
        action=StudyEvent.Action.PROLIFIC_APPROVE,
        actor=actor,
        request=f"POST {BULK_APPROVE_PATH}",
        ids=body,
        error=error,
    )
    if error:
        return ReviewOutcome(False, f"Nothing approved: {error}")
    return ReviewOutcome(
        True, f"Prolific is approving {len(participant_ids)} submission(s) (bulk approval sent)."
    )


def prolific_submission_transition(
    *,
    study: Study,
    actor: AbstractBaseUser,
    token: str,
    submission_id: str,
    participant_id: str,
    action: str,
    message: str = "",
    rejection_category: str = "",
) -> ReviewOutcome:
    """Approve (`action` "APPROVE") or reject ("REJECT", with the participant's message and
    a category) one submission."""
    if action == "REJECT":
        body = {"action": "REJECT", "message": message, "rejection_category": rejection_category}
    elif action == "APPROVE":
        body = {"action": "APPROVE"}
    else:
        raise ValueError(f"unknown transition {action!r}")
    path = TRANSITION_PATH.format(id=submission_id)
    error = None
    try:
        prolific_post(token=token, path=path, body=body)
    except ProlificAPIError as caught:
        error = caught
    rejecting = action == "REJECT"
    Action = StudyEvent.Action
    _record(
        study=study,
        action=Action.PROLIFIC_REJECT if rejecting else Action.PROLIFIC_APPROVE,
        actor=actor,
        request=f"POST {path}",
        ids={"submission_ids": [submission_id], "participant_ids": [participant_id]},
        error=error,
        reason=message if rejecting else "",
        extra={"rejection_category": rejection_category} if rejecting else None,
    )
    verb = "rejected" if rejecting else "approved"
    if error:
        return ReviewOutcome(False, f"Submission of {participant_id} not {verb}: {error}")
    return ReviewOutcome(True, f"Submission of {participant_id} {verb} on Prolific.")
