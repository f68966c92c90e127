"""Question types: what a trial asks, which answers it offers, and what counts as correct.

A study names one type by its slug; the registry is the one place new types are added.
Every study item has the classifier's prediction (launch checks it), so each type may use it.
Answers are stored as the chosen value (a string), so every type fits one Response table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from explain_engine.methods.sag import PAIR_KINDS, pair_kind_counts
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
    answers_are_species = True
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


def sag_search(*, classifier: Classifier, image: Image) -> Explanation | None:
    """An image's finished SAG search (default parameters, explaining the model's
    prediction), whose pairs the comparative question draws from; None if there is none."""
    prediction = Prediction.objects.filter(classifier=classifier, image=image).first()
    if prediction is None:
        return None
    return Explanation.objects.filter(
        classifier=classifier,
        image=image,
        method="sag",
        params_hash=method_for(classifier=classifier, slug="sag", params={}).params_hash(),
        target_index=prediction.predicted_index,
        status=Explanation.Status.DONE,
    ).first()


def sag_comparison(
    *,
    classifier: Classifier,
    image: Image,
    prefer: Sequence[str] = PAIR_KINDS,
    answers: Sequence[str] = (),
) -> Comparison | None:
    """The comparison for an image: the first pair of its SAG search that is valid under
    the pair rule (`explain_engine.methods.sag`, step 5: never a node of the SAG shown in
    the same study, never one set inside the other), of the first kind in `prefer` that it
    has; within that kind, the first pair whose right answer comes earliest in `answers`
    (empty: the first pair of the kind). None if there is no finished search or no valid
    pair."""
    explanation = sag_search(classifier=classifier, image=image)
    if explanation is None:
        return None
    pairs = explanation.data.get("pairs", [])
    for kind in prefer:
        of_kind = [(index, pair) for index, pair in enumerate(pairs) if pair.get("kind") == kind]
        for answer in (*answers, None):
            for index, pair in of_kind:
                if answer is None or pair["answer"] == answer:
                    return Comparison(explanation, index, pair["answer"])
    return None


def sag_comparisons(*, classifier: Classifier, items: Iterable[StudyItem]) -> dict[int, Comparison]:
    """Each item's comparison (by image id), drawn so that among the items of each role the
    picture showing more of the photo is the more confident one in about half, and so is
    picture A ("always A" and "always the larger picture" both near chance): item by item
    (in id order), the kind that brings the two counts closer comes first, and within it
    the answer that brings the A and B counts closer."""
    chosen: dict[int, Comparison] = {}
    by_role: dict[str, list[StudyItem]] = {}
    for item in sorted(items, key=lambda item: item.pk):
        by_role.setdefault(item.role, []).append(item)
    for role_items in by_role.values():
        larger = smaller = 0
        answered = {"A": 0, "B": 0}
        for item in role_items:
            if larger > smaller:
                prefer = ("smaller_more_confident", "same_size", "larger_more_confident")
            elif larger < smaller:
                prefer = ("larger_more_confident", "same_size", "smaller_more_confident")
            else:
                prefer = PAIR_KINDS
            answers = ("B", "A") if answered["A"] > answered["B"] else ("A", "B")
            comparison = sag_comparison(
                classifier=classifier, image=item.image, prefer=prefer, answers=answers
            )
            if comparison is None:
                continue
            answered[comparison.answer] += 1
            kind = comparison.explanation.data["pairs"][comparison.pair_index]["kind"]
            larger += kind == "larger_more_confident"
            smaller += kind == "smaller_more_confident"
            chosen[item.image_id] = comparison
    return chosen


def comparisons_freeze(*, classifier: Classifier, items: Sequence[StudyItem]) -> None:
    """Store each item's comparison (`sag_comparisons`) on it, unless the items hold theirs
    already: drawn once, at the first launch, and kept, so that the pictures a launched
    study shows never change with the code that draws them."""
    if any(item.comparison_pair is not None for item in items):
        return
    comparisons = sag_comparisons(classifier=classifier, items=items)
    for item in items:
        comparison = comparisons.get(item.image_id)
        if comparison is not None:
            item.comparison_explanation = comparison.explanation
            item.comparison_pair = comparison.pair_index
            item.save(update_fields=["comparison_explanation", "comparison_pair"])


def comparisons_stored(items: Iterable[StudyItem]) -> dict[int, Comparison]:
    """The comparisons `comparisons_freeze` stored, by image id (empty before a launch)."""
    stored = {}
    for item in items:
        if item.comparison_pair is not None:
            explanation = item.comparison_explanation
            pair = explanation.data["pairs"][item.comparison_pair]
            stored[item.image_id] = Comparison(explanation, item.comparison_pair, pair["answer"])
    return stored


def comparative_pair_counts(*, study) -> dict:
    """What the classifier's SAG searches offer a comparative study, for the launch audit
    (JSON-safe): ``items`` (main items), ``items_without_pair``, ``items_with_kind`` (main
    items offering a kept pair of each kind), ``chosen`` (the kinds the study draws for its
    main items, see `sag_comparisons`) and ``per_image``: per main item its image's public
    id and `pair_kind_counts` (kept pairs by kind; every valid pair the search held)."""
    main = list(study.items.filter(role=StudyItem.Role.MAIN).select_related("image"))
    per_image = []
    for item in sorted(main, key=lambda item: item.pk):
        explanation = sag_search(classifier=study.classifier, image=item.image)
        counts = pair_kind_counts(explanation.data if explanation is not None else {})
        per_image.append({"image": str(item.image.public_id), **counts})
    chosen = dict.fromkeys(PAIR_KINDS, 0)
    # A launched study's pairs are the ones stored at launch, whatever the drawing code
    # does now; a draft's are drawn as its launch will draw them.
    comparisons = comparisons_stored(main) or sag_comparisons(
        classifier=study.classifier, items=main
    )
    for comparison in comparisons.values():
        chosen[comparison.explanation.data["pairs"][comparison.pair_index]["kind"]] += 1
    return {
        "items": len(main),
        "items_without_pair": sum(row["valid"] == 0 for row in per_image),
        "items_with_kind": {
            kind: sum(row["stored"][kind] > 0 for row in per_image) for kind in PAIR_KINDS
        },
        "chosen": chosen,
        "per_image": per_image,
    }


class PredictAI:
    """Forward simulation: "Which species will the AI say this is?" Correct means the
    model's own prediction, right or wrong."""

    slug = "predict_ai"
    prompt = "Which species will the AI say this is?"
    shows_ai_prediction = False
    answers_are_species = True
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
    answers_are_species = False
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
    answers_are_species = False

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


