"""Held-out loss: the mean NLL per label token, the one scorer of the trainer and the gate.

:meth:`lingualift.adapters.LoraTrainer.evaluate` (the eval loss of a run) and
:func:`lingualift.continual.gate.heldout_nll` (the gate's old and new sets)
both sum the token-level cross-entropy over every label that is not ``-100``
with :func:`nll_totals`, so a version's eval loss and its gate score are the
same number on the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lingualift.adapters.data import (
    IGNORE_INDEX,
    Example,
    collate,
    model_inputs,
    tokenize_examples,
)
from lingualift.errors import require


def nll_totals(
    model: Any,
    rows: Sequence[dict[str, list[int]]],
    pad_token_id: int | None,
    batch_size: int,
    device: Any = None,
) -> Any:
    """``tensor([summed NLL, label tokens])`` (float64) of tokenised ``rows``, in eval mode.

    The caller divides (and, across processes, reduces first); the model is left in
    eval mode, so a trainer puts it back into train mode itself.
    """
    import torch

    pad = pad_token_id if pad_token_id is not None else 0
    device = device if device is not None else next(model.parameters()).device
    totals = torch.zeros(2, device=device, dtype=torch.float64)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            inputs = model_inputs(collate(rows[start : start + batch_size], pad), device)
            labels = inputs.pop("labels")[:, 1:]
            logits = model(**inputs).logits[:, :-1]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)).float(),
                labels.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            )
            totals[0] += loss.double()
            totals[1] += (labels != IGNORE_INDEX).sum()
    return totals


def heldout_nll(
    model: Any, tokenizer: Any, examples: Sequence[Example], max_length: int, batch_size: int = 8
) -> float:
    """Mean NLL per label token (nats) of ``examples`` (text, prompt/completion or chat)."""
    rows = tokenize_examples(examples, tokenizer, max_length)
    require(rows, "No held-out example has a token to score; check the held-out set.")
    totals = nll_totals(model, rows, tokenizer.pad_token_id, batch_size)
    return float(totals[0] / totals[1].clamp(min=1))
