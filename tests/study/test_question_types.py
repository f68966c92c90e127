"""Each question type offers its choices and scores against its own notion of correct."""

import pytest

from explain_engine.models import Prediction
from explain_engine.services.predictions import predictions_compute
from study.design.launch import study_launch
from study.design.spec import StudyConfigError
from study.models import Participant, Response
from tests.study.conftest import make_study
from tests.study.test_participant_flow import enter, post

pytestmark = pytest.mark.django_db


def start_trials(client, study, pid="p"):
    url = enter(client, study, pid=pid)
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    return url


def answer_all(client, url, choose):
    """Answer every trial with `choose(trial, prediction)`; returns the prediction per trial."""
    participant = Participant.objects.get()
    seen = []
    for _ in participant.trial_item_ids:
        response = client.get(url)
        trial = response.context["trial"]
        prediction = Prediction.objects.get(image=trial.item.image)
        seen.append((trial, prediction, response.content.decode()))
        client.post(
            url,
            {
                "page": "trials",
                "trial_position": trial.position,
                "answer": choose(trial, prediction),
                "confidence": 3,
            },
        )
    return seen


def test_predict_ai_counts_the_model_answer_as_correct_even_when_it_is_wrong(client, classifier):
    study = make_study(classifier, question_type="predict_ai", n_items=8)
    url = start_trials(client, study)
    seen = answer_all(client, url, lambda trial, prediction: str(prediction.predicted_label_id))
    assert "Which species will the AI say this is?" in seen[0][2]
    wrong_model = [p for _, p, _ in seen if not p.is_correct]
    assert wrong_model, "the untrained test classifier should be wrong on some images"
    assert Response.objects.filter(is_correct=True).count() == len(seen)


def test_verify_ai_shows_the_ai_answer_and_scores_the_truth_about_it(client, classifier):
    study = make_study(classifier, question_type="verify_ai", n_items=8)
    url = start_trials(client, study)
    seen = answer_all(client, url, lambda trial, prediction: "yes")
    for trial, prediction, html in seen:
        assert f"The AI says: <strong>{prediction.predicted_label.display_name}</strong>" in html
        assert [choice.value for choice in trial.choices] == ["yes", "no"]
    responses = Response.objects.order_by("trial_position")
    assert [r.is_correct for r in responses] == [p.is_correct for _, p, _ in seen]
    assert {r.correct_answer for r in responses} <= {"yes", "no"}


def test_species_question_does_not_show_the_ai_answer(client, study):
    url = start_trials(client, study)
    assert "The AI says" not in client.get(url).content.decode()


def test_launch_needs_a_prediction_for_every_item(classifier):
    study = make_study(classifier, launch=False)
    with pytest.raises(StudyConfigError, match="no prediction"):
        study_launch(study=study)
    images = [item.image for item in study.items.all()]
    predictions_compute(classifier=classifier, images=images)
    with pytest.raises(StudyConfigError, match="explanation"):
        study_launch(study=study)
