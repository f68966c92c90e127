"""What a condition's participants read about its explanation: how to read the figure (on
the instructions page) and the questionnaire's question about it.

Worded per kind of figure the engine draws: a heatmap over the photo (Grad-CAM, iGOS,
iGOS++, Integrated Gradients), a structured attention graph (SAG) or concept rows (XNN), so
that no condition is told or asked about a figure it does not show. None of them names a
class: the condition alone decides whether the AI's answer is shown.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ExplanationTexts:
    figure: str  # what the figure is, in a few words
    reading_guide: str
    helpfulness_question: str


HEATMAP = ExplanationTexts(
    figure="a heatmap",
    reading_guide=(
        "Beside each photo you will see a heatmap: the same photo with colour laid over it. "
        "Red regions mattered most to the AI's decision; regions without colour mattered "
        "little. You can hide the heatmap to see the photo underneath."
    ),
    helpfulness_question=(
        "How helpful were the heatmaps of where the AI looked? (1 = not at all, 7 = very)"
    ),
)
SAG = ExplanationTexts(
    figure="a graph of partial photos",
    reading_guide=(
        "Below each photo you will see a graph of boxes. Each box shows the photo with only "
        "some parts left visible, and how sure the AI stays when it sees only those parts "
        "(in % of its confidence on the whole photo). An arrow leads to a box with one more "
        "part hidden, outlined in red. Boxes where the AI stays sure show parts that are "
        "enough for its decision."
    ),
    helpfulness_question=(
        "How helpful were the graphs of partial photos, showing which parts are enough for "
        "the AI? (1 = not at all, 7 = very)"
    ),
)
CONCEPTS = ExplanationTexts(
    figure="the concepts the AI looks for",
    reading_guide=(
        "Below each photo you will see the concepts the AI looks for, one row each: where "
        "the concept is in the photo (a grey square: not in this photo), how much it pushed "
        "the AI towards its answer (red: for, blue: against), and training photos where that "
        "concept is strongest."
    ),
    helpfulness_question=(
        "How helpful were the rows of concepts the AI looks for? (1 = not at all, 7 = very)"
    ),
)

# By engine method slug (explain_engine.methods.REGISTRY); a test keeps the two in step.
METHOD_TEXTS = {
    "gradcam": HEATMAP,
    "igos": HEATMAP,
    "igospp": HEATMAP,
    "integrated_gradients": HEATMAP,
    "sag": SAG,
    "xnn": CONCEPTS,
}


def explanation_texts(method: str) -> ExplanationTexts | None:
    """The texts of a condition showing `method`'s explanations; None for no explanation."""
    if not method:
        return None
    return METHOD_TEXTS[method]
