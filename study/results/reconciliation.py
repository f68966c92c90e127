"""Prolific reconciliation: Prolific's submissions export against our participants.

Lists what does not match (no or wrong completion code, a Prolific participant we never saw,
someone who completed here but not there, or the reverse) and the submissions to approve:
awaiting review on Prolific, completed here with the right code, and not excluded.

The approve list downloads as Prolific's bulk approval takes it: the participant ids
separated by commas, pasted into "Approve by upload" on the study's submissions page
(GoldenbergLab/lab-helper-codes, guides/prolific/README.md: "Write these ids to a text file,
separated by commas. Click on 'Approve by upload' and paste these ids into the text box");
the same ids are the `participant_ids` of the API's bulk approval
(https://docs.prolific.com/api-reference/submissions/bulk-approve-submissions).
"""

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core import signing

from study.models import Participant, PlatformIdentity, Study

# Header names as Prolific writes them; matched ignoring case, spaces and underscores.
REQUIRED_COLUMNS = ("Participant id", "Status", "Completion code")
SUBMISSION_ID_COLUMNS = ("Submission id", "Session id")

AWAITING_REVIEW = "AWAITING REVIEW"
APPROVED = "APPROVED"
SUBMITTED = (AWAITING_REVIEW, APPROVED)
NO_CODE = ("", "NOCODE")


class ProlificFileError(ValueError):
    """A file that is not a Prolific submissions export we can read."""


@dataclass(frozen=True)
class Submission:
    participant_id: str
    submission_id: str
    status: str
    completion_code: str


@dataclass(frozen=True)
class Mismatch:
    kind: str
    participant_id: str
    detail: str
    # Prolific's submission (blank: none, or the file has no submission id), and its status.
    submission_id: str = ""
    status: str = ""

    @property
    def reviewable(self) -> bool:
        """Awaiting review on Prolific with a known submission: the researcher may approve
        or reject it by hand."""
        return bool(self.submission_id) and self.status == AWAITING_REVIEW


@dataclass(frozen=True)
class Reconciliation:
    submissions: int
    matched: int
    mismatches: list[Mismatch]
    approve_participant_ids: list[str]
    approve_submission_ids: list[str]
    # Prolific's STUDY_ID of those to approve, as they entered (one, unless the study was
    # entered from several Prolific studies).
    prolific_study_ids: list[str] = field(default_factory=list)


def _key(name: str) -> str:
    return name.strip().lower().replace("_", " ")


def prolific_submissions_read(lines: Iterable[str]) -> list[Submission]:
    reader = csv.DictReader(lines)
    header = {_key(name): name for name in (reader.fieldnames or [])}
    missing = [name for name in REQUIRED_COLUMNS if _key(name) not in header]
    if missing:
        raise ProlificFileError(
            f"missing column(s) {', '.join(repr(m) for m in missing)}; is this Prolific's "
            "submissions export? (columns found: "
            f"{', '.join(reader.fieldnames or []) or 'none'})"
        )
    submission_column = next(
        (header[_key(name)] for name in SUBMISSION_ID_COLUMNS if _key(name) in header), None
    )
    submissions = []
    for row in reader:
        participant_id = (row[header[_key("Participant id")]] or "").strip()
        if not participant_id:
            continue
        submissions.append(
            Submission(
                participant_id=participant_id,
                submission_id=(row[submission_column] or "").strip() if submission_column else "",
                status=(row[header[_key("Status")]] or "").strip().upper().replace("_", " "),
                completion_code=(row[header[_key("Completion code")]] or "").strip(),
            )
        )
    return submissions


