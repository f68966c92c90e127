"""Question types: what a trial asks, which answers it offers, and what counts as correct.

A study names one type by its slug; the registry is the one place new types are added.
"""

from dataclasses import dataclass

from explain_engine.models import Classifier, ClassLabel, Image


@dataclass(frozen=True)
class Choice:
    label_id: int
    text: str


class SpeciesIdentification:
    """ "Which species is this?" Correct means the image's true label."""

    slug = "species_identification"
    prompt = "Which species is this bird?"

    def choices(self, *, classifier: Classifier) -> list[Choice]:
        labels = {label.source_name: label for label in classifier.image_set.classes.all()}
        ordered = [labels[name] for name in classifier.class_order]
        return [Choice(label_id=label.pk, text=label.display_name) for label in ordered]

    def is_correct(self, *, image: Image, answer: ClassLabel) -> bool:
        return answer.pk == image.class_label_id


QUESTION_TYPES = {question_type.slug: question_type for question_type in [SpeciesIdentification()]}
