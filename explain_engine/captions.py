"""The words of every explanation figure, declared once for the renderer and the study.

A study condition reveals some of: the AI's answer (its predicted class), its confidence,
and an explanation. A figure must never say more than its condition reveals; above all an
explanation must not name a class where the AI's answer is hidden, or participants read the
answer off the figure. So no figure composes its own text: `render` draws the strings
declared here and the study's pages show them, and a test reads them.

`figure_captions(method, disclosure, class_name=...)` gives a figure's words for a condition:
the class is named only when the condition shows the AI's answer. Figures stored at
precompute serve every condition that uses the explanation, so they are drawn with
`Disclosure.STORED` (no class, no absolute confidence) and carry no class text at all.

XNN prototypes. Each XNN concept comes with prototypes: the training photos where it is
strongest, which in per-class mode are, for the concepts that count for the class, photos
of the explained class, i.e. of the AI's answer (its concepts that count against are held by
other species). Set beside the species gallery they name that answer as surely as a caption
would. So a condition that hides the AI's answer shows no prototypes: its XNN figure is the
concepts' heatmaps on the photo (a grey square with the words "Not in this photo" for a
concept the photo does not hold; where it holds none, a line says that the concepts do not
show why the AI chose its answer) and their contributions only, and its caption says the
training photos are left out and why (`xnn_captions(prototypes=False)`). Where the answer
is shown, the prototypes stay. The stored panel (drawn once, with prototypes) is never
served to a participant: the page lays the figure out from its parts (`reflow.xnn_parts`).

Pure Python: never imports Django, PyTorch or PIL.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

__all__ = [
    "Disclosure",
    "FigureCaptions",
    "HEATMAP_METHODS",
    "figure_captions",
    "heatmap_captions",
    "sag_captions",
    "sag_pair_captions",
    "xnn_captions",
]

#: Methods whose figure is a heatmap over the photo (everything but SAG and XNN).
HEATMAP_METHODS = ("gradcam", "igos", "igospp", "integrated_gradients")


@dataclasses.dataclass(frozen=True)
class Disclosure:
    """What a condition shows a participant besides the photo.

    Attributes:
        prediction: the AI's answer (its predicted class, by name).
        confidence: the AI's confidence in that answer (its softmax probability).
        explanation: an explanation figure.
    """

    prediction: bool
    confidence: bool
    explanation: bool

    STORED: ClassVar[Disclosure]


# A stored figure may be shown in any condition that uses its explanation: it reveals
# nothing but the explanation itself.
Disclosure.STORED = Disclosure(prediction=False, confidence=False, explanation=True)


@dataclasses.dataclass(frozen=True)
class FigureCaptions:
    """Every fixed word of one figure: ``caption`` and ``alt`` on the page, ``drawn`` the
    figure's own words (titles, headings, legends; drawn into a stored PNG or laid out by
    the page from `reflow` parts), by name; numbers (percentages, contributions, concept
    numbers) are data, not captions."""

    method: str
    caption: str
    alt: str
    drawn: dict[str, tuple[str, ...]]

    def texts(self) -> list[str]:
        """All the words, for a test or a scan."""
        return [self.caption, self.alt, *(line for lines in self.drawn.values() for line in lines)]


def heatmap_captions() -> FigureCaptions:
    """A saliency heatmap over the photo with a colour-bar legend."""
    return FigureCaptions(
        method="heatmap",
        caption="Where the AI looked: red regions mattered most to its decision.",
        alt="Heatmap of the regions the AI relied on",
        drawn={"legend": ("less important", "more important"), "short_legend": ("less", "more")},
    )


def sag_captions() -> FigureCaptions:
    """A Structured Attention Graph. Its percentages are relative to the AI's confidence on
    the whole photo, so they reveal no absolute confidence and no class."""
    return FigureCaptions(
        method="sag",
        caption=(
            "How the AI decides: each box shows only some parts of the photo, with how sure "
            "the AI stays (in % of its confidence on the whole photo). An arrow removes one "
            "part, outlined in red."
        ),
        alt="Graph of how the AI's confidence changes when parts of the photo are hidden",
        drawn={
            "header": (
                "How the AI's confidence changes when parts of the image are hidden.",
                "Each box shows only some patches of the image, with the AI's confidence in % "
                "of its confidence on the whole image.",
                "Arrows remove one patch (outlined in red): the thicker the outline, the "
                "bigger the drop.",
            ),
            "whole": ("The whole image: 100%",),
            "empty": ("No small set of patches keeps the AI's confidence.",),
            # The figure laid out by the page (`reflow`): boxes numbered, no arrows.
            "intro": (
                "Boxes with a blue border: these parts alone keep the AI about as sure as on "
                "the whole photo. Each box below them hides one more part, outlined in red.",
            ),
            "box": ("Box",),
            "child": ("= box {parents} without the part in red",),
            "or": (" or ",),
        },
    )


def xnn_captions(class_name: str | None = None, *, prototypes: bool = True) -> FigureCaptions:
    """An XNN concept panel: the class its contributions add up to is named only when
    `class_name` is given (the condition shows the AI's answer); else "its answer". Without
    `prototypes` (a condition hiding the AI's answer, see the module docstring) the words
    name no training-photo column and the caption says why there is none."""
    answer = "its answer" if class_name is None else class_name
    title = (
        "Why the AI chose its answer" if class_name is None else f"Why the AI chose {class_name}"
    )
    if prototypes:
        caption = (
            "How the AI decides: each row is one concept the AI looks for, where it is in the "
            "photo (a grey square: not in this photo), how much it pushed towards the answer "
            "(red: for, blue: against), and training photos where that concept is strongest."
        )
        intro_end: tuple[str, ...] = (
            "in this image, how much it adds to",
            f"the score for {answer}",
            "(red: for it, blue: against it),",
            "and training images that show it most.",
        )
        columns: tuple[str, ...] = (
            "Where in this image",
            "Contribution",
            "Training images with this concept",
        )
    else:
        caption = (
            "How the AI decides: each row is one concept the AI looks for, where it is in the "
            "photo (a grey square: not in this photo), and how much it pushed towards the "
            "answer (red: for, blue: against). "
            "The AI's training photos of each concept are not shown: they would give away "
            "its answer."
        )
        intro_end = (
            "in this image and how much it adds to",
            f"the score for {answer}",
            "(red: for it, blue: against it).",
        )
        columns = ("Where in this image", "Contribution")
    return FigureCaptions(
        method="xnn",
        caption=caption,
        alt="The concepts the AI looks for, and where they are in the photo",
        drawn={
            "title": (title,),
            "intro": (
                "The AI looks for these concepts.",
                "Each row shows where a concept is",
                *intro_end,
                "A grey square: not in this photo.",
            ),
            "sum": ("Sum of contributions:",),
            "columns": columns,
            "concept": ("Concept",),
            "absent": ("Not in", "this photo"),
            "none_present": (
                f"None of these concepts is in this photo: they do not show why the AI "
                f"chose {answer}.",
            ),
        },
    )


def sag_pair_captions() -> FigureCaptions:
    """The A/B stimulus of a comparative question: two partial photos, no confidence."""
    return FigureCaptions(
        method="sag_pair",
        caption="Image A and image B: the same photo with different parts hidden.",
        alt="The two partial versions of the photo, A and B",
        drawn={"labels": ("A", "B")},
    )


def figure_captions(
    method: str, disclosure: Disclosure, *, class_name: str | None = None
) -> FigureCaptions:
    """The words of `method`'s figure in a condition that reveals `disclosure`.

    `class_name` is the AI's answer for the photo; it is used only where the condition
    shows that answer, and so are XNN prototypes (see the module docstring).
    """
    if method == "sag":
        return sag_captions()
    if method == "xnn":
        if disclosure.prediction:
            return xnn_captions(class_name)
        return xnn_captions(None, prototypes=False)
    if method in HEATMAP_METHODS:
        return heatmap_captions()
    raise ValueError(f"no figure is declared for method {method!r}")
