"""The export's rows, one dict per response or per participant, under the columns of
`study.results.columns`; streamed in constant memory."""

import json
import statistics
from collections.abc import Iterator

from django.db.models import Count, Q

from explain_engine.models import Prediction
from study.design.question_types import QUESTION_TYPES
from study.design.questionnaire import QUESTIONNAIRE_FIELDS
from study.models import Participant, Response, Study, StudyItem
from study.results import timing


def _exclusion_values(participant: Participant) -> dict:
    return {
        "participant_pilot": int(participant.is_pilot),
        "participant_simulated": int(participant.simulated),
        "participant_excluded": int(participant.excluded),
        "exclusion_reasons": "; ".join(participant.exclusion_reasons),
    }


def _questionnaire_values(participant: Participant) -> dict:
    return {f"q_{name}": participant.questionnaire.get(name, "") for name in QUESTIONNAIRE_FIELDS}


def study_export_rows(*, study: Study, chunk_size: int = 2000) -> Iterator[dict]:
    """One dict per response, joined with the participant, the item and the model's output.

    Streams in constant memory: responses are read as plain values in chunks, and only the
    participants of the current chunk are held (a participant's columns repeat on each of
    their rows). Items and predictions are per study, so they are read once.
    """
    items = {
        item.pk: item.image
        for item in study.items.select_related("image__class_label").only(
            "pk", "image__public_id", "image__class_label__display_name", "image__class_label_id"
        )
    }
    predictions = {
        prediction.image_id: prediction
        for prediction in Prediction.objects.filter(
            classifier=study.classifier, image_id__in=[image.pk for image in items.values()]
        ).select_related("predicted_label")
    }
    wording = _choice_wording(study)
    fields = (
        "participant_id", "item_id", "phase", "trial_position", "answer_text",
        "correct_answer", "is_correct", "confidence", "client_response_ms", "server_shown_at",
        "server_received_at", "viewport", "interactions", "explanation_shown__public_id",
        "stimulus_missing",
    )  # fmt: skip
    responses = (
        Response.objects.filter(participant__study=study, participant__preview=False)
        .order_by("participant_id", "trial_position")
        .values_list(*fields)
    )
    chunk: list[tuple] = []
    for values in responses.iterator(chunk_size=chunk_size):
        chunk.append(values)
        if len(chunk) == chunk_size:
            yield from _export_chunk(study, chunk, items, predictions, wording)
            chunk = []
    yield from _export_chunk(study, chunk, items, predictions, wording)


def _choice_wording(study: Study) -> dict[str, str]:
    """The study's answer values (a label id, yes/no, A/B) with the wording the participant
    read, so that correct_answer is exported in answer's vocabulary."""
    question_type = QUESTION_TYPES[study.question_type]
    return {
        choice.value: choice.text for choice in question_type.choices(classifier=study.classifier)
    }


def _participant_columns(study: Study, participant_ids: set) -> tuple[dict, dict]:
    """The chunk's participants by pk, and the columns each of their rows repeats."""
    participants = {
        participant.pk: participant
        for participant in Participant.objects.filter(pk__in=participant_ids)
        .select_related("condition")
        .annotate(
            failed_attention=Count(
                "responses",
                filter=Q(responses__phase=StudyItem.Role.ATTENTION, responses__is_correct=False),
            )
        )
    }
    columns = {}
    for pk, participant in participants.items():
        condition = participant.condition
        columns[pk] = {
            "study": study.slug,
            "participant": pk,
            "platform_pseudonym": participant.platform_pseudonym,
            "participant_status": participant.status,
            **_exclusion_values(participant),
            "attention_checks_failed": participant.failed_attention,
            "condition": condition.name,
            "explanation_method": condition.explanation_method or "none",
            "explanation_params_hash": condition.explanation_params_hash,
        }
    return participants, columns