@dataclass(frozen=True)
class SpeciesOffered:
    """The species a study's question offers as answers, and those its main items show."""

    offered: list[str]
    shown: list[str]

    @property
    def unshown(self) -> list[str]:
        return [name for name in self.offered if name not in self.shown]

    def warning(self) -> str | None:
        if not self.unshown:
            return None
        return (
            f"participants choose among all {len(self.offered)} species the classifier knows, "
            f"while the main items show {len(self.shown)} ({', '.join(self.shown)}): "
            f"{len(self.unshown)} offered answer(s) ({', '.join(self.unshown)}) are right for "
            "no item, which makes guessing harder than the items alone suggest"
        )


def study_species_offered(*, study) -> SpeciesOffered | None:
    """For a question whose answers are species: which it offers (every class of the
    classifier) and which the study's main items show. None for other questions."""
    question_type = QUESTION_TYPES[study.question_type]
    if not question_type.answers_are_species:
        return None
    offered = [choice.text for choice in question_type.choices(classifier=study.classifier)]
    shown_names = set(
        StudyItem.objects.filter(study=study, role=StudyItem.Role.MAIN).values_list(
            "image__class_label__display_name", flat=True
        )
    )
    return SpeciesOffered(offered=offered, shown=[n for n in offered if n in shown_names])


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
