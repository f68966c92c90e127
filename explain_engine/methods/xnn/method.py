"""The XNN explanation method: parameters, fitting, explaining, prototypes, persistence.

Pure PyTorch: never imports Django.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..base import (
    ExplanationMethod,
    call_model,
    model_device,
    normalize_per_image,
    require_int,
    scoped_model_state,
)
from .autoencoder import SparseReconstructionAutoencoder, r2_score
from .heatmaps import HEATMAP_METHODS, concept_heatmaps
from .training import AUTHORS_LOSS_WEIGHTS, LossWeights, train_models

__all__ = ["FitReport", "WeakFitError", "XNN", "XNNResult", "mean_abs_correlation"]

K_RANGE = (3, 8)
MODES = ("per_class", "shared")
PULL_AWAY_AXES = ("images", "features", "none")
#: Images whose concept heatmaps measure the fit's heatmap diversity.
DIVERSITY_IMAGES = 32


class WeakFitError(ValueError):
    """The fit failed the success rule or the faithfulness bar after every attempt."""


@dataclasses.dataclass
class FitReport:
    """What `XNN.fit` / `XNN.fit_features` did; plain data (JSON-serializable).

    ``attempts``: one dict per training run (its classes, loss weights, whether it met the
    success rule and the R^2 bar, its train R^2, final losses and mean contributions).
    ``success``: every kept run met them. ``accepted_weak_fit``: it did not, and the caller
    kept it anyway. R^2 is over all (image, class) entries of the rebuilt scores versus the
    classifier's logits; agreement is the share of images whose rebuilt arg-max over the
    explained classes equals the classifier's. ``diversity``: mean pairwise |correlation| of
    the concepts' activations (over the holdout images, else the train images) and, after
    `XNN.fit`, of their heatmaps (per image, over up to 32 of them). Holdout values are None
    without a holdout.
    """

    k: int
    in_dim: int
    classes: list[int]
    mode: str
    layer: str
    attempts: list[dict[str, Any]]
    kept_attempts: list[int]
    success: bool
    accepted_weak_fit: bool
    train_r2: float
    train_agreement: float
    holdout_r2: float | None
    holdout_agreement: float | None
    diversity: dict[str, float | None]
    seconds: float


@dataclasses.dataclass
class XNNResult:
    """What `XNN.explain` returns; tensors on the CPU. C = number of explained classes.

    Attributes:
        activations: (B, k) x-feature values (>= 0) of the concepts shown: the shared ones,
            or (per-class mode) those of each image's target class.
        contributions: (B, C, k) activation x head weight per explained class (per-class
            mode: column c holds class c's own concepts).
        rebuilt_scores: (B, C) contributions summed plus the head bias.
        logits: (B, C) the classifier's own logits for the explained classes.
        bias: (C,) the head bias.
        classes: the explained class indices (of the classifier), in column order.
        targets: (B,) column index into ``classes`` shown by default: the given targets, or
            the classifier's arg-max over the explained classes.
        heatmaps: (B, k, H, W) in [0, 1], one per concept shown, 1 = most important.
        heatmap_method: "cmwp", "mwp" or "gradcam".
        heatmap_layer: the layer the maps were read at.
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

    def present(self) -> Tensor:
        """(B, k) bool: the concepts each image holds. An x-feature is a ReLU, exactly 0 on
        an image without the concept; that concept's heatmap then shows where it would be,
        not where the AI found it, and is not shown as such (`render.xnn_concept_panel`)."""
        return self.activations > 0

    def target_contributions(self) -> Tensor:
        """(B, k) each concept's contribution to each image's target class."""
        index = self.targets[:, None, None].expand(-1, 1, self.contributions.shape[2])
        return self.contributions.gather(1, index)[:, 0]


@dataclasses.dataclass
class _Fitted:
    modules: list[SparseReconstructionAutoencoder]
    classes: list[int]
    report: FitReport | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class XNN(ExplanationMethod):
    """Explanation module (Qi, Khorram, Li, arXiv 1709.05360): fit once, then explain images.

    An SRAE embeds one layer's activation (by default the penultimate layer, the input of the
    model's last ``nn.Linear``) into k non-negative x-features (concepts); a linear head
    rebuilds the classifier's logits from them, so concept j's contribution to class c is
    ``z_j * W_head[c, j]`` and the rebuilt score is their sum plus the bias. Each concept's
    heatmap is contrastive Excitation Backprop from its node through CNN + XNN (`heatmaps`).

    Parameters (checked at construction, ValueError otherwise):
        batch_size: images per forward pass (feature extraction, explaining).
        k: number of x-features (concepts) per SRAE, 3..8; 5 as the authors' CUB script.
        layer: None for the penultimate layer; or a module name whose output, flattened, is
            embedded.
        classes: classifier class indices explained; None = all of the model's classes.
        mode: "per_class" (one SRAE per class regressing its logit, one-vs-all as the
            authors' gull code; k concepts per class) or "shared" (one SRAE whose k concepts
            rebuild every explained class).
        pull_away: "images" (the authors' default), "features" or "none"; picks the
            starting loss weights from `AUTHORS_LOSS_WEIGHTS`.
        loss_weights: a `LossWeights` (or its dict) overriding the starting weights.
        seed: seeds initialization, dropout and batch order (the caller's RNG is untouched).
        epochs: joint fine-tuning epochs; pretrain_epochs: epochs of each layer-wise
            pre-training step and of the head pre-training; train_batch_size: SRAE batch (50
            as the authors'); lr_step_epochs: None (the default) keeps the learning rate
            constant, as every run of the authors' scripts does: their ``adjust_lr`` drops it
            x 0.1 every 40 epochs, but the CUB script fine-tunes 1 epoch and the
            concept-supervised one 10, so the drop never fires; an integer drops it every
            this many fine-tuning epochs. On the demo's 336 training images an epoch is 7
            batches (theirs about 160), so dropping every 40 epochs cut the rate tenfold
            after 280 steps and again after 560: test R^2 0.79 to 0.87 over three seeds at
            the former 120 epochs, against 0.91 to 0.93 constant at the default 150
            (``benchmarks/xnn_fit.py --configs step40 per_class --seeds 0 1 2
            --threads 1``).
        max_attempts: training runs per SRAE, re-weighted after a failed one (`training`).
        min_r2: our faithfulness bar, added to the authors' success rule (train R^2 for
            retrying, holdout R^2 for refusing); 0.8 by default: concepts that rebuild less
            than 80% of the logits' variance do not explain the classifier (on the demo the
            per-class fit reaches 0.91 to 0.93 on the test split: ``benchmarks/xnn_fit.py``).
        heatmap: "cmwp" (the paper's), "mwp" or "gradcam" (an option for comparison only;
            recorded in each result's ``heatmap_method``).
        heatmap_layer: where maps are read; None = the deepest layer every path crosses with
            at least 1/8 of the input's side (28 x 28 at 224).

    ``get_method("xnn", ...)`` gives an unfitted XNN, whose `params` and `params_hash` name
    a fit and whose `explain` raises RuntimeError until it is fitted or loaded (`load`).
    A fit failing the success rule raises `WeakFitError` unless ``accept_weak_fit=True``.

    Example::

        xnn = XNN(k=5, mode="shared")
        report = xnn.fit(model, train_images, holdout=test_images)
        xnn.save("xnn.pt"); xnn = XNN.load("xnn.pt")
        result = xnn.explain(model, test_images[:4])   # result.heatmaps: (4, 5, H, W)
        protos = xnn.prototypes(model, train_images, top_n=3)   # (1, 5, 3) indices
    """

    slug: ClassVar[str] = "xnn"
    needs_fit: ClassVar[bool] = True

    k: int = 5
    layer: str | None = None
    classes: list[int] | None = None
    mode: str = "per_class"
    pull_away: str = "images"
    loss_weights: LossWeights | None = None
    seed: int = 0
    epochs: int = 150
    pretrain_epochs: int = 20
    train_batch_size: int = 50
    lr_step_epochs: int | None = None
    max_attempts: int = 5
    min_r2: float = 0.8
    heatmap: str = "cmwp"
    heatmap_layer: str | None = None

    def _check_params(self) -> None:
        k = self.k
        if isinstance(k, bool) or not isinstance(k, int) or not K_RANGE[0] <= k <= K_RANGE[1]:
            raise ValueError(f"k must be an integer in {K_RANGE[0]}..{K_RANGE[1]}; got {k!r}")
        for name in ("layer", "heatmap_layer"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a non-empty module name or None; got {value!r}")
        if self.classes is not None:
            classes = [int(c) for c in self.classes]
            if not classes or min(classes) < 0 or len(set(classes)) != len(classes):
                raise ValueError(f"classes must be distinct non-negative indices; got {classes}")
            object.__setattr__(self, "classes", classes)
        for name, allowed in (
            ("mode", MODES),
            ("pull_away", PULL_AWAY_AXES),
            ("heatmap", HEATMAP_METHODS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {getattr(self, name)!r}")
        for name, minimum in (
            ("seed", 0),
            ("epochs", 1),
            ("pretrain_epochs", 0),
            ("train_batch_size", 2),
            ("max_attempts", 1),
        ):
            require_int(getattr(self, name), name, minimum=minimum)
        if self.lr_step_epochs is not None:
            require_int(self.lr_step_epochs, "lr_step_epochs", minimum=1)
        if isinstance(self.min_r2, bool) or not isinstance(self.min_r2, int | float):
            raise ValueError(f"min_r2 must be a number <= 1; got {self.min_r2!r}")
        if not self.min_r2 <= 1:
            raise ValueError(f"min_r2 must be a number <= 1; got {self.min_r2!r}")
        weights = self.loss_weights
        if isinstance(weights, dict):
            object.__setattr__(self, "loss_weights", LossWeights(**weights))
        elif weights is not None and not isinstance(weights, LossWeights):
            raise ValueError(f"loss_weights must be a LossWeights or None; got {weights!r}")
        object.__setattr__(self, "_state", None)

    def starting_loss_weights(self) -> LossWeights:
        return self.loss_weights or AUTHORS_LOSS_WEIGHTS[self.pull_away]

    # -------------------------------------------------------------- fitted state

    @property
    def modules(self) -> list[SparseReconstructionAutoencoder] | None:
        """The fitted SRAEs (one, or one per explained class), or None before fitting."""
        return None if self._state is None else self._state.modules

    @property
    def fitted_classes(self) -> list[int] | None:
        return None if self._state is None else self._state.classes

    @property
    def report(self) -> FitReport | None:
        return None if self._state is None else self._state.report

    def _fitted(self) -> _Fitted:
        if self._state is None:
            raise RuntimeError(
                "this XNN is not fitted: fit it on the classifier's training images (fit) or "
                "load a fitted concept model (XNN.load) before explaining"
            )
        return self._state

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
            for batch in _batches(images, self.batch_size):
                captured.clear()
                out = call_model(model, batch.to(device=device, dtype=torch.float32))
                if len(captured) != 1:
                    raise ValueError(
                        f"layer {self._layer_name(model)!r} ran {len(captured)} times in one "
                        "forward pass"
                    )
                feats.append(captured[0].float().cpu())
                logits.append(out.float().cpu())
        if not feats:
            raise ValueError("images is empty")
        return torch.cat(feats), torch.cat(logits)

    def _layer_name(self, model: nn.Module) -> str:
        return self.layer if self.layer is not None else f"input of {_last_linear(model)[0]}"

    @contextmanager
    def _feature_hook(self, model: nn.Module) -> Iterator[list[Tensor]]:
        """Capture the layer's features (B, D) in a list; the hook is removed in ``finally``."""
        captured: list[Tensor] = []
        if self.layer is None:
            _, module = _last_linear(model)
            handle = module.register_forward_pre_hook(
                lambda _m, inputs: captured.append(inputs[0].flatten(1))
            )
        else:
            if self.layer not in {name for name, _ in model.named_modules() if name}:
                raise ValueError(f"layer {self.layer!r} is not a module of this model")
            handle = model.get_submodule(self.layer).register_forward_hook(
                lambda _m, _inputs, output: captured.append(output.flatten(1))
            )
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
        accept_weak_fit: bool = False,
    ) -> FitReport:
        """Extract the layer's features and logits of `images` (train split), fit the SRAE(s).

        `holdout` (images the SRAE never sees, e.g. the test split) gives the report's
        faithfulness and diversity. The model is left as it was. `progress` and
        `accept_weak_fit` are passed to `fit_features`; the heatmap diversity is measured
        after it (so a refused fit costs no heatmaps).
        """
        started = time.perf_counter()
        sample: list[Tensor] = []  # the first images of the holdout (else train), kept
        if holdout is None:
            images = _keeping(images, self.batch_size, sample)
        else:
            holdout = _keeping(holdout, self.batch_size, sample)
        features, logits = self.extract(model, images)
        held = None if holdout is None else self.extract(model, holdout)
        report = self.fit_features(
            features,
            logits,
            holdout_features=None if held is None else held[0],
            holdout_logits=None if held is None else held[1],
            layer=self._layer_name(model),
            progress=progress,
            accept_weak_fit=accept_weak_fit,
        )
        report.diversity["heatmaps"] = mean_abs_correlation(
            self.explain(model, torch.cat(sample)).heatmaps.flatten(2).transpose(1, 2)
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
        accept_weak_fit: bool = False,
    ) -> FitReport:
        """Fit on precomputed features (N, D) and the classifier's logits (N, C_all) (CPU).

        Only the columns of `logits` in ``classes`` are regressed. `progress`, if given, is
        called after every training epoch with a dict: ``model`` and ``models`` (1-based; one
        per class in per-class mode), ``attempt`` and ``max_attempts``, ``stage``
        ("pretrain", "head" or "finetune"), ``epoch`` and ``epochs`` within the stage,
        ``step`` and ``steps`` over the attempt.

        Raises:
            WeakFitError: the kept runs fail the success rule or the R^2 bar (on the
                holdout when given), unless `accept_weak_fit`; nothing is kept then.
        """
        started = time.perf_counter()
        features, logits = _check_pair(features, logits, "features", "logits")
        classes = self.classes if self.classes is not None else list(range(logits.shape[1]))
        if max(classes) >= logits.shape[1]:
            raise ValueError(f"classes {classes} exceed the {logits.shape[1]} logit columns")
        if features.shape[0] < 2:
            raise ValueError("need at least 2 training images")
        targets = logits[:, classes]
        trained = train_models(self, features, targets, progress)
        state = _Fitted([t.module for t in trained], list(classes))
        train_r2, train_agree = _faithfulness(state, features, targets)
        holdout_r2 = holdout_agree = None
        if holdout_features is not None or holdout_logits is not None:
            if holdout_features is None or holdout_logits is None:
                raise ValueError("pass both holdout_features and holdout_logits, or neither")
            hf, hl = _check_pair(holdout_features, holdout_logits, "holdout features", "logits")
            holdout_r2, holdout_agree = _faithfulness(state, hf, hl[:, classes])
        r2 = holdout_r2 if holdout_r2 is not None else train_r2
        success = all(t.success for t in trained) and r2 >= self.min_r2
        if not success and not accept_weak_fit:
            failed = [
                classes[c] for t in trained if not t.success for c in t.attempts[0]["classes"]
            ]
            raise WeakFitError(
                f"XNN fit refused: the success rule (>= 2 x-features with positive mean "
                f"contribution, the 2nd largest >= 0.3 x the largest, R² >= {self.min_r2}) "
                f"failed for classes {failed or classes} after up to "
                f"{self.max_attempts} attempt(s) each; "
                f"{'test' if holdout_r2 is not None else 'train'} R² {r2:.3f}; "
                "accept it with accept_weak_fit (fit_xnn --accept-weak-fit)"
            )
        activations = _activations(state, hf if holdout_r2 is not None else features)
        state.report = FitReport(
            k=self.k,
            in_dim=int(features.shape[1]),
            classes=list(classes),
            mode=self.mode,
            layer=layer,
            attempts=[a for t in trained for a in t.attempts],
            kept_attempts=[t.kept_attempt for t in trained],
            success=success,
            accepted_weak_fit=not success,
            train_r2=train_r2,
            train_agreement=train_agree,
            holdout_r2=holdout_r2,
            holdout_agreement=holdout_agree,
            diversity={
                "activations": sum(mean_abs_correlation(a[None]) for a in activations.unbind(1))
                / activations.shape[1],
                "heatmaps": None,
            },
            seconds=time.perf_counter() - started,
        )
        object.__setattr__(self, "_state", state)
        return state.report

    # -------------------------------------------------------------- concepts

    def concepts(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(activations (N, M, k), contributions (N, C, k), rebuilt scores (N, C)).

        M is 1 (shared mode) or C (per-class mode: SRAE c's concepts rebuild class c).
        """
        state = self._fitted()
        return _concepts(state, features.float())

    # -------------------------------------------------------------- persistence

    def state_dict(self) -> dict[str, Any]:
        """Parameters, fitted classes, sizes and weights: plain data for ``torch.save``."""
        state = self._fitted()
        return {
            "format": "xnn/2",
            "params": self.params(),
            "fitted_classes": list(state.classes),
            "in_dim": state.modules[0].sizes[0],
            "weights": [
                {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}
                for m in state.modules
            ],
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        torch.save(self.state_dict(), path)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> XNN:
        """An XNN from `state_dict`'s output, or from a file of the earlier format xnn/1."""
        if not isinstance(state, dict) or state.get("format") not in ("xnn/1", "xnn/2"):
            raise ValueError("not an XNN state (expected format 'xnn/2' or 'xnn/1')")
        if state["format"] == "xnn/1":
            state = _upgrade_v1(state)
        xnn = cls(**state["params"])
        classes = list(state["fitted_classes"])
        outputs = len(classes) if xnn.mode == "shared" else 1
        modules = []
        for weights in state["weights"]:
            # the first layer's width as saved: files written before the SRAE's rule changed
            # from 4 in_dim to in_dim keep theirs
            module = SparseReconstructionAutoencoder(
                int(state["in_dim"]), xnn.k, outputs, h1=int(weights["encoder.0.weight"].shape[0])
            )
            module.load_state_dict(weights)
            modules.append(module.eval())
        object.__setattr__(xnn, "_state", _Fitted(modules, classes))
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
        state = self._fitted()
        classes = list(state.classes)
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
        activations, contributions, rebuilt = _concepts(state, features)
        if targets is None:
            columns = logits.argmax(dim=1)
        else:
            columns = torch.tensor([classes.index(int(t)) for t in targets], dtype=torch.long)
        shown = _shown(state, columns)
        heatmaps, layer_name = self._heatmaps(model, images, shown)
        return XNNResult(
            activations=activations[torch.arange(len(shown)), shown],
            contributions=contributions,
            rebuilt_scores=rebuilt,
            logits=logits,
            bias=_bias(state),
            classes=classes,
            targets=columns,
            heatmaps=heatmaps,
            heatmap_method=self.heatmap,
            heatmap_layer=layer_name,
        )

    def prototypes(
        self, model: nn.Module, train_images: Tensor | Iterable[Tensor], top_n: int = 3
    ) -> Tensor:
        """(M, k, top_n) indices into `train_images` of the images activating each concept most.

        M is 1 (shared mode) or the number of explained classes (per-class mode). Pass
        training-split images only (a tensor or an iterable of batches, as for `fit`). Ties
        keep the lower index first.
        """
        require_int(top_n, "top_n", minimum=1)
        features, _ = self.extract(model, train_images)
        if top_n > features.shape[0]:
            raise ValueError(f"top_n={top_n} exceeds the {features.shape[0]} images given")
        z = self.concepts(features)[0]  # (N, M, k)
        order = torch.sort(z.permute(1, 2, 0), dim=2, descending=True, stable=True).indices
        return order[..., :top_n].clone()

    def _heatmaps(self, model: nn.Module, images: Tensor, shown: Tensor) -> tuple[Tensor, str]:
        """(B, k, H, W) maps in [0, 1] of the SRAE `shown[b]` for image b; the layer's name."""
        state = self._fitted()
        device = model_device(model)
        x_all = images.detach().to(device=device, dtype=torch.float32, copy=True)
        maps = torch.zeros(x_all.shape[0], self.k, *x_all.shape[-2:])
        layer_name = ""
        with torch.inference_mode(False), torch.enable_grad(), scoped_model_state(model):
            for m in shown.unique().tolist():
                rows = (shown == m).nonzero()[:, 0]
                with _on_device(state.modules[m], device) as srae:
                    for chunk in rows.split(self.batch_size):
                        raw, layer_name = concept_heatmaps(
                            model,
                            srae.encoder,
                            x_all[chunk.to(device)],
                            method=self.heatmap,
                            layer=self.layer,
                            read_layer=self.heatmap_layer,
                        )
                        raw = F.interpolate(
                            raw.float(), size=x_all.shape[-2:], mode="bilinear", align_corners=True
                        )
                        b, k = raw.shape[:2]
                        flat = raw.reshape(b * k, *raw.shape[2:]).detach().cpu()
                        maps[chunk] = normalize_per_image(flat).reshape(b, k, *raw.shape[2:])
        return maps, layer_name


# ------------------------------------------------------------------------------ helpers


def mean_abs_correlation(samples: Tensor) -> float:
    """Mean |correlation| over pairs of columns of (G, N, k), averaged over the G groups.

    Concept diversity: columns are concepts, rows images (activations) or pixels
    (heatmaps). A constant column (a dead concept) counts as uncorrelated.
    """
    values = []
    for group in samples:
        corr = torch.nan_to_num(torch.corrcoef(group.T.double()))
        off = ~torch.eye(corr.shape[0], dtype=torch.bool)
        values.append(corr[off].abs().mean())
    return float(torch.stack(values).mean())


def _concepts(state: _Fitted, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    with torch.no_grad():
        z = torch.stack([m.encode(features) for m in state.modules], dim=1)  # (N, M, k)
        if len(state.modules) == 1:
            contributions = z[:, 0, None, :] * state.modules[0].head.weight[None]
        else:
            weights = torch.stack([m.head.weight[0] for m in state.modules])  # (C, k)
            contributions = z * weights[None]
        rebuilt = contributions.sum(dim=2) + _bias(state)[None]
    return z, contributions, rebuilt


def _activations(state: _Fitted, features: Tensor) -> Tensor:
    return _concepts(state, features)[0]


def _bias(state: _Fitted) -> Tensor:
    return torch.cat([m.head.bias.detach() for m in state.modules]).clone()


def _shown(state: _Fitted, columns: Tensor) -> Tensor:
    """Which SRAE's concepts each image shows: the shared one, or its target class's."""
    return torch.zeros_like(columns) if len(state.modules) == 1 else columns.clone()


def _faithfulness(state: _Fitted, features: Tensor, targets: Tensor) -> tuple[float, float]:
    rebuilt = _concepts(state, features)[2]
    agree = (rebuilt.argmax(dim=1) == targets.argmax(dim=1)).float().mean()
    return r2_score(rebuilt, targets), float(agree)


@contextmanager
def _on_device(
    module: SparseReconstructionAutoencoder, device: torch.device
) -> Iterator[SparseReconstructionAutoencoder]:
    """The SRAE on `device`, eval mode, parameters frozen; moved back afterwards."""
    original = next(module.parameters()).device
    module.to(device)
    try:
        with scoped_model_state(module):
            yield module
    finally:
        module.to(original)


def _upgrade_v1(state: dict[str, Any]) -> dict[str, Any]:
    """A concept model file of format xnn/1 (one shared SRAE) in format xnn/2's terms."""
    old = dict(state["params"])
    params = {
        key: old[key]
        for key in ("k", "layer", "classes", "pull_away", "seed", "epochs", "pretrain_epochs")
    }
    params.update(
        mode="shared",
        batch_size=old["inference_batch_size"],
        train_batch_size=old["batch_size"],
        max_attempts=old["max_attempts"],
        lr_step_epochs=old["lr_step_epochs"],
        # xnn/1's default weights were the authors' with rec and PT divided by 1000
        loss_weights=old["loss_weights"]
        or dataclasses.replace(
            AUTHORS_LOSS_WEIGHTS[old["pull_away"]],
            rec=AUTHORS_LOSS_WEIGHTS[old["pull_away"]].rec / 1000,
            pt=AUTHORS_LOSS_WEIGHTS[old["pull_away"]].pt / 1000,
        ),
        heatmap="gradcam" if old["heatmap"] == "gradcam" else "cmwp",
    )
    return {**state, "params": params, "weights": [state["weights"]]}


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ValueError("the model has no nn.Linear: pass layer= explicitly")
    return found[-1]


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


def _keeping(images: Tensor | Iterable[Tensor], size: int, kept: list[Tensor]) -> Iterator[Tensor]:
    """The batches of `images`, appending the first `DIVERSITY_IMAGES` of them to `kept`."""
    count = 0
    for batch in _batches(images, size):
        if count < DIVERSITY_IMAGES:
            kept.append(batch[: DIVERSITY_IMAGES - count])
            count += len(kept[-1])
        yield batch


def _check_pair(a: Tensor, b: Tensor, name_a: str, name_b: str) -> tuple[Tensor, Tensor]:
    if not isinstance(a, Tensor) or a.ndim != 2 or not isinstance(b, Tensor) or b.ndim != 2:
        raise ValueError(f"{name_a} and {name_b} must be 2-D tensors (N, D) and (N, C)")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} has {a.shape[0]} rows but {name_b} has {b.shape[0]}")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError(f"{name_a} or {name_b} contain NaN or infinite values")
    return a.detach().float().cpu(), b.detach().float().cpu()
