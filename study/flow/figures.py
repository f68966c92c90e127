"""The SAG and XNN figures of a trial as parts its page lays out (`explain_engine.reflow`),
so that they reflow on a phone, worded as the participant's condition declares.

An XNN figure shows its prototypes (training photos of the explained class) only where the
condition shows the AI's answer: elsewhere they would give it away (`explain_engine.captions`).
"""

from __future__ import annotations

from functools import lru_cache

from PIL import Image as PILImage

from explain_engine.captions import Disclosure, figure_captions
from explain_engine.models import Explanation
from explain_engine.reflow import SAGParts, XNNParts, sag_parts, xnn_parts
from study.design.disclosure import condition_disclosure
from study.models import Condition

#: Methods whose figure the page lays out; the others are a heatmap beside the photo.
REFLOWED = ("sag", "xnn")
#: Figures kept per web process (one is about 100 kB).
MAX_KEPT = 256


def explanation_parts(
    *, explanation: Explanation, condition: Condition, class_name: str | None
) -> SAGParts | XNNParts | None:
    """The parts of a SAG or XNN explanation as `condition` shows them, for a photo the AI
    answered `class_name` on (named only where the condition shows the AI's answer); None
    for the other methods."""
    if explanation.method not in REFLOWED:
        return None
    shown = class_name if condition_disclosure(condition).prediction else None
    return _parts(explanation, explanation.overlay.name, shown)


@lru_cache(maxsize=MAX_KEPT)
def _parts(explanation: Explanation, stored_as: str, answer: str | None) -> SAGParts | XNNParts:
    # Keyed by the explanation's pk, the (opaque, never reused) name of its stored figure,
    # so that a recomputed explanation is never served from here, and the answer the
    # words may name (None: the answer is hidden, and so are XNN prototypes).
    disclosure = Disclosure(prediction=answer is not None, confidence=False, explanation=True)
    words = figure_captions(explanation.method, disclosure, class_name=answer)
    if explanation.method == "sag":
        photo = explanation.image.file
        with photo.storage.open(photo.name, "rb") as handle, PILImage.open(handle) as image:
            return sag_parts(image.convert("RGB"), explanation.data, words)
    figure = explanation.overlay
    with figure.storage.open(figure.name, "rb") as handle:
        return xnn_parts(handle.read(), explanation.data, words, prototypes=answer is not None)
