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
import json
from typing import Any

import numpy as np
from PIL import Image

from explain_engine import render

__all__ = [
    "ExplanationArtifacts",
    "artifacts_for",
    "concept_artifacts",
    "sag_artifacts",
    "saliency_artifacts",
]


@dataclasses.dataclass(frozen=True)
class ExplanationArtifacts:
    """One explanation's files and data.

    Attributes:
        figure_png: the PNG shown to participants.
        analysis: the raw result as bytes (for a heatmap, its map as ``.npy``).
        analysis_suffix: the file suffix of `analysis`, without the dot (``"npy"``).
        data: method-specific JSON data (a SAG graph, XNN concepts); empty for heatmaps.
        metrics: numbers about the explanation, e.g. the explained class's score.
        comparison_zip: every comparative pair of a SAG search as the A/B picture a
            comparative question shows (`render.sag_pairs_zip`), drawn here once so that no
            page request draws one; empty for other methods and a search with no pair.
    """

    figure_png: bytes
    analysis: bytes
    analysis_suffix: str
    data: dict[str, Any]
    metrics: dict[str, float]
    comparison_zip: bytes = b""


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


def concept_artifacts(item: render.ConceptItem, *, concept_model_id: int) -> ExplanationArtifacts:
    """An XNN explanation's artifacts: the concept panel, the (k, H, W) concept maps as
    ``.npy``, and the activations and contributions behind the panel as data."""
    analysis = io.BytesIO()
    np.save(analysis, item.heatmaps.astype(np.float32), allow_pickle=False)
    target = item.data["target_class"]
    column = item.data["classes"].index(target)
    return ExplanationArtifacts(
        figure_png=item.panel_png,
        analysis=analysis.getvalue(),
        analysis_suffix="npy",
        data={**item.data, "concept_model_id": concept_model_id},
        metrics={"rebuilt_target_score": float(item.data["rebuilt_scores"][column])},
    )


def sag_artifacts(stimulus: Image.Image, graph: Any) -> ExplanationArtifacts:
    """A SAG explanation's artifacts: the graph figure, and the search's graph (minimal
    sufficient explanations, nodes, edges, comparative pairs) as JSON file and data."""
    data = graph.to_dict()
    figure = io.BytesIO()
    render.sag_figure(stimulus, graph).save(figure, format="PNG")
    comparison = render.sag_pairs_zip(stimulus, data) if data.get("pairs") else b""
    return ExplanationArtifacts(
        figure_png=figure.getvalue(),
        analysis=json.dumps(data, sort_keys=True).encode(),
        analysis_suffix="json",
        data=data,
        metrics={
            "target_score": float(graph.full_probability),
            "minimal_sufficient_explanations": len(graph.mses),
            "diverse_roots": len(graph.roots),
        },
        comparison_zip=comparison,
    )


def artifacts_for(result: Any, index: int, stimulus: Image.Image) -> ExplanationArtifacts:
    """Image `index` of a method's batch result as artifacts, whatever the method."""
    if hasattr(result, "graphs"):  # a SAG result
        return sag_artifacts(stimulus, result.graphs[index])
    return saliency_artifacts(
        stimulus,
        result.saliency[index].numpy().astype(np.float32),
        float(result.scores[index]),
    )
