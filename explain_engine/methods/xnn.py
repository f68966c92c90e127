"""XNN: an explanation module embedding a CNN layer into a few concepts (x-features).

Z. Qi, S. Khorram, F. Li, "Embedding Deep Networks into Visual Explanations", Artificial
Intelligence 2021 (arXiv 1709.05360). Implemented from ``shared/reference/methods.md``
section 2 (which restates the authors' derived code in words), never from their code.

A Sparse Reconstruction Autoencoder (SRAE) maps one layer's activation f (by default the
penultimate layer, the input of the model's final Linear) to k non-negative x-features z;
a linear head rebuilds the classifier's logits from z, so each x-feature's *contribution*
to class c is ``z_j * W_head[c, j]`` and the rebuilt score is their sum plus the bias::

    loss = a_pred * MSE(head(z), logits)                      # faithfulness
         + a_rec  * mean_j log(1 + q * mean_batch (f_j - rec_j)^2)   # sparse reconstruction
         + a_PT   * sum_c PT(z * W_head[c])                   # pull-away term

Unlike a saliency method, XNN is fitted once per classifier and class subset (`XNN.fit`),
saved (`XNN.save` / `XNN.load`), then explains images (`XNN.explain`) with, per concept, its
activation, contribution to each explained class, and a heatmap, and names prototype images
from the training split (`XNN.prototypes`). In the methods registry it is the slug "xnn"
with ``needs_fit = True``: ``get_method("xnn", ...)`` gives an unfitted XNN, whose
`params` and `params_hash` (the same canonical-JSON sha256 as the saliency methods') name
a fit, and whose `explain` raises RuntimeError until it is fitted or replaced by `load`.

Heatmaps: contrastive excitation backprop (c-MWP; J. Zhang, Z. Lin, J. Brandt, X. Shen,
S. Sclaroff, "Top-down Neural Attention by Excitation Backprop", ECCV 2016) from the concept
node through the combined CNN+XNN, for plain feed-forward CNNs; Grad-CAM of the concept
activation at the last feature block otherwise (see `cmwp_chain`). ``XNNResult.heatmap_method``
records which was used.

Adaptations (not in methods.md), each needed for the SRAE to train on small feature sets:

- Encoder and decoder layers use He initialization and a bias of 0.1, and an encoder unit
  that no training input activates is re-drawn after each pre-training stage and each
  fine-tuning epoch (`_revive_dead_units`): otherwise most x-features die and never recover.
- Default loss weights (`LOSS_WEIGHTS`): the paper's table (`PAPER_LOSS_WEIGHTS`, tuned
  for 4096-d VGG features and CUB logits) with the reconstruction and pull-away weights
  scaled by 1/1000 (images axis: q = 100, pred 1, rec 0.01, PT 0.01), their ratio and the
  re-weighting between attempts kept. Decided on ``benchmarks/xnn_fit.py``: on the demo
  classifier (SmallCNN, 128-d penultimate features, 8 gull classes, 336 train / 144 test
  images) the paper's weights let reconstruction and pull-away swamp faithfulness:

  ===  ===========================  ===========================
  k    paper: test R^2 / arg-max    default: test R^2 / arg-max
  ===  ===========================  ===========================
  3    0.133 / 0.354                0.555 / 0.611
  5    0.125 / 0.535                0.904 / 0.944
  8    0.179 / 0.500                0.994 / 0.979
  ===  ===========================  ===========================

  Each fit took 41-49 CPU seconds on one thread (five attempts each: neither weighting met
  the success rule for all 8 classes); explaining took 0.01-0.02 s per image in batches of
  16 (Grad-CAM maps). Three concepts cannot rebuild eight class scores well either way.
  The pull-away term still decorrelates the concepts at these weights
  (``tests/explain_engine/test_xnn.py``).
- For several explained classes the success rule is applied per class, averaging
  contributions over the images the classifier assigns to that class.

Example::

    xnn = XNN(k=5, seed=0)
    report = xnn.fit(model, train_images, holdout=test_images)   # report.holdout_r2, ...
    xnn.save("xnn.pt"); xnn = XNN.load("xnn.pt")
    result = xnn.explain(model, test_images[:4])   # result.heatmaps: (4, 5, H, W) in [0, 1]
    protos = xnn.prototypes(model, train_images, top_n=3)         # (5, 3) indices

Pure PyTorch: never imports Django.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import (
    call_model,
    model_device,
    normalize_per_image,
    params_hash,
    require_int,
    scoped_model_state,
)
from .gradcam import resolve_target_layer

__all__ = [
    "LOSS_WEIGHTS",
    "PAPER_LOSS_WEIGHTS",
    "FitReport",
    "LossWeights",
    "SparseReconstructionAutoencoder",
    "XNN",
    "XNNResult",
    "cmwp_chain",
    "log_penalty_loss",
    "pull_away_loss",
    "r2_score",
]

K_RANGE = (3, 8)
PULL_AWAY_AXES = ("images", "features", "none")
HEATMAP_METHODS = ("auto", "cmwp", "gradcam")
_EPS = 1e-12


# ------------------------------------------------------------------------------ module


class SparseReconstructionAutoencoder(nn.Module):
    """The SRAE of methods.md 2.2, sized to the input dimension.

    Encoder ``in_dim -> h1 -> h2 -> k``, each Linear + ReLU, dropout (p = 0.02) after the
    first layer; the k ReLU outputs are the x-features. Decoder mirrors it (``k -> h2 -> h1 ->
    in_dim``, each Linear + ReLU). Head: Linear ``k -> num_outputs`` regressing the logits.
    The paper's 4096 -> 800 -> 100 -> k becomes ``h1 = min(800, 4 in_dim)``,
    ``h2 = min(100, in_dim)``, so a 128-d feature gets 128 -> 512 -> 100 -> k.
    """

    def __init__(self, in_dim: int, k: int, num_outputs: int, dropout: float = 0.02) -> None:
        super().__init__()
        h1, h2 = min(800, 4 * in_dim), min(100, in_dim)
        self.sizes = (in_dim, h1, h2, k)
        self.encoder = nn.ModuleList(
            [nn.Linear(a, b) for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True)]
        )
        self.decoder = nn.ModuleList(
            [nn.Linear(b, a) for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True)]
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(k, num_outputs)
        # He initialization and a small positive bias: with PyTorch's default (uniform bias
        # of either sign) most of the k ReLU codes start dead on non-negative features and
        # never recover, leaving one x-feature.
        for layer in (*self.encoder, *self.decoder):
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
            nn.init.constant_(layer.bias, 0.1)

    def encode(self, features: Tensor, depth: int | None = None) -> Tensor:
        """x-features (B, k); with `depth`, the output of the first `depth` encoder layers."""
        h = features
        for i, layer in enumerate(self.encoder[:depth]):
            h = F.relu(layer(h))
            if i == 0:
                h = self.dropout(h)
        return h

    def decode(self, codes: Tensor, depth: int | None = None) -> Tensor:
        """Reconstruction from codes; with `depth`, from the output of encoder layer `depth`."""
        h = codes
        start = len(self.decoder) if depth is None else depth
        for layer in reversed(self.decoder[:start]):
            h = F.relu(layer(h))
        return h

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(x-features (B, k), reconstruction (B, in_dim), rebuilt scores (B, num_outputs))."""
        z = self.encode(features)
        return z, self.decode(z), self.head(z)


