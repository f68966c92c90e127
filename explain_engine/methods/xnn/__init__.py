"""XNN: an explanation module embedding a CNN layer into a few concepts (x-features).

Z. Qi, S. Khorram, F. Li, "Embedding Deep Networks into Visual Explanations", Artificial
Intelligence 2021 (arXiv 1709.05360). Implemented from ``shared/reference/methods.md``
section 2 (which restates the authors' derived code in words), never from their code.

- `autoencoder`: the Sparse Reconstruction Autoencoder and its loss terms;
- `training`: how it is trained, the authors' loss weights (with their sources), the
  success rule and the re-weighting between attempts;
- `heatmaps`: (contrastive) Excitation Backprop from each concept node through CNN + XNN;
- `method`: `XNN`, the explanation method (registry slug "xnn", ``needs_fit = True``).

Pure PyTorch: never imports Django.
"""

from .autoencoder import (
    SparseReconstructionAutoencoder,
    log_penalty_loss,
    pull_away_loss,
    r2_score,
)
from .heatmaps import HEATMAP_METHODS, concept_heatmaps, excitation_backprop, excitation_graph
from .method import XNN, FitReport, WeakFitError, XNNResult, mean_abs_correlation
from .training import AUTHORS_LOSS_WEIGHTS, LossWeights, success_rule

__all__ = [
    "AUTHORS_LOSS_WEIGHTS",
    "HEATMAP_METHODS",
    "FitReport",
    "LossWeights",
    "SparseReconstructionAutoencoder",
    "WeakFitError",
    "XNN",
    "XNNResult",
    "concept_heatmaps",
    "excitation_backprop",
    "excitation_graph",
    "log_penalty_loss",
    "mean_abs_correlation",
    "pull_away_loss",
    "r2_score",
    "success_rule",
]
