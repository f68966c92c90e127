"""Question types: what a trial asks, which answers it offers, and what counts as correct.

A study names one type by its slug; the registry is the one place new types are added.
Every study item has the classifier's prediction (launch checks it), so each type may use it.
Answers are stored as the chosen value (a string), so every type fits one Response table.
"""

from dataclasses import dataclass

from explain_engine.models import Classifier, Image, Prediction


@dataclass(frozen=True)
class Choice:
    value: str
    text: str


def species_choices(classifier: Classifier) -> list[Choice]:
    """The classifier's classes, in its output order."""
    labels = {label.source_name: label for label in classifier.image_set.classes.all()}
    return [
        Choice(value=str(labels[name].pk), text=labels[name].display_name)
        for name in classifier.class_order
    ]


class SpeciesIdentification:
    """ "Which species is this?" Correct means the image's true label."""

    slug = "species_identification"
    prompt = "Which species is this bird?"
    shows_ai_prediction = False

    def choices(self, *, classifier: Classifier) -> list[Choice]:
        return species_choices(classifier)

    def correct_value(self, *, image: Image, prediction: Prediction) -> str:
        return str(image.class_label_id)


class PredictAI:
    """Forward simulation: "Which species will the AI say this is?" Correct means the
    model's own prediction, right or wrong."""

    slug = "predict_ai"
    prompt = "Which species will the AI say this is?"
    shows_ai_prediction = False

    def choices(self, *, classifier: Classifier) -> list[Choice]:
        return species_choices(classifier)

    def correct_value(self, *, image: Image, prediction: Prediction) -> str:
        return str(prediction.predicted_label_id)


class VerifyAI:
    """The AI's answer is shown: "Is the AI right?" Correct means the truth about the model."""

    slug = "verify_ai"
    prompt = "Is the AI's answer right?"
    shows_ai_prediction = True

    def choices(self, *, classifier: Classifier) -> list[Choice]:
        return [
            Choice(value="yes", text="Yes, it is right"),
            Choice(value="no", text="No, it is wrong"),
        ]

    def correct_value(self, *, image: Image, prediction: Prediction) -> str:
        return "yes" if prediction.predicted_label_id == image.class_label_id else "no"


QUESTION_TYPES = {
    question_type.slug: question_type
    for question_type in [SpeciesIdentification(), PredictAI(), VerifyAI()]
}


def attention_check_choice(*, item_id: int, choices: list[Choice]) -> Choice:
    """The answer an attention-check item instructs; fixed per item, varied across items."""
    return choices[item_id % len(choices)]
