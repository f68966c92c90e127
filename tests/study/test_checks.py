"""Comprehension check before the trials, attention checks among them."""

import pytest

from study.design.frozen import study_choices
from study.design.question_types import attention_check_choice
from study.design.spec import StudyConfigError
from study.flow.services import PROLIFIC_COMPLETION_URL, trial_correct_answer
from study.models import Participant, Response, Study, StudyItem
from study.results.rows import study_export_rows
from tests.study.conftest import make_study
from tests.study.test_participant_flow import QUESTIONNAIRE, enter, post

pytestmark = pytest.mark.django_db

QUESTIONS = [
    {
        "question": "What do you do on each page?",
        "choices": ["Name the species", "Count birds"],
        "answer": 0,
    },
    {
        "question": "What differs between species?",
        "choices": ["Only size", "Small details"],
        "answer": 1,
    },
]


def to_comprehension(client, study, pid="p"):
    url = enter(client, study, pid=pid)
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    return url


def test_right_answers_lead_to_the_trials(client, classifier):
    study = make_study(classifier, comprehension_questions=QUESTIONS)
    url = to_comprehension(client, study)
    assert "What differs between species?" in client.get(url).content.decode()
    post(client, url, page="comprehension", q0=0, q1=1)
    participant = Participant.objects.get()
    assert participant.page == "trials" and participant.comprehension_attempts == 1


def test_a_wrong_answer_sends_back_to_the_instructions_then_ends_with_a_return(client, classifier):
    study = make_study(classifier, comprehension_questions=QUESTIONS)
    Study.objects.filter(pk=study.pk).update(failed_comprehension_code="SCREENED")
    url = to_comprehension(client, study)
    post(client, url, page="comprehension", q0=0, q1=0)
    page = client.get(url).content.decode()
    assert "Some of your answers were not right" in page and "Instructions" in page
    post(client, url, page="instructions")
    last = post(client, url, page="comprehension", q0=1, q1=1)
    assert last["Location"] == PROLIFIC_COMPLETION_URL.format(code="SCREENED")
    participant = Participant.objects.get()
    assert participant.status == Participant.Status.SCREENED_OUT
    assert "cannot continue" in client.get(url).content.decode()
    # The place is free again for someone else.
    assert (
        study.conditions.get(pk=participant.condition_id)
        .participants.filter(status__in=["active", "completed"])
        .count()
        == 0
    )


def test_unanswered_comprehension_question_is_a_clear_400(client, classifier):
    study = make_study(classifier, comprehension_questions=QUESTIONS)
    url = to_comprehension(client, study)
    response = post(client, url, page="comprehension", q0=0)
    assert response.status_code == 400 and "answer every question" in response.content.decode()
    assert Participant.objects.get().comprehension_attempts == 0


def test_malformed_comprehension_questions_are_refused(classifier):
    with pytest.raises(StudyConfigError, match="index of the right one"):
        make_study(
            classifier, comprehension_questions=[{"question": "?", "choices": ["a"]}], launch=False
        )


def test_attention_checks_are_mixed_in_and_scored_by_the_instruction(client, classifier):
    study = make_study(classifier, n_items=3, n_attention=2)
    url = to_comprehension(client, study)
    participant = Participant.objects.get()
    seen_attention = 0
    for position in range(5):
        trial = client.get(url).context["trial"]
        assert "of 5" in client.get(url).content.decode()
        if trial.item.role == "attention":
            seen_attention += 1
            instructed = next(c for c in trial.choices if f"\u201c{c.text}\u201d" in trial.prompt)
            answer = instructed.value
        else:
            answer = trial.choices[0].value
        if trial.item.role == "attention" and seen_attention == 2:
            answer = next(c.value for c in trial.choices if c.value != answer)  # fail one
        confidence = {} if trial.item.role == "attention" else {"confidence": 3}  # none asked
        post(client, url, page="trials", trial_position=position, answer=answer, **confidence)
    post(client, url, **QUESTIONNAIRE)
    assert seen_attention == 2
    attention = Response.objects.filter(participant=participant, phase="attention")
    assert sorted(r.is_correct for r in attention) == [False, True]
    rows = list(study_export_rows(study=study))
    assert len(rows) == 5 and {row["attention_checks_failed"] for row in rows} == {1}


def test_an_attention_check_never_instructs_the_species_the_photo_shows(classifier):
    study = make_study(classifier, n_items=1, n_attention=1)
    choices = study_choices(study)
    check = study.items.select_related("image").get(role="attention")
    # Every residue of the pk, so every choice the rule could land on.
    for pk in range(2 * len(choices)):
        item = StudyItem(pk=pk, study=study, image=check.image, role="attention")
        assert attention_check_choice(item=item, choices=choices).value != str(
            check.image.class_label_id
        )
    instructed = attention_check_choice(item=check, choices=choices)
    assert trial_correct_answer(study=study, item=check) == instructed.value