# ------------------------------------------------------------------------------ losses


def log_penalty_loss(reconstruction: Tensor, features: Tensor, q: float) -> Tensor:
    """Sparse reconstruction: mean_j log(1 + q e_j), e_j the batch-mean squared error of dim j."""
    per_dim = (reconstruction - features).pow(2).mean(dim=0)
    return torch.log1p(q * per_dim).mean()


def pull_away_loss(codes: Tensor, head_weight: Tensor, along: str = "images") -> Tensor:
    """Pull-away term summed over classes (methods.md 2.3).

    For class c, Z = codes * head_weight[c] + 1e-8 (contributions, (B, k)). Along "images"
    the rows (images) are L2-normalized, along "features" the columns (x-features); the loss
    is the mean squared off-diagonal cosine similarity, over n (n - 1) pairs.
    """
    if along not in ("images", "features"):
        raise ValueError(f"along must be 'images' or 'features'; got {along!r}")
    total = codes.new_zeros(())
    for weight in head_weight:
        z = codes * weight[None, :] + 1e-8
        if along == "features":
            z = z.T
        n = z.shape[0]
        if n < 2:
            continue
        unit = F.normalize(z, dim=1)
        sim = unit @ unit.T
        off = sim.pow(2).sum() - sim.diagonal().pow(2).sum()
        total = total + off / (n * (n - 1))
    return total


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """``autoParam`` of methods.md 2.3: sparse reconstruction on/off, q and the three weights."""

    sparse: bool
    q: float
    pred: float
    rec: float
    pt: float


#: The paper's starting weights per pull-away axis (methods.md 2.3, from
#: ``Main1_TrainXNN.py``); "none" is the images setting without the pull-away term.
PAPER_LOSS_WEIGHTS: dict[str, LossWeights] = {
    "images": LossWeights(sparse=True, q=100.0, pred=1.0, rec=10.0, pt=10.0),
    "features": LossWeights(sparse=True, q=100.0, pred=1.0, rec=15.0, pt=5.0),
    "none": LossWeights(sparse=True, q=100.0, pred=1.0, rec=10.0, pt=0.0),
}

#: This project's default starting weights: the paper's, with the reconstruction and
#: pull-away weights (and so their ratio) scaled by 1/1000 against faithfulness. Chosen on
#: ``benchmarks/xnn_fit.py`` (see the module docstring for the figures).
LOSS_WEIGHTS: dict[str, LossWeights] = {
    axis: dataclasses.replace(weights, rec=weights.rec / 1000, pt=weights.pt / 1000)
    for axis, weights in PAPER_LOSS_WEIGHTS.items()
}


def r2_score(prediction: Tensor, target: Tensor) -> float:
    """1 - SS_res / SS_tot over all entries of (N, C), SS_tot around each column's mean."""
    target = target.double()
    ss_res = (prediction.double() - target).pow(2).sum()
    ss_tot = (target - target.mean(dim=0, keepdim=True)).pow(2).sum()
    if float(ss_tot) == 0.0:
        return 1.0 if float(ss_res) == 0.0 else 0.0
    return float(1.0 - ss_res / ss_tot)


# ------------------------------------------------------------------------------ results


@dataclasses.dataclass
class FitReport:
    """What `XNN.fit` / `XNN.fit_features` did; plain data (JSON-serializable).

    ``attempts``: one dict per training run (loss weights, whether it met the success rule,
    the final losses, the mean contributions per class). ``success``: the kept run met it
    (≥ 2 x-features with positive mean contribution and the 2nd largest ≥ 0.3 × the largest,
    for every explained class). R² is over all (image, class) entries of the rebuilt scores
    versus the classifier's logits; agreement is the share of images whose rebuilt arg-max
    over the explained classes equals the classifier's. Holdout values are None without one.
    """

    k: int
    in_dim: int
    classes: list[int]
    layer: str
    attempts: list[dict[str, Any]]
    kept_attempt: int
    success: bool
    train_r2: float
    train_agreement: float
    holdout_r2: float | None
    holdout_agreement: float | None
    seconds: float


@dataclasses.dataclass
class XNNResult:
    """What `XNN.explain` returns; tensors on the CPU. C = number of explained classes.

    Attributes:
        activations: (B, k) x-feature values (≥ 0).
        contributions: (B, C, k) activation × head weight, per explained class.
        rebuilt_scores: (B, C) contributions summed plus the head bias.
        logits: (B, C) the classifier's own logits for the explained classes.
        bias: (C,) the head bias.
        classes: the explained class indices (of the classifier), in column order.
        targets: (B,) column index into ``classes`` shown by default: the given targets, or
            the classifier's arg-max over the explained classes.
        heatmaps: (B, k, H, W) in [0, 1], one per concept, 1 = most important.
        heatmap_method: "cmwp" or "gradcam".
        heatmap_layer: the layer c-MWP stopped at, or Grad-CAM's layer.
    """

    activations: Tensor
    contributions: Tensor
    rebuilt_scores: Tensor
    logits: Tensor
    bias: Tensor
    classes: list[int]
    targets: Tensor
    heatmaps: Tensor
    heatmap_method: str
    heatmap_layer: str

    def target_contributions(self) -> Tensor:
        """(B, k) each concept's contribution to each image's target class."""
        index = self.targets[:, None, None].expand(-1, 1, self.contributions.shape[2])
        return self.contributions.gather(1, index)[:, 0]


