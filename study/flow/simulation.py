"""Server-side simulated participants with known ground truth, for pilots and load tests.

Each bot goes through the same services a browser does (entry, consent, instructions, one
answer per trial), so assignment, recording and export are exercised end to end.
"""

import random
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from study.flow.entry import participant_enter
from study.flow.selectors import trial_current
from study.flow.sequence import (
    PAGE_COMPREHENSION,
    PAGE_FEEDBACK,
    PAGE_INSTRUCTIONS,
    PAGE_QUESTIONNAIRE,
    PAGE_TRIALS,
)
from study.flow.services import (
    comprehension_submit,
    feedback_acknowledge,
    participant_consent,
    participant_finish_instructions,
    questionnaire_submit,
    response_record,
    trial_correct_answer,
    trial_mark_shown,
)
from study.models import Participant, Study, StudyItem


@dataclass(frozen=True)
class BotBehaviour:
    accuracy: float  # chance of answering correctly on each trial
    mean_response_ms: int


def participants_simulate(
    *,
    study: Study,
    n: int,
    behaviour_by_condition: dict[str, BotBehaviour],
    default_behaviour: BotBehaviour,
    seed: int = 0,
    id_prefix: str = "bot",
    allow_live: bool = False,
) -> list[Participant]:
    """Run `n` bots through the whole study; returns the participants they became.

    Bots are flagged (`Participant.simulated`, `participant_simulated` in the exports). A
    live study's places are for people: bots take them only with `allow_live`."""
    if n < 0:
        raise ValueError(f"the number of simulated participants must be 0 or more, not {n}")
    if study.status == Study.Status.LIVE and not allow_live:
        raise ValueError(
            f"study {study.slug!r} is live: simulated participants would take its places "
            "(allow it explicitly to do so anyway)"
        )
    unknown = set(behaviour_by_condition) - set(study.conditions.values_list("name", flat=True))
    if unknown:
        raise ValueError(f"no condition named {sorted(unknown)} in study {study.slug!r}")
    for behaviour in [default_behaviour, *behaviour_by_condition.values()]:
        if not 0 <= behaviour.accuracy <= 1 or behaviour.mean_response_ms < 1:
            raise ValueError(f"accuracy must be in [0, 1] and time positive, got {behaviour}")
    rng = random.Random(seed)
    participants = []
    for index in range(n):
        participant = participant_enter(
            study=study, worker_id=f"{id_prefix}-{seed}-{index}", simulated=True
        )
        participant = participant_consent(participant=participant, agreed=True)
        behaviour = behaviour_by_condition.get(participant.condition.name, default_behaviour)
        while participant.status == Participant.Status.ACTIVE:
            _act_on_page(participant, behaviour, rng)
            participant.refresh_from_db()
        participants.append(participant)
    return participants


def _act_on_page(participant: Participant, behaviour: BotBehaviour, rng: random.Random) -> None:
    """Do what a careful participant does on the current page."""
    page = participant.page
    if page == PAGE_INSTRUCTIONS:
        participant_finish_instructions(participant=participant)
    elif page == PAGE_COMPREHENSION:
        questions = participant.study.comprehension_questions
        comprehension_submit(participant=participant, answers=[q["answer"] for q in questions])
    elif page == PAGE_TRIALS:
        participant = trial_mark_shown(participant=participant)
        trial = trial_current(participant=participant)
        correct = trial_correct_answer(study=participant.study, item=trial.item)
        wrong = [choice.value for choice in trial.choices if choice.value != correct]
        answer = correct if rng.random() < behaviour.accuracy or not wrong else rng.choice(wrong)
        response_ms = max(1, round(rng.expovariate(1 / behaviour.mean_response_ms)))
        # A bot answers at once; its simulated time passes on the server's clock too, which
        # is the one exclusions and analyses trust (study.results.timing).
        Participant.objects.filter(pk=participant.pk).update(
            trial_shown_at=timezone.now() - timedelta(milliseconds=response_ms)
        )
        response_record(
            participant=participant,
            trial_position=trial.position,
            answer=answer,
            confidence=None if trial.item.role == StudyItem.Role.ATTENTION else rng.randint(1, 5),
            client_response_ms=response_ms,
            viewport="simulated",
        )
    elif page == PAGE_FEEDBACK:
        feedback_acknowledge(participant=participant)
    elif page == PAGE_QUESTIONNAIRE:
        questionnaire_submit(participant=participant, answers={"comments": "simulated"})
    else:
        raise RuntimeError(f"a simulated participant cannot act on page {page!r}")
