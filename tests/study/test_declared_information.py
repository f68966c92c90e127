"""Each condition declares what it reveals, and its figures obey it: no explanation figure
names a class where the condition hides the AI's answer, neither in the words the page shows
nor in the text drawn into the stored figures at precompute."""

import pytest
from PIL import ImageDraw

from explain_engine.captions import Disclosure
from explain_engine.models import ClassLabel, Prediction
from explain_engine.services.concept_models import concept_model_fit
from explain_engine.tasks import precompute_job_run
from study.design.creation import study_create, study_precompute_job
from study.design.disclosure import condition_disclosure, condition_figure_captions
from study.design.spec import ConditionSpec, StudySpec
from study.models import Study

pytestmark = pytest.mark.django_db

FAST_XNN = {"k": 3, "epochs": 2, "pretrain_epochs": 1, "max_attempts": 1, "train_batch_size": 8}


@pytest.fixture
def drawn_text(monkeypatch):
    """Every string drawn into any figure while the test runs."""
    drawn: list[str] = []
    original = ImageDraw.ImageDraw.text

    def spy(self, xy, text, *args, **kwargs):
        drawn.append(str(text))
        return original(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy)
    return drawn


@pytest.fixture
def study(trained_classifier):
    images = list(trained_classifier.image_set.images.filter(split="test").order_by("pk"))
    return study_create(
        StudySpec(
            slug="disclosure",
            title="Which gull?",
            classifier=trained_classifier,
            platform=Study.Platform.PROLIFIC,
            conditions=[
                ConditionSpec(name="none"),
                ConditionSpec(name="gradcam", explanation_method="gradcam"),
                ConditionSpec(name="sag", explanation_method="sag"),
                ConditionSpec(name="xnn", explanation_method="xnn", explanation_params=FAST_XNN),
                ConditionSpec(
                    name="xnn-with-answer",
                    explanation_method="xnn",
                    explanation_params=FAST_XNN,
                    show_ai_prediction=True,
                ),
            ],
            main_images=images[:3],
            participants_per_condition=5,
            consent_text="Consent",
            instructions_text="Pick the species.",
        )
    )


def test_no_figure_names_a_class_where_the_condition_hides_the_answer(study, drawn_text):
    # The tiny classifier's concept model fails the success rule: kept, as fit_xnn
    # --accept-weak-fit would, so that its figures exist to be read.
    concept_model_fit(classifier=study.classifier, accept_weak_fit=True, **FAST_XNN)
    precompute_job_run.delay(study_precompute_job(study=study).pk)
    class_names = list(
        ClassLabel.objects.filter(image_set=study.classifier.image_set).values_list(
            "display_name", flat=True
        )
    )
    predictions = list(Prediction.objects.filter(classifier=study.classifier))
    assert predictions and len(class_names) == 8

    # The stored figures serve every condition, also those that hide the answer.
    assert any("Why the AI chose its answer" in text for text in drawn_text)
    assert [t for t in drawn_text if any(name in t for name in class_names)] == []

    # The words each condition's figure shows, for each photo's answer.
    named: dict[str, bool] = {}
    for condition in study.conditions.all():
        disclosure = condition_disclosure(condition)
        for prediction in predictions:
            answer = prediction.predicted_label.display_name
            words = condition_figure_captions(condition=condition, class_name=answer)
            if words is None:
                continue
            shows_class = any(answer in text for text in words.texts())
            named[condition.name] = named.get(condition.name, False) or shows_class
            if not disclosure.prediction:
                assert not shows_class, (condition.name, words.texts())
    assert named == {"gradcam": False, "sag": False, "xnn": False, "xnn-with-answer": True}
    assert condition_disclosure(study.conditions.get(name="xnn")) == Disclosure(
        prediction=False, confidence=False, explanation=True
    )
