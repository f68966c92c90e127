"""Question types: what a trial asks, which answers it offers, and what counts as correct.

A study names one type by its slug; the registry is the one place new types are added.
Every study item has the classifier's prediction (launch checks it), so each type may use it.
Answers are stored as the chosen value (a string), so every type fits one Response table.
"""

from __future__ import annotations

from dataclasses import dataclass

from explain_engine.models import Classifier, ClassLabel, Explanation, Image, Prediction
from explain_engine.services.explanations import method_for
from study.models import StudyItem

# The confidence rating every trial asks for, 1 (guessing) to 5 (certain).
CONFIDENCE_SCALE = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Choice:
    value: str
    text: str


def species_choices(classifier: Classifier) -> list[Choice]:
    """The classifier's classes, in its output order."""
    labels = {
        label.source_name: label
        for label in ClassLabel.objects.filter(image_set_id=classifier.image_set_id)
    }
    return [
        Choice(value=str(labels[name].pk), text=labels[name].display_name)
        for name in classifier.class_order
    ]


class SpeciesIdentification:
    """ "Which species is this?" Correct means the image's true label."""

    slug = "species_identification"
    prompt = "Which species is this bird?"
    shows_ai_prediction = False
    needs_comparison = False

    def choices(self, *, classifier: Classifier) -> list[Choice]:
        return species_choices(classifier)

    def correct_value(
        self, *, image: Image, prediction: Prediction, comparison: Comparison | None
    ) -> str:
        return str(image.class_label_id)


@dataclass(frozen=True)
class Comparison:
    """The two partial images a comparative trial shows: a SAG explanation of the item and
    the index of its pair (`answer`: "A" or "B", the one the AI is more confident on)."""

    explanation: Explanation
    pair_index: int
    answer: str


def sag_comparison(*, classifier: Classifier, image: Image) -> Comparison | None:
    """The comparison for an image: its SAG search (default parameters, explaining the
    model's prediction) and the first pair with a clear confidence gap; None if there is
    no finished search or it found no pair."""
    prediction = Prediction.objects.filter(classifier=classifier, image=image).first()
    if prediction is None:
        return None
    explanation = Explanation.objects.filter(
        classifier=classifier,
        image=image,
        method="sag",
        params_hash=method_for(classifier=classifier, slug="sag", params={}).params_hash(),
        target_index=prediction.predicted_index,
        status=Explanation.Status.DONE,
    ).first()
    if explanation is None or not explanation.data.get("pairs"):
        return None
    return Comparison(explanation, 0, explanation.data["pairs"][0]["answer"])


class PredictAI:
    """Forward simulation: "Which species will the AI say this is?" Correct means the
    model's own prediction, right or wrong."""

    slug = "predict_ai"
    prompt = "Which species will the AI say this is?"
    shows_ai_prediction = False
    needs_comparison = False

    def choices(self, *, classifier: Classifier) -> list[Choice]:
        return species_choices(classifier)

    def correct_value(
        self, *, image: Image, prediction: Prediction, comparison: Comparison | None
    ) -> str:
        return str(prediction.predicted_label_id)


class VerifyAI:
    """The AI's answer is shown: "Is the AI right?" Correct means the truth about the model."""

    slug = "verify_ai"
    prompt = "Is the AI's answer right?"
    shows_ai_prediction = True
    needs_comparison = False

    def choices(self, *, classifier: Classifier) -> list[Choice]:
        return [
            Choice(value="yes", text="Yes, it is right"),
            Choice(value="no", text="No, it is wrong"),
        ]

    def correct_value(
        self, *, image: Image, prediction: Prediction, comparison: Comparison | None
    ) -> str:
        return "yes" if prediction.predicted_label_id == image.class_label_id else "no"


class SAGComparative:
    """SAG's comparative counterfactual: two partial images of the photo, from the item's SAG
    search. "On which will the AI be more confident?" Correct means the one whose model
    confidence, measured in the search, is higher: no model runs while participants answer."""

    slug = "sag_comparative"
    prompt = (
        "The AI sees only part of the photo. On which of the two partial images, A or B, "
        "will the AI be more confident in its answer?"
    )
    shows_ai_prediction = True
    needs_comparison = True

    def choices(self, *, classifier: Classifier) -> list[Choice]:
        return [Choice(value="A", text="Image A"), Choice(value="B", text="Image B")]

    def correct_value(
        self, *, image: Image, prediction: Prediction, comparison: Comparison | None
    ) -> str:
        return comparison.answer


QUESTION_TYPES = {
    question_type.slug: question_type
    for question_type in [SpeciesIdentification(), PredictAI(), VerifyAI(), SAGComparative()]
}


def item_correct_value(
    *,
    question_type,
    item: StudyItem,
    choices: list[Choice],
    prediction: Prediction | None,
    comparison: Comparison | None,
) -> str | None:
    """The value that counts as correct for a study item (with its image): the instructed
    one on an attention check, else what the question type says of the model's prediction.
    None while a draft lacks the prediction or comparison pair that decides it."""
    if item.role == StudyItem.Role.ATTENTION:
        return attention_check_choice(item=item, choices=choices).value
    if prediction is None or (question_type.needs_comparison and comparison is None):
        return None
    return question_type.correct_value(
        image=item.image, prediction=prediction, comparison=comparison
    )


def attention_check_choice(*, item, choices: list[Choice]) -> Choice:
    """The answer an attention-check item (a StudyItem with its image) instructs: fixed per
    item, varied across items, and never the species the photo shows, so that answering the
    photo instead of the instruction fails the check."""
    others = [choice for choice in choices if choice.value != str(item.image.class_label_id)]
    return others[item.pk % len(others)]
