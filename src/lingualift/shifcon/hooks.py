"""Shift hooks: add a per-row vector to the input of two decoder layers.

ShifCon shifts a non-dominant row toward the dominant subspace at the input of
decoder layer ``a`` (``h <- h - v_l[a] + v_en[a]``) and back at the input of
layer ``b`` (``h <- h - v_en[b] + v_l[b]``). Both are forward *pre*-hooks on
the decoder blocks found by :func:`lingualift.models.decoder_layers`, so they
work on any Hugging Face decoder that keeps its blocks in a list (Llama, Qwen2,
Gemma3, Mistral, Phi-3, and PEFT wrappers around them).

The hooks exist only inside the context manager: outside it the model is
untouched and pays nothing. Inside, each hooked layer does one broadcast add.
During ``generate`` with a KV cache every new token passes through the same
pre-hooks, so new tokens are shifted exactly like the prompt was; when beam
search or sampling with ``num_return_sequences`` repeats each row ``k`` times
(``repeat_interleave``), the per-row shifts are repeated the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from lingualift.errors import LingualiftError
from lingualift.models import decoder_layers


class _Shift:
    """A pre-hook adding ``delta`` (``(H,)`` for all rows or ``(B, H)`` per row)."""

    def __init__(self, delta: Any) -> None:
        self.delta = delta
        self._cast: dict[tuple[Any, Any], Any] = {}

    def _delta_for(self, hidden: Any):
        key = (hidden.dtype, hidden.device)
        delta = self._cast.get(key)
        if delta is None:
            delta = self._cast[key] = self.delta.to(dtype=hidden.dtype, device=hidden.device)
        if delta.dim() == 1:
            return delta
        rows = hidden.shape[0]
        if rows != delta.shape[0]:
            if rows % delta.shape[0]:
                raise LingualiftError(
                    f"The batch has {rows} rows but {delta.shape[0]} languages were given; "
                    "give one language for the whole batch or one per row."
                )
            delta = delta.repeat_interleave(rows // delta.shape[0], dim=0)
        # (B, H) -> (B, 1, H) for (batch, seq, hidden) states.
        return delta.view(rows, *([1] * (hidden.dim() - 2)), delta.shape[-1])

    def __call__(self, module: Any, args: tuple, kwargs: dict):
        if args:
            return (args[0] + self._delta_for(args[0]), *args[1:]), kwargs
        hidden = kwargs["hidden_states"]
        return args, {**kwargs, "hidden_states": hidden + self._delta_for(hidden)}


@contextlib.contextmanager
def shift_hooks(
    model: Any,
    shifts: dict[int, Any],
) -> Iterator[None]:
    """Add ``shifts[i]`` to the input of decoder layer ``i`` while the context is open.

    ``shifts`` maps a layer index to a delta of shape ``(H,)`` or ``(B, H)``;
    several entries may target the same layer (pass a list) and are applied in
    order. An empty mapping registers nothing.
    """
    layers = decoder_layers(model)
    handles = []
    try:
        for index, deltas in shifts.items():
            if not 0 <= index < len(layers):
                raise LingualiftError(
                    f"Layer {index} is out of range; this model has decoder layers 0..{len(layers) - 1}."
                )
            for delta in deltas if isinstance(deltas, list | tuple) else [deltas]:
                handles.append(
                    layers[index].register_forward_pre_hook(_Shift(delta), with_kwargs=True)
                )
        yield
    finally:
        for handle in handles:
            handle.remove()