# ------------------------------------------------------------------------------ XNN


class XNN:
    """Explanation module: fit once per classifier and class subset, then explain images.

    Parameters (checked at construction, ValueError otherwise):
        k: number of x-features (concepts), 3..8; default 5 (the CUB script's value).
        layer: None for the penultimate layer (the input of the model's last ``nn.Linear``,
            captured with a forward pre-hook); or a module name from ``named_modules()``
            whose output, flattened, is used.
        classes: classifier class indices explained together (one head output each);
            None = all of the model's classes.
        pull_away: "images" (default), "features" or "none" (no pull-away term); picks the
            starting loss weights from `LOSS_WEIGHTS` (or `PAPER_LOSS_WEIGHTS`' ratios).
        seed: seeds initialization, dropout and batch order (a private generator is used
            for the order; the global RNG is forked, so the caller's RNG state is untouched).
        epochs: joint fine-tuning epochs (lr × 0.1 every 40 epochs, weight decay 1e-4).
        pretrain_epochs: epochs of each greedy layer-wise pre-training step and of the head
            pre-training.
        batch_size: SRAE training batch (50 as in the paper's code).
        max_attempts: training runs with automatic re-weighting (α_rec × 1.2 and α_PT × 0.8
            after a failed run); the first successful run is kept, else the run with the
            most successful classes, then the lowest prediction loss.
        heatmap: "auto" (c-MWP where `cmwp_chain` applies, else Grad-CAM), "cmwp" (error
            when it does not apply) or "gradcam".
        inference_batch_size: images per forward pass in feature extraction and explain.
        loss_weights: a `LossWeights` (or its dict) overriding the starting weights; None =
            this project's `LOSS_WEIGHTS` for ``pull_away`` (the paper's table,
            `PAPER_LOSS_WEIGHTS`, with reconstruction and pull-away scaled by 1/1000; see
            the module docstring for why).
        lr_step_epochs: fine-tuning multiplies the learning rate by 0.1 every this many
            epochs (40 in the paper's code).
    """

    slug: ClassVar[str] = "xnn"
    #: Fitted once per classifier and class subset before it explains (methods registry).
    needs_fit: ClassVar[bool] = True

    def __init__(
        self,
        *,
        k: int = 5,
        layer: str | None = None,
        classes: Sequence[int] | None = None,
        pull_away: str = "images",
        seed: int = 0,
        epochs: int = 120,
        pretrain_epochs: int = 20,
        batch_size: int = 50,
        max_attempts: int = 5,
        heatmap: str = "auto",
        inference_batch_size: int = 32,
        loss_weights: LossWeights | dict[str, Any] | None = None,
        lr_step_epochs: int = 40,
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or not K_RANGE[0] <= k <= K_RANGE[1]:
            raise ValueError(f"k must be an integer in {K_RANGE[0]}..{K_RANGE[1]}; got {k!r}")
        if layer is not None and (not isinstance(layer, str) or not layer):
            raise ValueError(f"layer must be a non-empty module name or None; got {layer!r}")
        if classes is not None:
            classes = [int(c) for c in classes]
            if not classes or min(classes) < 0 or len(set(classes)) != len(classes):
                raise ValueError(f"classes must be distinct non-negative indices; got {classes}")
        if pull_away not in PULL_AWAY_AXES:
            raise ValueError(f"pull_away must be one of {PULL_AWAY_AXES}; got {pull_away!r}")
        if heatmap not in HEATMAP_METHODS:
            raise ValueError(f"heatmap must be one of {HEATMAP_METHODS}; got {heatmap!r}")
        require_int(seed, "seed", minimum=0)
        require_int(epochs, "epochs", minimum=1)
        require_int(pretrain_epochs, "pretrain_epochs", minimum=0)
        require_int(batch_size, "batch_size", minimum=2)
        require_int(max_attempts, "max_attempts", minimum=1)
        require_int(inference_batch_size, "inference_batch_size", minimum=1)
        require_int(lr_step_epochs, "lr_step_epochs", minimum=1)
        if isinstance(loss_weights, dict):
            loss_weights = LossWeights(**loss_weights)
        if loss_weights is not None and not isinstance(loss_weights, LossWeights):
            raise ValueError(f"loss_weights must be a LossWeights or None; got {loss_weights!r}")
        self.k = k
        self.layer = layer
        self.classes = classes
        self.pull_away = pull_away
        self.seed = seed
        self.epochs = epochs
        self.pretrain_epochs = pretrain_epochs
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.heatmap = heatmap
        self.inference_batch_size = inference_batch_size
        self.loss_weights = loss_weights
        self.lr_step_epochs = lr_step_epochs
        self.module: SparseReconstructionAutoencoder | None = None
        self.fitted_classes: list[int] | None = None
        self.report: FitReport | None = None

    def params(self) -> dict[str, Any]:
        """The constructor parameters, as plain data."""
        return {
            "k": self.k,
            "layer": self.layer,
            "classes": self.classes,
            "pull_away": self.pull_away,
            "seed": self.seed,
            "epochs": self.epochs,
            "pretrain_epochs": self.pretrain_epochs,
            "batch_size": self.batch_size,
            "max_attempts": self.max_attempts,
            "heatmap": self.heatmap,
            "inference_batch_size": self.inference_batch_size,
            "loss_weights": None
            if self.loss_weights is None
            else dataclasses.asdict(self.loss_weights),
            "lr_step_epochs": self.lr_step_epochs,
        }

    def params_hash(self) -> str:
        """sha256 of the slug and `params()` as canonical JSON, as for the saliency methods."""
        return params_hash(self.slug, self.params())

    # -------------------------------------------------------------- features

    def extract(self, model: nn.Module, images: Tensor | Iterable[Tensor]) -> tuple[Tensor, Tensor]:
        """(features (N, D), logits (N, num_classes)) on the CPU, in no-grad batches.

        `images` is a (N, 3, H, W) tensor or an iterable of such batches. The model's flags
        are restored and the hook removed afterwards, even on error.
        """
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        device = model_device(model)
        feats: list[Tensor] = []
        logits: list[Tensor] = []
        with scoped_model_state(model), torch.no_grad(), self._feature_hook(model) as captured:
            for batch in _batches(images, self.inference_batch_size):
                captured.clear()
                out = call_model(model, batch.to(device=device, dtype=torch.float32))
                feats.append(_single_capture(captured, self._layer_name(model)).cpu())
                logits.append(out.float().cpu())
        if not feats:
            raise ValueError("images is empty")
        return torch.cat(feats), torch.cat(logits)

    def _layer_name(self, model: nn.Module) -> str:
        if self.layer is not None:
            return self.layer
        return f"input of {_last_linear(model)[0]}"

    @contextmanager
    def _feature_hook(self, model: nn.Module) -> Iterator[list[Tensor]]:
        """Capture the layer's features (B, D) in a list; the hook is removed in ``finally``."""
        captured: list[Tensor] = []
        if self.layer is None:
            _, module = _last_linear(model)

            def pre_hook(_module: nn.Module, inputs: tuple[Any, ...]) -> None:
                captured.append(inputs[0].flatten(1))

            handle = module.register_forward_pre_hook(pre_hook)
        else:
            names = {name for name, _ in model.named_modules() if name}
            if self.layer not in names:
                raise ValueError(f"layer {self.layer!r} is not a module of this model")

            def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
                captured.append(output.flatten(1))

            handle = model.get_submodule(self.layer).register_forward_hook(hook)
        try:
            yield captured
        finally:
            handle.remove()

    # -------------------------------------------------------------- fitting

    def fit(
        self,
        model: nn.Module,
        images: Tensor | Iterable[Tensor],
        *,
        holdout: Tensor | Iterable[Tensor] | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> FitReport:
        """Extract the layer's features and the logits of `images` (train split), fit the SRAE.

        `holdout` (images the SRAE never sees, e.g. the test split) gives the report's
        faithfulness. The model is left as it was (flags, gradients; hooks removed).
        `progress` is passed to `fit_features`.
        """
        started = time.perf_counter()
        features, logits = self.extract(model, images)
        held = None if holdout is None else self.extract(model, holdout)
        report = self.fit_features(
            features,
            logits,
            holdout_features=None if held is None else held[0],
            holdout_logits=None if held is None else held[1],
            layer=self._layer_name(model),
            progress=progress,
        )
        report.seconds = time.perf_counter() - started
        return report

    def fit_features(
        self,
        features: Tensor,
        logits: Tensor,
        *,
        holdout_features: Tensor | None = None,
        holdout_logits: Tensor | None = None,
        layer: str = "features",
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> FitReport:
        """Fit the SRAE on precomputed features (N, D) and the classifier's logits (N, C_all).

        Only the columns of `logits` in ``classes`` are regressed. Runs on the CPU.
        `progress`, if given, is called after every training epoch with a dict: ``attempt``
        (1-based) and ``max_attempts``, ``stage`` ("pretrain", "head" or "finetune"),
        ``epoch`` and ``epochs`` within the stage, ``step`` and ``steps`` over the attempt.
        """
        started = time.perf_counter()
        features, logits = _check_pair(features, logits, "features", "logits")
        classes = self.classes if self.classes is not None else list(range(logits.shape[1]))
        if max(classes) >= logits.shape[1]:
            raise ValueError(f"classes {classes} exceed the {logits.shape[1]} logit columns")
        targets = logits[:, classes]
        if features.shape[0] < 2:
            raise ValueError("need at least 2 training images")

        weights = self.loss_weights or LOSS_WEIGHTS[self.pull_away]
        attempts: list[dict[str, Any]] = []
        best: tuple[tuple[int, float], int, dict[str, Tensor]] | None = None
        for attempt in range(self.max_attempts):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed + 1000 * attempt)
                module = SparseReconstructionAutoencoder(features.shape[1], self.k, len(classes))
                generator = torch.Generator().manual_seed(self.seed + 1000 * attempt)
                on_epoch = _EpochReporter(progress, attempt + 1, self)
                losses = _train(module, features, targets, weights, self, generator, on_epoch)
            module.eval()
            with torch.no_grad():
                z, _, _ = module(features)
                passed, means = _success(z, module.head.weight, targets)
            info = {
                "weights": dataclasses.asdict(weights),
                "success": all(passed),
                "classes_passed": int(sum(passed)),
                "mean_contributions": means.tolist(),
                **losses,
            }
            attempts.append(info)
            rank = (int(sum(passed)), -losses["pred_loss"])
            if best is None or rank > best[0]:
                best = (rank, attempt, {k: v.clone() for k, v in module.state_dict().items()})
            if all(passed):
                break
            if self.pull_away == "none":
                weights = dataclasses.replace(weights, rec=weights.rec * 1.2)
            else:
                weights = dataclasses.replace(weights, rec=weights.rec * 1.2, pt=weights.pt * 0.8)

        assert best is not None
        module = SparseReconstructionAutoencoder(features.shape[1], self.k, len(classes))
        module.load_state_dict(best[2])
        self.module = module.eval()
        self.fitted_classes = list(classes)
        train_r2, train_agree = self._faithfulness(features, targets)
        holdout_r2 = holdout_agree = None
        if holdout_features is not None or holdout_logits is not None:
            if holdout_features is None or holdout_logits is None:
                raise ValueError("pass both holdout_features and holdout_logits, or neither")
            hf, hl = _check_pair(holdout_features, holdout_logits, "holdout features", "logits")
            holdout_r2, holdout_agree = self._faithfulness(hf, hl[:, classes])
        self.report = FitReport(
            k=self.k,
            in_dim=int(features.shape[1]),
            classes=list(classes),
            layer=layer,
            attempts=attempts,
            kept_attempt=best[1],
            success=bool(attempts[best[1]]["success"]),
            train_r2=train_r2,
            train_agreement=train_agree,
            holdout_r2=holdout_r2,
            holdout_agreement=holdout_agree,
            seconds=time.perf_counter() - started,
        )
        return self.report

    def _faithfulness(self, features: Tensor, targets: Tensor) -> tuple[float, float]:
        rebuilt = self.concepts(features)[2]
        agree = (rebuilt.argmax(dim=1) == targets.argmax(dim=1)).float().mean()
        return r2_score(rebuilt, targets), float(agree)

    # -------------------------------------------------------------- concepts

    def _fitted(self) -> SparseReconstructionAutoencoder:
        if self.module is None:
            raise RuntimeError(
                "this XNN is not fitted: fit it on the classifier's training images (fit) or "
                "load a fitted concept model (XNN.load) before explaining"
            )
        return self.module

    def concepts(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(activations (N, k), contributions (N, C, k), rebuilt scores (N, C)) of features."""
        module = self._fitted()
        with torch.no_grad():
            z = module.encode(features.float())
            contributions = z[:, None, :] * module.head.weight[None]
            rebuilt = contributions.sum(dim=2) + module.head.bias[None]
        return z, contributions, rebuilt

    # -------------------------------------------------------------- persistence

    def state_dict(self) -> dict[str, Any]:
        """Parameters, fitted classes, sizes and weights: plain data for ``torch.save``."""
        module = self._fitted()
        return {
            "format": "xnn/1",
            "params": self.params(),
            "fitted_classes": list(self.fitted_classes or []),
            "in_dim": module.sizes[0],
            "weights": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        torch.save(self.state_dict(), path)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> XNN:
        if not isinstance(state, dict) or state.get("format") != "xnn/1":
            raise ValueError("not an XNN state (expected format 'xnn/1')")
        xnn = cls(**state["params"])
        classes = list(state["fitted_classes"])
        module = SparseReconstructionAutoencoder(int(state["in_dim"]), xnn.k, len(classes))
        module.load_state_dict(state["weights"])
        xnn.module = module.eval()
        xnn.fitted_classes = classes
        return xnn

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> XNN:
        """Read a file written by `save` (``torch.load(weights_only=True)``)."""
        return cls.from_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    # -------------------------------------------------------------- explaining

    def explain(self, model: nn.Module, images: Tensor, targets: Tensor | None = None) -> XNNResult:
        """Concept activations, contributions, rebuilt scores and per-concept heatmaps.

        Args:
            model: the classifier the XNN was fitted on; left as it was.
            images: (B, 3, H, W) float, normalized for the model; never modified.
            targets: (B,) classifier class indices (each in ``classes``) to report in
                ``result.targets``; None = the classifier's arg-max over the explained classes.
        """
        module = self._fitted()
        classes = list(self.fitted_classes or [])
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError("images must be a (B, 3, H, W) tensor")
        if targets is not None:
            if tuple(targets.shape) != (images.shape[0],):
                raise ValueError("targets must have shape (B,)")
            missing = sorted(set(targets.tolist()) - set(classes))
            if missing:
                raise ValueError(f"targets {missing} are not explained classes {classes}")
        features, logits = self.extract(model, images)
        logits = logits[:, classes]
        z, contributions, rebuilt = self.concepts(features)
        if targets is None:
            columns = logits.argmax(dim=1)
        else:
            columns = torch.tensor([classes.index(int(t)) for t in targets], dtype=torch.long)

        method, layer_name, heatmaps = self._heatmaps(model, images)
        return XNNResult(
            activations=z,
            contributions=contributions,
            rebuilt_scores=rebuilt,
            logits=logits,
            bias=module.head.bias.detach().clone(),
            classes=classes,
            targets=columns,
            heatmaps=heatmaps,
            heatmap_method=method,
            heatmap_layer=layer_name,
        )

    def prototypes(
        self, model: nn.Module, train_images: Tensor | Iterable[Tensor], top_n: int = 3
    ) -> Tensor:
        """(k, top_n) indices into `train_images` of the images activating each concept most.

        Pass training-split images only (a tensor or an iterable of batches, as for `fit`).
        Ties keep the lower index first.
        """
        require_int(top_n, "top_n", minimum=1)
        features, _ = self.extract(model, train_images)
        if top_n > features.shape[0]:
            raise ValueError(f"top_n={top_n} exceeds the {features.shape[0]} images given")
        z = self.concepts(features)[0]
        order = torch.sort(z.T, dim=1, descending=True, stable=True).indices
        return order[:, :top_n].clone()

    def _heatmaps(self, model: nn.Module, images: Tensor) -> tuple[str, str, Tensor]:
        module = self._fitted()
        device = model_device(model)
        x_all = images.detach().to(device=device, dtype=torch.float32, copy=True)
        module_device = _ModuleOnDevice(module, device)
        maps: list[Tensor] = []
        with (
            torch.inference_mode(False),
            torch.enable_grad(),
            scoped_model_state(model),
            module_device as srae,
        ):
            chain = None
            if self.heatmap in ("auto", "cmwp"):
                chain = cmwp_chain(model, x_all[:1], self.layer)
                if chain is None and self.heatmap == "cmwp":
                    raise ValueError(
                        "c-MWP needs a plain feed-forward CNN (conv/linear/ReLU/pool/BN/flatten "
                        "leaf modules applied in sequence); use heatmap='gradcam' or 'auto'"
                    )
            if chain is not None:
                method, layer_name = "cmwp", chain.stop_name
            else:
                method, layer_name = "gradcam", resolve_target_layer(model, x_all[:1])
            for start in range(0, x_all.shape[0], self.inference_batch_size):
                x = x_all[start : start + self.inference_batch_size]
                if chain is not None:
                    raw = _cmwp_maps(model, srae, x, chain)
                else:
                    raw = _gradcam_maps(model, srae, x, layer_name, self._feature_hook)
                raw = F.interpolate(raw, size=x.shape[-2:], mode="bilinear", align_corners=True)
                b, k = raw.shape[:2]
                norm = normalize_per_image(raw.reshape(b * k, *raw.shape[2:]).detach().cpu())
                maps.append(norm.reshape(raw.shape))
        return method, layer_name, torch.cat(maps)


# ------------------------------------------------------------------------------ training


def _train(
    module: SparseReconstructionAutoencoder,
    features: Tensor,
    targets: Tensor,
    weights: LossWeights,
    xnn: XNN,
    generator: torch.Generator,
    on_epoch: _EpochReporter,
) -> dict[str, float]:
    """Layer-wise pre-training, head pre-training, joint fine-tuning (methods.md 2.3)."""
    n = features.shape[0]

    def batches() -> list[Tensor]:
        order = torch.randperm(n, generator=generator)
        return list(order.split(xnn.batch_size))

    revived = 0
    module.train()
    # 1. greedy layer-wise pre-training: layer i reconstructs the (frozen) output of i - 1.
    for depth in range(len(module.encoder)):
        enc, dec = module.encoder[depth], module.decoder[depth]
        optimizer = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
        for epoch in range(xnn.pretrain_epochs):
            for idx in batches():
                with torch.no_grad():
                    below = module.encode(features[idx], depth)
                h = F.relu(enc(below))
                if depth == 0:
                    h = module.dropout(h)
                loss = F.mse_loss(F.relu(dec(h)), below)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            revived += _revive_dead_units(module, features, depth, generator)
            done = depth * xnn.pretrain_epochs + epoch + 1
            on_epoch("pretrain", done, len(module.encoder) * xnn.pretrain_epochs)
    # 2. head pre-training on the frozen codes.
    optimizer = torch.optim.Adam(module.head.parameters(), lr=1e-3)
    for epoch in range(xnn.pretrain_epochs):
        for idx in batches():
            with torch.no_grad():
                z = module.encode(features[idx])
            loss = F.mse_loss(module.head(z), targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        on_epoch("head", epoch + 1, xnn.pretrain_epochs)
    # 3. joint fine-tuning with the full loss.
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=xnn.lr_step_epochs, gamma=0.1)
    for epoch in range(xnn.epochs):
        for idx in batches():
            loss, _ = _total_loss(module, features[idx], targets[idx], weights, xnn.pull_away)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()
        for depth in range(len(module.encoder)):
            revived += _revive_dead_units(module, features, depth, generator)
        on_epoch("finetune", epoch + 1, xnn.epochs)
    module.eval()
    with torch.no_grad():
        _, parts = _total_loss(module, features, targets, weights, xnn.pull_away)
    parts["revived_units"] = revived
    return parts


class _EpochReporter:
    """Turns `_train`'s (stage, epoch, epochs) calls into `fit_features`' progress dicts."""

    def __init__(
        self, progress: Callable[[dict[str, Any]], None] | None, attempt: int, xnn: XNN
    ) -> None:
        self.progress = progress
        self.attempt = attempt
        self.max_attempts = xnn.max_attempts
        # three encoder layers and the head are pre-trained, then the whole is fine-tuned
        self.steps = 4 * xnn.pretrain_epochs + xnn.epochs
        self.step = 0

    def __call__(self, stage: str, epoch: int, epochs: int) -> None:
        self.step += 1
        if self.progress is not None:
            self.progress(
                {
                    "attempt": self.attempt,
                    "max_attempts": self.max_attempts,
                    "stage": stage,
                    "epoch": epoch,
                    "epochs": epochs,
                    "step": self.step,
                    "steps": self.steps,
                }
            )


def _revive_dead_units(
    module: SparseReconstructionAutoencoder,
    features: Tensor,
    depth: int,
    generator: torch.Generator,
) -> int:
    """Re-draw the incoming weights of encoder layer `depth`'s units that no input activates.

    A dead ReLU unit gets no gradient and never recovers; in the bottleneck that silently
    leaves fewer than k x-features (seen at every loss weighting on small feature sets).
    A dead unit's weights are re-drawn (He uniform) and its bias set so that it is active on
    about half of the training inputs. Returns the number of units revived.
    """
    layer = module.encoder[depth]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            below = module.encode(features, depth)
            dead = (F.relu(layer(below)) <= 0).all(dim=0).nonzero()[:, 0]
            if len(dead) == 0:
                return 0
            bound = math.sqrt(6.0 / layer.in_features)
            fresh = torch.rand(len(dead), layer.in_features, generator=generator)
            layer.weight[dead] = (fresh * 2 - 1) * bound
            pre = below @ layer.weight[dead].T
            layer.bias[dead] = -pre.median(dim=0).values + 1e-3
            return len(dead)
    finally:
        module.train(was_training)


def _total_loss(
    module: SparseReconstructionAutoencoder,
    features: Tensor,
    targets: Tensor,
    weights: LossWeights,
    pull_away: str,
) -> tuple[Tensor, dict[str, float]]:
    z, reconstruction, rebuilt = module(features)
    pred = F.mse_loss(rebuilt, targets)
    if weights.sparse:
        rec = log_penalty_loss(reconstruction, features, weights.q)
    else:
        rec = F.mse_loss(reconstruction, features)
    if pull_away == "none" or weights.pt == 0:
        pt = features.new_zeros(())
    else:
        pt = pull_away_loss(z, module.head.weight, pull_away)
    total = weights.pred * pred + weights.rec * rec + weights.pt * pt
    parts = {"pred_loss": pred.item(), "rec_loss": rec.item(), "pt_loss": pt.item()}
    return total, parts


def _success(z: Tensor, head_weight: Tensor, targets: Tensor) -> tuple[list[bool], Tensor]:
    """Per class: ≥ 2 positive mean contributions and the 2nd largest ≥ 0.3 × the largest.

    A class's mean contribution is over the images the classifier assigns to it (arg-max of
    the explained logits), or over all images when it is assigned none.
    """
    assigned = targets.argmax(dim=1)
    passed: list[bool] = []
    means = []
    for c, weight in enumerate(head_weight):
        rows = z[assigned == c] if bool((assigned == c).any()) else z
        mean = (rows * weight[None]).mean(dim=0)
        means.append(mean)
        top = torch.sort(mean, descending=True).values
        passed.append(bool(top[1] > 0 and top[1] >= 0.3 * top[0]))
    return passed, torch.stack(means)


# ------------------------------------------------------------------------------ heatmaps


@dataclasses.dataclass
class _Step:
    """One c-MWP step: a leaf module (or a conv/linear with its BN folded in)."""

    kind: str  # "affine", "maxpool", "avgpool", "pass"
    module: nn.Module
    name: str
    weight: Tensor | None = None  # folded weight for "affine"
    folded: nn.Module | None = None  # the batch norm folded into an "affine" step

    def forward(self, x: Tensor) -> Tensor:
        out = self.module(x)
        return out if self.folded is None else self.folded(out)


@dataclasses.dataclass
class _Chain:
    steps: list[_Step]  # the CNN's steps from the image to the XNN's features, in order
    stop: int  # c-MWP maps are read at the input of steps[stop]
    stop_name: str


_AFFINE = (nn.Conv2d, nn.Linear)
_PASS = (nn.ReLU, nn.Dropout, nn.Flatten, nn.Identity, nn.BatchNorm1d, nn.BatchNorm2d)
_ALLOWED = (*_AFFINE, *_PASS, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)


def cmwp_chain(model: nn.Module, probe: Tensor, layer: str | None = None) -> _Chain | None:
    """The model as a chain of c-MWP steps up to the XNN's layer, or None if it is not one.

    c-MWP applies when, in one probe forward pass (temporary hooks, always removed), every
    leaf module run before the XNN's layer is a Conv2d, Linear, ReLU, Dropout, Flatten,
    Identity, BatchNorm, MaxPool2d, AvgPool2d or AdaptiveAvgPool2d, runs once, and takes as
    input exactly the previous leaf's output (the image for the first; a ``view`` such as
    ``torch.flatten`` counts), and the XNN's features are the last such output. A residual
    addition, a concatenation or any other functional op between modules breaks the chain
    (ResNets, SmallCNN, MobileNet): those models get Grad-CAM concept maps instead.

    Batch norm (eval mode, an affine map per channel) directly after a Conv2d/Linear is
    folded into it (weights scaled by gamma / sqrt(var + eps)) before taking W+; elsewhere
    it passes the probability through unchanged. The maps are read at the input of the
    first convolution that follows a ReLU, i.e. at the lowest non-negative activation (the
    image itself can be negative, so MWP does not apply there).
    """
    records: list[tuple[str, nn.Module, Any, Any]] = []
    feature_at: list[tuple[int, Any]] = []
    names = {module: name for name, module in model.named_modules()}
    handles = []

    def record(_module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        records.append((names[_module], _module, inputs[0] if inputs else None, output))

    try:
        for module in model.modules():
            if not list(module.children()):
                handles.append(module.register_forward_hook(record))
        if layer is None:
            target = _last_linear(model)[1]
            handles.append(
                target.register_forward_pre_hook(
                    lambda _m, inputs: feature_at.append((len(records), inputs[0]))
                )
            )
        else:
            handles.append(
                model.get_submodule(layer).register_forward_hook(
                    lambda _m, _inputs, output: feature_at.append((len(records), output))
                )
            )
        with torch.no_grad():
            call_model(model, probe)
    finally:
        for handle in handles:
            handle.remove()
    if len(feature_at) != 1 or feature_at[0][0] == 0:
        return None
    records = records[: feature_at[0][0]]
    previous: Tensor = probe
    seen: set[int] = set()
    for _name, module, inp, out in records:
        if not isinstance(module, _ALLOWED) or id(module) in seen:
            return None
        seen.add(id(module))
        if not isinstance(inp, Tensor) or not isinstance(out, Tensor) or not _same(inp, previous):
            return None
        previous = out
    if not isinstance(feature_at[0][1], Tensor) or not _same(feature_at[0][1], previous):
        return None
    steps: list[_Step] = []
    i = 0
    while i < len(records):
        name, module, _, _ = records[i]
        if isinstance(module, _AFFINE):
            weight = module.weight.detach()
            nxt = records[i + 1][1] if i + 1 < len(records) else None
            folded = None
            if isinstance(nxt, (nn.BatchNorm1d, nn.BatchNorm2d)) and nxt.running_var is not None:
                scale = (nxt.weight if nxt.affine else torch.ones_like(nxt.running_var)).detach()
                scale = scale / torch.sqrt(nxt.running_var + nxt.eps)
                weight = weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))
                folded = nxt
                i += 1
            steps.append(_Step("affine", module, name, weight, folded))
        elif isinstance(module, nn.MaxPool2d):
            steps.append(_Step("maxpool", module, name))
        elif isinstance(module, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            steps.append(_Step("avgpool", module, name))
        else:
            steps.append(_Step("pass", module, name))
        i += 1
    stop = None
    after_relu = False
    for j, step in enumerate(steps):
        if isinstance(step.module, nn.ReLU):
            after_relu = True
        elif after_relu and isinstance(step.module, nn.Conv2d):
            stop = j
            break
    if stop is None:
        return None
    return _Chain(steps=steps, stop=stop, stop_name=f"input of {steps[stop].name}")


def _same(a: Tensor, b: Tensor) -> bool:
    """`a` is `b` or a view of the same storage with the same elements."""
    if a is b:
        return True
    return (
        a.data_ptr() == b.data_ptr()
        and a.numel() == b.numel()
        and a.shape[0] == b.shape[0]
        and a.dtype == b.dtype
    )


def _mwp_step(step: _Step, x: Tensor, p_out: Tensor, weight: Tensor | None = None) -> Tensor:
    """Marginal winning probability of a step's input from that of its output.

    Affine: P(x_j) = x_j * sum_i W+_ij P(y_i) / sum_j' W+_ij' x_j' (bias ignored, x+ used).
    Max pooling sends each output's probability to its winner; average pooling is an affine
    map with positive weights; everything else passes it through (reshaped).
    """
    module = step.module
    if step.kind == "pass":
        return p_out.reshape(x.shape)
    xx = x.detach().clamp(min=0).requires_grad_(True)
    if step.kind == "maxpool":
        z = module(xx)
        (grad,) = torch.autograd.grad(z, xx, p_out.reshape(z.shape))
        return grad
    if step.kind == "avgpool":
        z = module(xx)
    else:
        w = (step.weight if weight is None else weight).clamp(min=0)
        if isinstance(module, nn.Conv2d):
            z = F.conv2d(xx, w, None, module.stride, module.padding, module.dilation, module.groups)
        else:
            z = F.linear(xx.flatten(1), w).reshape(x.shape[0], -1)
    p = p_out.reshape(z.shape)
    ratio = torch.where(z > _EPS, p / z.clamp(min=_EPS), torch.zeros_like(p))
    (grad,) = torch.autograd.grad(z, xx, ratio)
    return (xx * grad).detach()


def _cmwp_maps(
    model: nn.Module, srae: SparseReconstructionAutoencoder, images: Tensor, chain: _Chain
) -> Tensor:
    """(b, k, h, w) c-MWP maps at the chain's stop layer, one per x-feature.

    Top-down from each x-feature node z_j: the node's incoming weights (row j of the last
    encoder layer) give P; the dual node with negated weights gives P-bar; both propagate
    with MWP through the rest of the encoder and the CNN to the stop layer, where
    c-MWP = ReLU(sum over channels of (P - P-bar)).
    """
    inputs: list[Tensor] = []
    with torch.no_grad():
        h = images
        for step in chain.steps:
            inputs.append(h)
            h = step.forward(h)
        features = h.flatten(1)
        enc_inputs = [features]
        g = features
        for i, layer in enumerate(srae.encoder[:-1]):
            g = F.relu(layer(g))
            if i == 0:
                g = srae.dropout(g)
            enc_inputs.append(g)
    k = srae.sizes[-1]
    top = srae.encoder[-1]
    maps = []
    for j in range(k):
        signed = []
        for sign in (1.0, -1.0):
            row = top.weight[j : j + 1].detach() * sign
            p = torch.ones(images.shape[0], 1, device=images.device)
            fake = _Step("affine", top, "xnn.top", row)
            p = _mwp_step(fake, enc_inputs[-1], p)
            for layer, x in zip(
                reversed(list(srae.encoder[:-1])), reversed(enc_inputs[:-1]), strict=True
            ):
                p = _mwp_step(_Step("affine", layer, "xnn", layer.weight.detach()), x, p)
            p = p.reshape(h.shape)
            for step, x in zip(
                reversed(chain.steps[chain.stop :]), reversed(inputs[chain.stop :]), strict=True
            ):
                p = _mwp_step(step, x, p)
            signed.append(p)
        contrast = (signed[0] - signed[1]).sum(dim=1)
        maps.append(F.relu(contrast))
    return torch.stack(maps, dim=1)


def _gradcam_maps(
    model: nn.Module,
    srae: SparseReconstructionAutoencoder,
    images: Tensor,
    layer_name: str,
    feature_hook,
) -> Tensor:
    """(b, k, h, w) Grad-CAM maps of each x-feature at `layer_name` (ReLU of the weighted sum)."""
    captured: list[Tensor] = []

    def keep(_module: nn.Module, _inputs: Any, output: Any) -> None:
        captured.append(output)

    x = images.detach().requires_grad_(True)
    handle = model.get_submodule(layer_name).register_forward_hook(keep)
    try:
        with feature_hook(model) as feats:
            call_model(model, x)
    finally:
        handle.remove()
    activation = captured[-1]
    z = srae.encode(feats[-1])
    maps = []
    for j in range(z.shape[1]):
        (grad,) = torch.autograd.grad(z[:, j].sum(), activation, retain_graph=True)
        weights = grad.mean(dim=(2, 3), keepdim=True)
        maps.append(F.relu((weights * activation).sum(dim=1)).detach())
    return torch.stack(maps, dim=1)


class _ModuleOnDevice:
    """Scope the SRAE on `device`, eval mode, parameters frozen; restored afterwards."""

    def __init__(self, module: SparseReconstructionAutoencoder, device: torch.device) -> None:
        self.module = module
        self.device = device
        self.original = next(module.parameters()).device
        self.scope = scoped_model_state(module)

    def __enter__(self) -> SparseReconstructionAutoencoder:
        self.module.to(self.device)
        self.scope.__enter__()
        return self.module

    def __exit__(self, *exc: Any) -> None:
        self.scope.__exit__(*exc)
        self.module.to(self.original)


# ------------------------------------------------------------------------------ helpers


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ValueError("the model has no nn.Linear: pass layer= explicitly")
    return found[-1]


def _single_capture(captured: list[Tensor], name: str) -> Tensor:
    if len(captured) != 1:
        raise ValueError(f"layer {name!r} ran {len(captured)} times in one forward pass")
    return captured[0].float()


def _batches(images: Tensor | Iterable[Tensor], size: int) -> Iterator[Tensor]:
    if isinstance(images, Tensor):
        if images.ndim != 4:
            raise ValueError(f"images must be (N, 3, H, W); got {tuple(images.shape)}")
        yield from images.split(size)
        return
    for batch in images:
        if not isinstance(batch, Tensor) or batch.ndim != 4:
            raise ValueError("an image iterator must yield (b, 3, H, W) tensors")
        yield from batch.split(size)


def _check_pair(a: Tensor, b: Tensor, name_a: str, name_b: str) -> tuple[Tensor, Tensor]:
    if not isinstance(a, Tensor) or a.ndim != 2 or not isinstance(b, Tensor) or b.ndim != 2:
        raise ValueError(f"{name_a} and {name_b} must be 2-D tensors (N, D) and (N, C)")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} has {a.shape[0]} rows but {name_b} has {b.shape[0]}")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError(f"{name_a} or {name_b} contain NaN or infinite values")
    return a.detach().float().cpu(), b.detach().float().cpu()
