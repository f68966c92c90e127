"""Server-side simulated participants with known ground truth, for pilots and load tests.

Each bot goes through the same services a browser does (entry, consent, instructions, one
answer per trial), so assignment, recording and export are exercised end to end.
"""

import random
from dataclasses import dataclass

from explain_engine.models import Prediction
from study.models import Participant, Study
from study.question_types import QUESTION_TYPES
from study.selectors import trial_current
from study.services import (
    PAGE_QUESTIONNAIRE,
    participant_consent,
    participant_enter,
    participant_finish_instructions,
    questionnaire_submit,
    response_record,
    trial_mark_shown,
)


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
) -> list[Participant]:
    """Run `n` bots through the whole study; returns the participants they became."""
    unknown = set(behaviour_by_condition) - set(study.conditions.values_list("name", flat=True))
    if unknown:
        raise ValueError(f"no condition named {sorted(unknown)} in study {study.slug!r}")
    for behaviour in [default_behaviour, *behaviour_by_condition.values()]:
        if not 0 <= behaviour.accuracy <= 1 or behaviour.mean_response_ms < 1:
            raise ValueError(f"accuracy must be in [0, 1] and time positive, got {behaviour}")
    rng = random.Random(seed)
    question_type = QUESTION_TYPES[study.question_type]
    predictions = {
        prediction.image_id: prediction
        for prediction in Prediction.objects.filter(classifier=study.classifier)
    }
    participants = []
    for index in range(n):
        participant = participant_enter(study=study, worker_id=f"{id_prefix}-{seed}-{index}")
        participant = participant_consent(participant=participant, agreed=True)
        participant = participant_finish_instructions(participant=participant)
        behaviour = behaviour_by_condition.get(participant.condition.name, default_behaviour)
        while participant.status == Participant.Status.ACTIVE:
            participant = trial_mark_shown(participant=participant)
            trial = trial_current(participant=participant)
            correct = question_type.correct_value(
                image=trial.item.image, prediction=predictions[trial.item.image_id]
            )
            wrong = [choice.value for choice in trial.choices if choice.value != correct]
            answer = (
                correct if rng.random() < behaviour.accuracy or not wrong else rng.choice(wrong)
            )
            response_record(
                participant=participant,
                trial_position=trial.position,
                answer=answer,
                confidence=rng.randint(1, 5),
                client_response_ms=max(1, round(rng.expovariate(1 / behaviour.mean_response_ms))),
                viewport="simulated",
            )
            participant.refresh_from_db()
            if participant.page == PAGE_QUESTIONNAIRE:
                participant = questionnaire_submit(
                    participant=participant, answers={"comments": "simulated participant"}
                )
        participants.append(participant)
    return participants