def _export_chunk(
    study: Study, chunk: list[tuple], items: dict, predictions: dict, wording: dict[str, str]
):
    participants, columns = _participant_columns(study, {values[0] for values in chunk})
    for (
        participant_id, item_id, phase, position, answer_text, correct_answer, is_correct,
        confidence, client_ms, shown_at, received_at, viewport, interactions, explanation_id,
        stimulus_missing,
    ) in chunk:  # fmt: skip
        participant = participants[participant_id]
        server_ms = timing.server_response_ms(shown_at, received_at)
        image = items[item_id]
        prediction = predictions.get(image.pk)
        yield {
            **columns[participant_id],
            "phase": phase,
            "trial_position": position,
            "item": item_id,
            "image": str(image.public_id),
            "true_label": image.class_label.display_name,
            "answer": answer_text,
            "correct_answer": wording.get(correct_answer, correct_answer),
            "is_correct": int(is_correct),
            "confidence": confidence,
            "client_response_ms": client_ms,
            "server_response_ms": server_ms,
            "response_ms": timing.response_ms(client_ms, server_ms),
            "client_time_inconsistent": int(
                not timing.client_time_consistent(client_ms, server_ms)
            ),
            "ai_prediction": prediction.predicted_label.display_name if prediction else "",
            "ai_confidence": round(prediction.confidence, 4) if prediction else "",
            "ai_correct": int(prediction.predicted_label_id == image.class_label_id)
            if prediction
            else "",
            "explanation": str(explanation_id) if explanation_id else "",
            "server_shown_at": shown_at.isoformat(),
            "server_received_at": received_at.isoformat(),
            "viewport": viewport,
            "stimulus_missing": int(stimulus_missing),
            "interactions": json.dumps(interactions, separators=(",", ":")),
            "study_config_hash": participant.study_config_hash,
            **_questionnaire_values(participant),
        }


# Pages a participant only reaches after passing the comprehension check.
_PAST_COMPREHENSION = {"trials", "feedback", "questionnaire", "complete"}


def _comprehension_passed(participant: Participant, study: Study, answered: int) -> int | str:
    if not study.comprehension_questions:
        return ""
    if participant.status == Participant.Status.SCREENED_OUT:
        return 0
    if participant.page in _PAST_COMPREHENSION or answered:
        return 1
    return ""


def study_participant_rows(*, study: Study, chunk_size: int = 500) -> Iterator[dict]:
    """One dict per participant: status, timings, accuracy, checks and questionnaire."""
    main, practice, attention = (
        StudyItem.Role.MAIN,
        StudyItem.Role.TRAINING,
        StudyItem.Role.ATTENTION,
    )
    participants = (
        Participant.objects.filter(study=study, preview=False)
        .select_related("condition")
        .annotate(
            practice_trials=Count("responses", filter=Q(responses__phase=practice)),
            practice_correct=Count(
                "responses", filter=Q(responses__phase=practice, responses__is_correct=True)
            ),
            main_trials=Count("responses", filter=Q(responses__phase=main)),
            main_correct=Count(
                "responses", filter=Q(responses__phase=main, responses__is_correct=True)
            ),
            attention_checks=Count("responses", filter=Q(responses__phase=attention)),
            attention_checks_failed=Count(
                "responses", filter=Q(responses__phase=attention, responses__is_correct=False)
            ),
        )
        .order_by("pk")
    )
    for participant in participants.iterator(chunk_size=chunk_size):
        yield _participant_row(study, participant)


def _participant_row(study: Study, participant: Participant) -> dict:
    """One participant's row, from a participant annotated as in `study_participant_rows`."""
    times = [
        timing.response_ms(client_ms, timing.server_response_ms(shown_at, received_at))
        for client_ms, shown_at, received_at in participant.responses.filter(
            phase=StudyItem.Role.MAIN
        ).values_list("client_response_ms", "server_shown_at", "server_received_at")
    ]
    answered = participant.practice_trials + participant.main_trials
    completed_at = participant.completed_at
    return {
        "study": study.slug,
        "participant": participant.pk,
        "platform_pseudonym": participant.platform_pseudonym,
        "condition": participant.condition.name,
        "explanation_method": participant.condition.explanation_method or "none",
        "participant_status": participant.status,
        **_exclusion_values(participant),
        "page": participant.page,
        "started_at": participant.started_at.isoformat(),
        "consented_at": participant.consented_at.isoformat() if participant.consented_at else "",
        "completed_at": completed_at.isoformat() if completed_at else "",
        "last_seen_at": participant.last_seen_at.isoformat(),
        "duration_s": round((completed_at - participant.started_at).total_seconds(), 1)
        if completed_at
        else "",
        "consent_version": participant.consent_version,
        "comprehension_attempts": participant.comprehension_attempts,
        "comprehension_passed": _comprehension_passed(participant, study, answered),
        "practice_trials": participant.practice_trials,
        "practice_correct": participant.practice_correct,
        "main_trials": participant.main_trials,
        "main_correct": participant.main_correct,
        "main_accuracy": round(participant.main_correct / participant.main_trials, 4)
        if participant.main_trials
        else "",
        "median_response_ms": round(statistics.median(times)) if times else "",
        "attention_checks": participant.attention_checks,
        "attention_checks_failed": participant.attention_checks_failed,
        "study_config_hash": participant.study_config_hash,
        **_questionnaire_values(participant),
    }
