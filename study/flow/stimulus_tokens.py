"""Stimulus URLs valid for one participant only.

A photo's or an explanation's public id is the same for every participant, so a URL made of
it would let one leaked "id -> species" list answer every trial of everyone. A participant's
pages therefore address each stimulus by a token: a keyed hash of the participant's code,
the kind of stimulus and its public id. The token reveals neither, differs per participant,
and is only resolved among the stimuli the participant's own assignment shows (a few dozen
hashes per request, no table kept), so another participant's URL, with its token, is not
found.
"""

from collections.abc import Iterable
from typing import TypeVar

from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

KINDS = ("image", "explanation", "comparison")
_SALT = "study.stimulus_tokens"

Stimulus = TypeVar("Stimulus")


def stimulus_token(*, code: str, kind: str, public_id) -> str:
    """The participant's token for one stimulus: 32 hex digits (128 bits)."""
    if kind not in KINDS:
        raise ValueError(f"unknown stimulus kind {kind!r}; known: {KINDS}")
    message = f"{kind}:{code}:{public_id}"
    return salted_hmac(_SALT, message, algorithm="sha256").hexdigest()[:32]


def stimulus_url(*, study_slug: str, code: str, kind: str, public_id) -> str:
    """The URL of one stimulus for this participant (URL names study:image, ...)."""
    token = stimulus_token(code=code, kind=kind, public_id=public_id)
    return reverse(f"study:{kind}", args=[study_slug, code, token])


def stimulus_resolve(
    *, code: str, kind: str, token: str, candidates: Iterable[Stimulus]
) -> Stimulus | None:
    """The candidate (anything with a `public_id`) whose token for this participant is
    `token`, or None."""
    for candidate in candidates:
        expected = stimulus_token(code=code, kind=kind, public_id=candidate.public_id)
        if constant_time_compare(expected, token):
            return candidate
    return None
