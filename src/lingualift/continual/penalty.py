"""Penalties that keep a continual update near the previous version's weights.

Both join training through :meth:`lingualift.training.TrainingLoop.add_loss_term`
(no second training loop):

- **L2-SP** (Li et al. 2018): ``lambda * sum_i (theta_i - theta_prev_i)^2`` over
  the trainable (LoRA) parameters, ``theta_prev`` being their values when the
  update starts from the current version;
- **EWC** (Kirkpatrick et al. 2017): the same sum weighted by a diagonal Fisher
  estimate ``F_i`` = mean over replay examples of the squared gradient of the
  LM loss (one example per backward pass). ``F`` is divided by its mean, so
  ``lambda`` has the scale of L2-SP's and a flat Fisher gives L2-SP exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from lingualift.errors import require

Penalty = Literal["l2sp", "ewc", "none"]


class WeightPenalty:
    """``lambda * sum(weight * (theta - theta_prev)^2)`` over the trainable parameters."""

    def __init__(self, model: Any, lam: float, weights: dict[str, Any] | None = None) -> None:
        require(lam >= 0, f"penalty_lambda must not be negative, got {lam}.")
        self.lam = float(lam)
        self.terms = []
        for name, param in model.named_parameters():
            if param.requires_grad:
                reference = param.detach().clone()
                weight = None if weights is None else weights[name].to(param.device)
                self.terms.append((param, reference, weight))
        require(self.terms, "The model has no trainable parameters to keep near a version.")

    def __call__(self, model: Any = None) -> Any:
        total = 0.0
        for param, reference, weight in self.terms:
            diff = (param - reference) ** 2
            total = total + (diff.sum() if weight is None else (weight * diff).sum())
        return self.lam * total

    def distance(self) -> float:
        """Plain ``sum (theta - theta_prev)^2`` now (how far training moved the weights)."""
        import torch

        with torch.no_grad():
            return float(sum(((p - r) ** 2).sum() for p, r, _ in self.terms))


def fisher_diagonal(
    model: Any, rows: Sequence[dict[str, list[int]]], pad_token_id: int
) -> dict[str, Any]:
    """Diagonal Fisher of the trainable parameters: mean squared per-example LM-loss gradients,
    divided by its mean over all parameters."""
    import torch

    from lingualift.adapters.data import collate, model_inputs

    require(rows, "EWC needs replay examples to estimate the Fisher information.")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    sums = {n: torch.zeros_like(p) for n, p in params.items()}
    was_training = model.training
    model.eval()  # no dropout while measuring
    device = next(model.parameters()).device
    for row in rows:
        model.zero_grad(set_to_none=True)
        model(**model_inputs(collate([row], pad_token_id), device)).loss.backward()
        for name, param in params.items():
            if param.grad is not None:
                sums[name] += param.grad.detach() ** 2
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    fisher = {n: s / len(rows) for n, s in sums.items()}
    mean = torch.stack([f.mean() for f in fisher.values()]).mean().clamp(min=1e-20)
    return {n: f / mean for n, f in fisher.items()}


def add_penalty(
    trainer: Any,
    kind: Penalty,
    lam: float,
    replay_rows: Sequence[dict[str, list[int]]] = (),
    fisher_samples: int = 32,
) -> tuple[WeightPenalty | None, dict[str, Any]]:
    """Add ``kind`` to ``trainer.loop`` as a loss term named after it; returns it and its card entry.

    The reference weights are the trainer's at this moment (the current version
    it was initialised from).
    """
    require(kind in ("l2sp", "ewc", "none"), f"penalty must be l2sp, ewc or none; got {kind!r}.")
    if kind == "none" or lam == 0:
        return None, {"kind": "none"}
    model = trainer.model
    weights = None
    info: dict[str, Any] = {"kind": kind, "lambda": lam}
    if kind == "ewc":
        rows = list(replay_rows)[:fisher_samples]
        weights = fisher_diagonal(model, rows, trainer.tokenizer.pad_token_id)
        info["fisher_examples"] = len(rows)
    penalty = WeightPenalty(model, lam, weights)
    trainer.loop.add_loss_term(kind, penalty)
    return penalty, info
