"""The multilingual contrastive loss of ShifCon: symmetric InfoNCE on parallel pairs.

For a batch of ``B`` parallel pairs (dominant text, text in language ``l``) and
each layer in the area ``[a, b)``, the token-mean representations of both sides
are L2-normalised; ``logits = z_dom @ z_l.T / tau``; the loss is the mean of
the cross-entropy over rows and over columns with the diagonal as targets (the
CLIP recipe, other pairs of the batch as negatives), averaged over the layers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from lingualift.errors import require


def info_nce(z_a: Any, z_b: Any, tau: float):
    """Symmetric InfoNCE between row-aligned ``(B, H)`` batches (normalised here)."""
    import torch
    import torch.nn.functional as F

    require(
        z_a.shape == z_b.shape,
        f"Paired batches differ in shape: {tuple(z_a.shape)} vs {tuple(z_b.shape)}.",
    )
    require(tau > 0, f"tau must be positive, got {tau}.")
    z_a = F.normalize(z_a.float(), dim=-1)
    z_b = F.normalize(z_b.float(), dim=-1)
    logits = z_a @ z_b.T / tau
    targets = torch.arange(z_a.shape[0], device=z_a.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def contrastive_loss(reps_dominant: Sequence[Any], reps_other: Sequence[Any], tau: float = 0.05):
    """Mean of :func:`info_nce` over layers; each argument is one ``(B, H)`` tensor per layer."""
    require(
        len(reps_dominant) == len(reps_other) and len(reps_dominant) > 0,
        "The contrastive loss needs the same, non-zero number of layers on both sides.",
    )
    losses = [info_nce(a, b, tau) for a, b in zip(reps_dominant, reps_other, strict=True)]
    return sum(losses) / len(losses)


@dataclasses.dataclass
class ShifConObjective:
    """The ShifCon loss ``L = alpha * L_gen + beta * L_con`` and whether the shift is on."""

    alpha: float = 0.5
    """Weight of the generation loss (published 0.5)."""
    beta: float = 2.0
    """Weight of the contrastive loss (published 2.0); 0 turns it off."""
    tau: float = 0.05
    """InfoNCE temperature (ours; the paper does not state one)."""
    shift: bool = True
    """Apply the shift hooks during training (false with beta 0 = the plain LoRA baseline)."""
    train_anchors: bool = True
    """Let the contrastive loss move the dominant side too. False makes the dominant states
    fixed targets (no gradient), so pairs without a dominant-language generation target
    cannot pull the dominant language's own representations away."""

    def __post_init__(self) -> None:
        require(self.alpha >= 0 and self.beta >= 0, "alpha and beta must not be negative.")
        require(self.alpha > 0 or self.beta > 0, "alpha and beta are both 0; nothing to train.")
        require(self.tau > 0, f"tau must be positive, got {self.tau}.")
