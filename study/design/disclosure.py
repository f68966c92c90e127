"""What each condition reveals, and the words of the explanation figures it shows.

The words are declared in `explain_engine.captions`; this module only says, per condition,
what it discloses: the AI's answer (where the question or the condition shows it), its
confidence, and whether there is an explanation.
"""

from __future__ import annotations

from explain_engine.captions import Disclosure, FigureCaptions, figure_captions
from study.design.question_types import QUESTION_TYPES
from study.models import Condition


def condition_disclosure(condition: Condition) -> Disclosure:
    """What `condition` (with its study) shows a participant besides the photo."""
    question_type = QUESTION_TYPES[condition.study.question_type]
    return Disclosure(
        prediction=question_type.shows_ai_prediction or condition.show_ai_prediction,
        confidence=condition.show_ai_confidence,
        explanation=bool(condition.explanation_method),
    )


def condition_figure_captions(
    *, condition: Condition, class_name: str | None
) -> FigureCaptions | None:
    """The words of the explanation figure `condition` shows for a photo the AI answered
    `class_name` on; None without an explanation. The class is named only where the
    condition shows the AI's answer."""
    if not condition.explanation_method:
        return None
    return figure_captions(
        condition.explanation_method, condition_disclosure(condition), class_name=class_name
    )
