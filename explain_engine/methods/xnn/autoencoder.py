"""The Sparse Reconstruction Autoencoder (SRAE) of methods.md 2.2 and its loss terms (2.3).

Pure PyTorch: never imports Django.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "SparseReconstructionAutoencoder",
    "log_penalty_loss",
    "pull_away_loss",
    "r2_score",
]


class SparseReconstructionAutoencoder(nn.Module):
    """The SRAE of methods.md 2.2, sized to the input dimension.

    Encoder ``in_dim -> h1 -> h2 -> k``, each Linear + ReLU, dropout (p = 0.02) after the
    first layer; the k ReLU outputs are the x-features. Decoder mirrors it (``k -> h2 -> h1 ->
    in_dim``, each Linear + ReLU). Head: Linear ``k -> num_outputs`` regressing the logits.
    The paper's 4096 -> 800 -> 100 -> k becomes ``h1 = min(800, in_dim)``,
    ``h2 = min(100, in_dim)``: no layer is wider than its input, as in the paper, so a 128-d
    feature gets 128 -> 128 -> 100 -> k. (The former ``h1 = min(800, 4 in_dim)`` widened it
    to 512; at 240 epochs that took 183 to 266 CPU s on the demo for test R^2 0.91 to 0.93,
    ``benchmarks/xnn_fit.py`` at commit 3eef50e; at 128 and 150 epochs, 92 to 94 s for 0.91
    to 0.93, but fewer classes pass the success rule: 2 to 3 of 8, against 4 to 5.)
    `h1` other than that rule rebuilds a module saved with another first layer.
    """

    def __init__(
        self,
        in_dim: int,
        k: int,
        num_outputs: int,
        dropout: float = 0.02,
        h1: int | None = None,
    ) -> None:
        super().__init__()
        h1 = min(800, in_dim) if h1 is None else h1
        h2 = min(100, in_dim)
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


def r2_score(prediction: Tensor, target: Tensor) -> float:
    """1 - SS_res / SS_tot over all entries of (N, C), SS_tot around each column's mean."""
    target = target.double()
    ss_res = (prediction.double() - target).pow(2).sum()
    ss_tot = (target - target.mean(dim=0, keepdim=True)).pow(2).sum()
    if float(ss_tot) == 0.0:
        return 1.0 if float(ss_res) == 0.0 else 0.0
    return float(1.0 - ss_res / ss_tot)
