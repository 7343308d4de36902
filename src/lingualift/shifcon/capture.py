"""Reading hidden states: hooks that record the states entering decoder layers.

Index convention (shared with the language vectors): 0 = the embeddings that
enter decoder layer 0, ``i`` = the output of decoder layer ``i - 1``, which is
the input of decoder layer ``i``. :func:`layer_states` stops the forward pass
after the deepest index it needs, so neither the rest of the stack nor the LM
head (a large share of a small model's compute) runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from lingualift.errors import require
from lingualift.models import decoder_layers


class _StopForward(Exception):
    """Raised by a hook once the last wanted hidden state is captured."""


@contextlib.contextmanager
def capture_states(model: Any, indices: Sequence[int], stop: bool = False) -> Iterator[dict]:
    """Record hidden states at ``indices`` (0 = embeddings .. L = last layer output).

    Index ``i >= 1`` is read from the output of decoder layer ``i - 1``, index
    0 from the input of layer 0 (a pre-hook placed first), so a shift hook at
    the input of layer ``i`` never changes what is recorded at index ``i``:
    the recorded state is the one the layer area sees before the shift back.
    With ``stop`` the forward pass ends right after the deepest index (the
    caller catches :class:`_StopForward`; :func:`layer_states` does).
    """
    layers = decoder_layers(model)
    n = len(layers)
    wanted = sorted(set(indices))
    require(
        wanted and wanted[0] >= 0 and wanted[-1] <= n,
        f"Hidden-state indices must lie in 0..{n}; got {list(indices)}.",
    )
    states: dict[int, Any] = {}
    handles = []

    def pre_hook(module, args, kwargs):
        states[0] = args[0] if args else kwargs["hidden_states"]
        if stop and wanted[-1] == 0:
            raise _StopForward

    def post_hook(index):
        def hook(module, args, output):
            states[index] = output[0] if isinstance(output, tuple) else output
            if stop and index == wanted[-1]:
                raise _StopForward

        return hook

    try:
        for index in wanted:
            if index == 0:
                handles.append(
                    layers[0].register_forward_pre_hook(pre_hook, with_kwargs=True, prepend=True)
                )
            else:
                handles.append(layers[index - 1].register_forward_hook(post_hook(index)))
        yield states
    finally:
        for handle in handles:
            handle.remove()


def layer_states(
    model: Any,
    input_ids: Any,
    attention_mask: Any,
    indices: Sequence[int],
) -> dict[int, Any]:
    """Hidden states at the given indices, running the decoder only as deep as needed.

    A hook stops the forward pass after the deepest requested index, so
    neither the rest of the stack nor the LM head is computed. Gradients flow
    when the caller enables them.
    """
    with capture_states(model, indices, stop=True) as states, contextlib.suppress(_StopForward):
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return states


def masked_token_mean(hidden: Any, attention_mask: Any):
    """Mean over non-padding tokens: ``(batch, seq, hidden) -> (batch, hidden)``."""
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


def sentence_representations(
    model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, indices: Sequence[int]
):
    """Token-mean representations ``(batch, len(indices), hidden)`` of one batch of texts."""
    import torch

    batch = tokenizer(
        list(texts), return_tensors="pt", padding=True, truncation=True, max_length=max_length
    )
    device = next(model.parameters()).device
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    states = layer_states(model, ids, mask, indices)
    reps = torch.stack([masked_token_mean(states[i].float(), mask) for i in indices], dim=1)
    return reps, int(mask.sum())