def prolific_reconcile(*, study: Study, submissions: list[Submission]) -> Reconciliation:
    """Compare Prolific's submissions with the study's participants: whom to approve, and
    each mismatch (a submission without a participant, a wrong code, a participant Prolific
    does not list).

    Longer than 60 lines: one pass over the submissions and one over the participants,
    filling the same lists; the cases read best side by side."""
    identities = {
        identity.worker_id: identity
        for identity in PlatformIdentity.objects.filter(participant__study=study).select_related(
            "participant"
        )
    }
    mismatches: list[Mismatch] = []
    approve_pids: list[str] = []
    approve_sids: list[str] = []
    prolific_study_ids: set[str] = set()
    matched = 0
    for submission in submissions:
        pid = submission.participant_id
        identity = identities.get(pid)
        if identity is None:
            mismatches.append(
                Mismatch(
                    "unknown participant",
                    pid,
                    f"{submission.status} on Prolific; never here",
                    submission.submission_id,
                    submission.status,
                )
            )
            continue
        # Prolific's submission id is the SESSION_ID it passed at entry.
        sid = submission.submission_id or identity.session_id
        matched += 1
        participant = identity.participant
        completed_here = participant.status == Participant.Status.COMPLETED
        if (
            submission.submission_id
            and identity.session_id
            and submission.submission_id != identity.session_id
        ):
            mismatches.append(
                Mismatch(
                    "other session",
                    pid,
                    f"submission {submission.submission_id} on Prolific, session "
                    f"{identity.session_id} here",
                )
            )
        if submission.status not in SUBMITTED:
            if completed_here:
                mismatches.append(
                    Mismatch("completed here, not there", pid, f"{submission.status} on Prolific")
                )
            continue
        code = submission.completion_code
        if code.upper() in NO_CODE:
            mismatches.append(
                Mismatch(
                    "no code",
                    pid,
                    f"submitted without a code; {participant.status} here",
                    sid,
                    submission.status,
                )
            )
            continue
        if code != study.completion_code:
            mismatches.append(
                Mismatch(
                    "wrong code",
                    pid,
                    f"code {code!r}; {participant.status} here",
                    sid,
                    submission.status,
                )
            )
            continue
        if not completed_here:
            mismatches.append(
                Mismatch(
                    "not completed here",
                    pid,
                    f"completion code, but {participant.status} here",
                    sid,
                    submission.status,
                )
            )
            continue
        if participant.excluded:
            reasons = "; ".join(participant.exclusion_reasons)
            mismatches.append(
                Mismatch(
                    "excluded here",
                    pid,
                    f"review before paying: {reasons}",
                    sid,
                    submission.status,
                )
            )
            continue
        if submission.status == AWAITING_REVIEW:
            approve_pids.append(pid)
            if sid:
                approve_sids.append(sid)
            if identity.platform_study_id:
                prolific_study_ids.add(identity.platform_study_id)
    on_prolific = {submission.participant_id for submission in submissions}
    for worker_id, identity in sorted(identities.items()):
        if (
            identity.participant.status == Participant.Status.COMPLETED
            and worker_id not in on_prolific
        ):
            mismatches.append(
                Mismatch("completed here, not there", worker_id, "no submission on Prolific")
            )
    return Reconciliation(
        submissions=len(submissions),
        matched=matched,
        mismatches=mismatches,
        approve_participant_ids=approve_pids,
        approve_submission_ids=approve_sids,
        prolific_study_ids=sorted(prolific_study_ids),
    )


def approve_list_text(participant_ids: list[str]) -> str:
    """The approve list as Prolific's "Approve by upload" box takes it: ids, comma-separated."""
    return ",".join(participant_ids) + "\n"


# What a reconciliation lets the researcher send to Prolific, signed into its page, so the
# approve and reject requests that follow need neither the file again nor trust in the form.
REVIEW_SALT = "study.results.reconciliation.review"
REVIEW_MAX_AGE_S = 24 * 3600


class ReviewStateError(ValueError):
    """A review form whose signed state is forged, expired or of another study."""


@dataclass(frozen=True)
class ReviewState:
    approve_participant_ids: list[str]
    approve_submission_ids: list[str]
    prolific_study_ids: list[str]
    # Submissions awaiting review among the mismatches: submission id -> participant id.
    reviewable: dict[str, str]


def review_state_sign(*, study: Study, reconciliation: Reconciliation) -> str:
    return signing.dumps(
        {
            "study": study.pk,
            "approve_pids": reconciliation.approve_participant_ids,
            "approve_sids": reconciliation.approve_submission_ids,
            "prolific_study_ids": reconciliation.prolific_study_ids,
            "reviewable": {
                m.submission_id: m.participant_id for m in reconciliation.mismatches if m.reviewable
            },
        },
        salt=REVIEW_SALT,
        compress=True,
    )


def review_state_read(*, study: Study, signed: str) -> ReviewState:
    try:
        state = signing.loads(signed, salt=REVIEW_SALT, max_age=REVIEW_MAX_AGE_S)
    except signing.SignatureExpired as error:
        raise ReviewStateError(
            "this reconciliation is more than a day old: upload Prolific's export again"
        ) from error
    except signing.BadSignature as error:
        raise ReviewStateError("this reconciliation was not made here: upload it again") from error
    if state.get("study") != study.pk:
        raise ReviewStateError("this reconciliation is of another study")
    return ReviewState(
        approve_participant_ids=state["approve_pids"],
        approve_submission_ids=state["approve_sids"],
        prolific_study_ids=state["prolific_study_ids"],
        reviewable=state["reviewable"],
    )
