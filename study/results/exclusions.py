"""The study's declared exclusion rules (`study.design.spec.EXCLUSION_RULES`) applied to its
participants, each verdict stored with its reasons; a researcher's override (exclude or
include, with a reason) wins over the rules and says so among the reasons."""

import statistics
from collections import Counter

from django.db.models import Count, Q, QuerySet

from study.models import Participant, Response, Study, StudyItem
from study.results import timing


def exclusion_reasons(*, rules: dict, failed_attention: int, main_answers: list) -> list[str]:
    """Why the rules exclude a participant; `main_answers` holds (answer, response ms) pairs,
    the time as study.results.timing.response_ms gives it."""
    reasons = []
    limit = rules.get("max_failed_attention_checks")
    if limit is not None and failed_attention > limit:
        reasons.append(f"failed {failed_attention} attention checks (more than {limit})")
    times = [ms for _, ms in main_answers]
    fastest = rules.get("min_median_response_ms")
    if fastest is not None and times and statistics.median(times) < fastest:
        reasons.append(
            f"median response time {statistics.median(times):.0f} ms (below {fastest} ms)"
        )
    share = rules.get("max_same_answer_share")
    if share is not None and main_answers:
        answer, count = Counter(answer for answer, _ in main_answers).most_common(1)[0]
        if count / len(main_answers) > share:
            reasons.append(
                f"answered {answer!r} on {count} of {len(main_answers)} main trials "
                f"(more than {share:.0%})"
            )
    return reasons


def exclusion_verdict(participant: Participant, reasons: list[str]) -> tuple[bool, list[str]]:
    """(excluded, reasons): the rules' verdict unless a researcher overrode it, saying so."""
    override = participant.exclusion_override
    why = participant.exclusion_override_reason
    if override == Participant.Override.EXCLUDE:
        return True, [f"excluded by a researcher: {why}", *reasons]
    if override == Participant.Override.INCLUDE:
        return False, [f"included by a researcher: {why}"] + [
            f"(rule overridden) {reason}" for reason in reasons
        ]
    return bool(reasons), reasons


def participants_apply_exclusions(
    *, study: Study, participants: QuerySet | None = None, chunk_size: int = 500
) -> int:
    """Apply the study's declared exclusion rules, storing the verdict and its reasons on each
    participant (all of the study's, or those given). Deterministic, so running it again
    changes nothing; returns how many participants changed."""
    rules = study.exclusion_rules or {}
    participants = participants if participants is not None else study.participants.all()
    chosen = participants.filter(study=study)
    participants = chosen.annotate(
        failed_attention=Count(
            "responses",
            filter=Q(responses__phase=StudyItem.Role.ATTENTION, responses__is_correct=False),
        )
    )
    # One ordered pass over the main answers beside the ordered participants (a merge join),
    # rather than a query per participant.
    answers = (
        Response.objects.filter(participant__in=chosen.values("pk"), phase=StudyItem.Role.MAIN)
        .order_by("participant_id", "trial_position")
        .values_list(
            "participant_id",
            "answer",
            "client_response_ms",
            "server_shown_at",
            "server_received_at",
        )
        .iterator(chunk_size=chunk_size)
    )
    pending = next(answers, None)
    changed = 0
    batch: list[Participant] = []
    for participant in participants.order_by("pk").iterator(chunk_size=chunk_size):
        main_answers = []
        while pending is not None and pending[0] <= participant.pk:
            if pending[0] == participant.pk:
                _, answer, client_ms, shown_at, received_at = pending
                server_ms = timing.server_response_ms(shown_at, received_at)
                main_answers.append((answer, timing.response_ms(client_ms, server_ms)))
            pending = next(answers, None)
        excluded, reasons = exclusion_verdict(
            participant,
            exclusion_reasons(
                rules=rules,
                failed_attention=participant.failed_attention,
                main_answers=main_answers,
            ),
        )
        if reasons != participant.exclusion_reasons or excluded != participant.excluded:
            participant.excluded = excluded
            participant.exclusion_reasons = reasons
            batch.append(participant)
        if len(batch) >= chunk_size:
            changed += Participant.objects.bulk_update(batch, ["excluded", "exclusion_reasons"])
            batch = []
    if batch:
        changed += Participant.objects.bulk_update(batch, ["excluded", "exclusion_reasons"])
    return changed
