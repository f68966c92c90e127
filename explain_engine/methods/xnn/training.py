"""Training the SRAE as the authors' code does (methods.md 2.3), with their success rule.

Loss weights (`AUTHORS_LOSS_WEIGHTS`, ``autoParam = [sparseR, q, a_pred, a_rec, a_PT]``),
all from the authors' derived CUB code [CODE:XNN-deriv] (methods.md 2.3):

- pull-away along images (the default): q = 100, prediction 1, reconstruction 10,
  pull-away 10 (``Main1_TrainXNN.py``);
- pull-away along features: q = 100, prediction 1, reconstruction 15, pull-away 5
  (``Main1_TrainXNN.py``);
- "none" is the images setting without the pull-away term (ours, for ablations).

Training (``SRAE_Optim``): greedy layer-wise pre-training of each autoencoder layer (MSE,
Adam), pre-training of the linear head on the codes, then joint fine-tuning with the full
loss (Adam lr 1e-3, weight decay 1e-4), batches of 50. The learning rate stays constant by
default, as it does in every run of the authors' scripts (``XNN.lr_step_epochs``).

Success rule (``Main1_TrainXNN.py``): for each explained class, at least 2 x-features with a
positive mean contribution and the 2nd largest at least 0.3 x the largest; a class's mean
is over the images the classifier assigns to it (all images when it is assigned none). We
add a faithfulness bar: R^2 of the rebuilt scores >= ``min_r2``. A run failing either is
retried (up to ``max_attempts`` runs) with the authors' re-weighting: reconstruction x 1.2,
pull-away x 0.8.

Adaptation (not in methods.md): an encoder unit that no training input activates is re-drawn
after each pre-training stage and each fine-tuning epoch (`revive_dead_units`): on small
feature sets most x-features otherwise die and never recover.

Pure PyTorch: never imports Django.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from .autoencoder import SparseReconstructionAutoencoder, log_penalty_loss, pull_away_loss, r2_score

__all__ = [
    "AUTHORS_LOSS_WEIGHTS",
    "LossWeights",
    "TrainedModel",
    "success_rule",
    "train_models",
]


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """``autoParam`` of methods.md 2.3: sparse reconstruction on/off, q and the three weights."""

    sparse: bool
    q: float
    pred: float
    rec: float
    pt: float


#: The authors' starting weights per pull-away axis (see the module docstring for sources).
AUTHORS_LOSS_WEIGHTS: dict[str, LossWeights] = {
    "images": LossWeights(sparse=True, q=100.0, pred=1.0, rec=10.0, pt=10.0),
    "features": LossWeights(sparse=True, q=100.0, pred=1.0, rec=15.0, pt=5.0),
    "none": LossWeights(sparse=True, q=100.0, pred=1.0, rec=10.0, pt=0.0),
}


class TrainingParams(Protocol):
    """The `XNN` parameters training reads (`XNN` itself; a protocol, so that this module
    does not import the method's)."""

    mode: str
    k: int
    pull_away: str
    seed: int
    epochs: int
    pretrain_epochs: int
    train_batch_size: int
    lr_step_epochs: int | None
    max_attempts: int
    min_r2: float

    def starting_loss_weights(self) -> LossWeights: ...


@dataclasses.dataclass
class TrainedModel:
    """One fitted SRAE (all explained classes, or one class in one-vs-all mode)."""

    module: SparseReconstructionAutoencoder
    attempts: list[dict[str, Any]]
    kept_attempt: int
    success: bool


def success_rule(
    codes: Tensor, head_weight: Tensor, assigned: Tensor, columns: list[int]
) -> tuple[list[bool], Tensor]:
    """Per head output: >= 2 positive mean contributions and the 2nd largest >= 0.3 x the largest.

    `columns[i]` is the explained-class column of head output i; its mean contribution is
    over the images whose `assigned` column (the classifier's arg-max) it is, or over all
    images when none is.
    """
    passed: list[bool] = []
    means = []
    for weight, column in zip(head_weight, columns, strict=True):
        mine = assigned == column
        rows = codes[mine] if bool(mine.any()) else codes
        mean = (rows * weight[None]).mean(dim=0)
        means.append(mean)
        top = torch.sort(mean, descending=True).values
        passed.append(bool(top[1] > 0 and top[1] >= 0.3 * top[0]))
    return passed, torch.stack(means)


def train_models(
    xnn: TrainingParams,
    features: Tensor,
    targets: Tensor,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[TrainedModel]:
    """Fit the SRAE(s) of `xnn`'s mode on features (N, D) and explained logits (N, C).

    "shared": one SRAE with C head outputs; "per_class": C SRAEs with one output each
    (one-vs-all, as the authors' gull code), trained on all images.
    """
    assigned = targets.argmax(dim=1)
    if xnn.mode == "shared":
        groups = [list(range(targets.shape[1]))]
    else:
        groups = [[c] for c in range(targets.shape[1])]
    return [
        _fit_group(xnn, features, targets[:, group], assigned, group, m, len(groups), progress)
        for m, group in enumerate(groups)
    ]


def _fit_group(
    xnn: TrainingParams,
    features: Tensor,
    targets: Tensor,
    assigned: Tensor,
    columns: list[int],
    index: int,
    count: int,
    progress: Callable[[dict[str, Any]], None] | None,
) -> TrainedModel:
    weights = xnn.starting_loss_weights()
    attempts: list[dict[str, Any]] = []
    best: tuple[tuple[int, float], int, dict[str, Tensor]] | None = None
    for attempt in range(xnn.max_attempts):
        seed = xnn.seed + 1000 * attempt + 7919 * index
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = SparseReconstructionAutoencoder(features.shape[1], xnn.k, len(columns))
            generator = torch.Generator().manual_seed(seed)
            reporter = _EpochReporter(progress, attempt + 1, xnn, index + 1, count)
            losses = _train(module, features, targets, weights, xnn, generator, reporter)
        module.eval()
        with torch.no_grad():
            z, _, rebuilt = module(features)
            passed, means = success_rule(z, module.head.weight, assigned, columns)
        r2 = r2_score(rebuilt, targets)
        ok = all(passed) and r2 >= xnn.min_r2
        attempts.append(
            {
                "classes": columns,
                "weights": dataclasses.asdict(weights),
                "success": ok,
                "classes_passed": int(sum(passed)),
                "train_r2": r2,
                "mean_contributions": means.tolist(),
                **losses,
            }
        )
        rank = (int(sum(passed)) + int(r2 >= xnn.min_r2), r2)
        if best is None or rank > best[0]:
            best = (rank, attempt, {k: v.clone() for k, v in module.state_dict().items()})
        if ok:
            break
        weights = dataclasses.replace(weights, rec=weights.rec * 1.2, pt=weights.pt * 0.8)
    assert best is not None
    module = SparseReconstructionAutoencoder(features.shape[1], xnn.k, len(columns))
    module.load_state_dict(best[2])
    return TrainedModel(module.eval(), attempts, best[1], bool(attempts[best[1]]["success"]))


def _train(
    module: SparseReconstructionAutoencoder,
    features: Tensor,
    targets: Tensor,
    weights: LossWeights,
    xnn: TrainingParams,
    generator: torch.Generator,
    on_epoch: _EpochReporter,
) -> dict[str, float]:
    """Layer-wise pre-training, head pre-training, joint fine-tuning (methods.md 2.3)."""
    n = features.shape[0]

    def batches() -> list[Tensor]:
        return list(torch.randperm(n, generator=generator).split(xnn.train_batch_size))

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
            revived += revive_dead_units(module, features, depth, generator)
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
    schedule = (
        None
        if xnn.lr_step_epochs is None
        else torch.optim.lr_scheduler.StepLR(optimizer, step_size=xnn.lr_step_epochs, gamma=0.1)
    )
    for epoch in range(xnn.epochs):
        for idx in batches():
            loss, _ = total_loss(module, features[idx], targets[idx], weights, xnn.pull_away)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if schedule is not None:
            schedule.step()
        for depth in range(len(module.encoder)):
            revived += revive_dead_units(module, features, depth, generator)
        on_epoch("finetune", epoch + 1, xnn.epochs)
    module.eval()
    with torch.no_grad():
        _, parts = total_loss(module, features, targets, weights, xnn.pull_away)
    parts["revived_units"] = revived
    return parts


def total_loss(
    module: SparseReconstructionAutoencoder,
    features: Tensor,
    targets: Tensor,
    weights: LossWeights,
    pull_away: str,
) -> tuple[Tensor, dict[str, float]]:
    """a_pred L_pred + a_rec L_SR + a_PT L_PT, and the three parts as numbers."""
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


class _EpochReporter:
    """Turns `_train`'s (stage, epoch, epochs) calls into `XNN.fit_features`' progress dicts."""

    def __init__(
        self,
        progress: Callable[[dict[str, Any]], None] | None,
        attempt: int,
        xnn: TrainingParams,
        model: int,
        models: int,
    ) -> None:
        self.progress = progress
        self.fixed = {
            "model": model,
            "models": models,
            "attempt": attempt,
            "max_attempts": xnn.max_attempts,
        }
        # three encoder layers and the head are pre-trained, then the whole is fine-tuned
        self.steps = 4 * xnn.pretrain_epochs + xnn.epochs
        self.step = 0

    def __call__(self, stage: str, epoch: int, epochs: int) -> None:
        self.step += 1
        if self.progress is not None:
            self.progress(
                {
                    **self.fixed,
                    "stage": stage,
                    "epoch": epoch,
                    "epochs": epochs,
                    "step": self.step,
                    "steps": self.steps,
                }
            )


def revive_dead_units(
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
