"""What an explanation leaves behind, in a form any method can produce.

A method's result becomes an `ExplanationArtifacts`: the figure participants see, the raw
analysis a researcher re-reads (a saliency map, a SAG graph, XNN concepts), JSON data and
metrics. The Django layer stores any of them the same way, so a new method only needs a
function here that builds its artifacts.

Pure PIL / NumPy: never imports Django or PyTorch.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import numpy as np
from PIL import Image

from explain_engine import render

__all__ = ["ExplanationArtifacts", "saliency_artifacts"]


@dataclasses.dataclass(frozen=True)
class ExplanationArtifacts:
    """One explanation's files and data.

    Attributes:
        figure_png: the PNG shown to participants.
        analysis: the raw result as bytes (for a heatmap, its map as ``.npy``).
        analysis_suffix: the file suffix of `analysis`, without the dot (``"npy"``).
        data: method-specific JSON data (a SAG graph, XNN concepts); empty for heatmaps.
        metrics: numbers about the explanation, e.g. the explained class's score.
    """

    figure_png: bytes
    analysis: bytes
    analysis_suffix: str
    data: dict[str, Any]
    metrics: dict[str, float]


def saliency_artifacts(
    stimulus: Image.Image, saliency: np.ndarray, score: float
) -> ExplanationArtifacts:
    """A heatmap method's artifacts: the overlay on `stimulus` and the raw (H, W) map.

    `score` is the model's softmax probability of the explained class.
    """
    figure = io.BytesIO()
    render.heatmap_overlay(stimulus, saliency).save(figure, format="PNG")
    analysis = io.BytesIO()
    render.save_saliency_npy(analysis, saliency)
    return ExplanationArtifacts(
        figure_png=figure.getvalue(),
        analysis=analysis.getvalue(),
        analysis_suffix="npy",
        data={},
        metrics={"target_score": float(score)},
    )
