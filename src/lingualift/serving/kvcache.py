"""A running batch's KV cache in a left-padded layout that rows can join and leave.

Continuous batching (:mod:`~lingualift.serving.engine`) prefills newcomers in a
forward of their own and then merges them into the batch that is already
decoding. transformers' ``DynamicCache`` keeps, per layer, keys and values of
shape ``(rows, heads, columns, head_dim)`` with one column per token position of
the padded batch; the model reads which columns a row may attend to from the 2-D
attention mask and each row's place in the sequence from explicit position ids.
So two batches line up when their columns are right-aligned: the shorter one
gets zero columns on the left, masked out for its rows, exactly the left padding
a batched prefill gives. :class:`PaddedBatch` holds that state (cache, mask,
next positions, the last logits) and does the three things rows need:

* :meth:`~PaddedBatch.join` another batch (right-aligned, the narrower padded);
* :meth:`~PaddedBatch.select` rows (finished rows leave; the choices of one
  prompt are copies of its prefilled row, so n > 1 prefills once);
* :meth:`~PaddedBatch.trim` leading columns that every remaining row has as
  padding (once the longest rows left), so the width follows the rows still
  decoding instead of growing as long as traffic keeps the batch alive.

Sliding-window layers (Gemma 3) keep only their last ``window - 1`` columns and
count every column seen in ``cumulative_length``; the mask for such a layer
starts at column ``cumulative_length - window + 1``. Right-aligned, the kept
columns of both batches are the last columns of the merged one, so the same
operations stay exact there (each row's window counts its own tokens: its
padding is only ever on the left). Other cache layouts (quantized, offloaded,
linear-attention or KV-sharing layers) are reported by :func:`unsupported` and
the engine falls back to static batching for them.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def unsupported(cache: Any) -> str | None:
    """Why rows cannot join or leave ``cache`` in place, or None when they can."""
    from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

    if type(cache) is not DynamicCache:
        return f"the model's cache is a {type(cache).__name__}, not a DynamicCache"
    if getattr(cache, "offloading", False):
        return "the cache offloads layers"
    for layer in cache.layers:
        if type(layer) not in (DynamicLayer, DynamicSlidingWindowLayer):
            return f"the cache has {type(layer).__name__} layers"
        if not layer.is_initialized:
            return "a cache layer holds no keys (KV sharing between layers)"
        if getattr(layer, "record_past", False):
            return "a sliding-window layer records its past"
    return None


def _columns(layer: Any) -> int:
    """Columns the layer has seen (sliding layers keep fewer than that)."""
    return layer.cumulative_length if layer.is_sliding else layer.keys.shape[-2]


def _right_aligned(tensor: Any, width: int, dim: int = -2) -> Any:
    """``tensor`` widened to ``width`` along ``dim`` (the sequence: -2 for keys and values, 1
    for a mask) by zeros on the left."""
    import torch

    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


@dataclasses.dataclass
class PaddedBatch:
    """The decoding state of a batch's rows, left-padded to one width (see the module docstring).

    Row ``i`` of every tensor is the same row; ``attention`` is 1 on the columns holding a
    row's tokens (a run at the right end) and 0 on its padding.
    """

    cache: Any
    """A ``DynamicCache``: keys and values of shape (rows, heads, columns, head_dim) per layer."""
    attention: Any
    """(rows, width) long: 1 where the row has a token, 0 on its left padding."""
    positions: Any
    """(rows,) long: the position id of each row's next token."""
    logits: Any
    """(rows, vocab): the last forward's next-token logits, not yet turned into tokens."""

    @property
    def rows(self) -> int:
        return int(self.attention.shape[0])

    @property
    def width(self) -> int:
        return int(self.attention.shape[1])

    def select(self, index: Any) -> None:
        """Keep the rows ``index`` (a long tensor, in that order; repeats copy a row)."""
        self.cache.batch_select_indices(index)
        self.attention = self.attention[index]
        self.positions = self.positions[index]
        self.logits = self.logits[index]

    def join(self, other: PaddedBatch) -> None:
        """Append ``other``'s rows after this batch's, right-aligning the two layouts.

        Every new tensor is made before any is stored, so a failure leaves this batch as it was.
        """
        import torch

        layers = []
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            columns = max(_columns(mine), _columns(theirs))
            kept = min(columns, mine.sliding_window - 1) if mine.is_sliding else columns
            keys = torch.cat([_right_aligned(mine.keys, kept), _right_aligned(theirs.keys, kept)])
            values = torch.cat(
                [_right_aligned(mine.values, kept), _right_aligned(theirs.values, kept)]
            )
            layers.append((mine, keys, values, columns))
        width = max(self.width, other.width)
        attention = torch.cat(
            [
                _right_aligned(self.attention, width, dim=1),
                _right_aligned(other.attention, width, dim=1),
            ]
        )
        positions = torch.cat([self.positions, other.positions])
        logits = torch.cat([self.logits, other.logits])
        for layer, keys, values, columns in layers:
            layer.keys, layer.values = keys, values
            if layer.is_sliding:
                layer.cumulative_length = columns
        self.attention, self.positions, self.logits = attention, positions, logits

    def trim(self) -> int:
        """Drop the leading columns that are padding for every row; returns how many."""
        if not self.rows:
            return 0
        drop = self.width - int(self.attention.sum(dim=1).max())
        if drop <= 0:
            return 0
        for layer in self.cache.layers:
            if layer.is_sliding:
                layer.cumulative_length -= drop
                kept = min(layer.keys.shape[-2], layer.cumulative_length)
            else:
                kept = layer.keys.shape[-2] - drop
            layer.keys = layer.keys[:, :, layer.keys.shape[-2] - kept :]
            layer.values = layer.values[:, :, layer.values.shape[-2] - kept :]
        self.attention = self.attention[:, drop:]
        return drop

    def append_column(self) -> None:
        """One more column for the token every row is about to get."""
        import torch

        self.attention = torch.cat([self.attention, self.attention.new_ones((self.rows, 1))], 1)

    def decode(self, model: Any, tokens: Any, **model_kwargs: Any) -> None:
        """One decoding step: each row's next token (a ``(rows,)`` tensor) through the model
        on this batch's cache, leaving the next logits in ``logits``; ``model_kwargs`` reach
        the forward (the engine's adapter and ShifCon context)."""
        self.append_column()
        out = model(
            input_ids=tokens[:, None],
            attention_mask=self.attention,
            position_ids=self.positions[:, None],
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
            **model_kwargs,
        )
        self.cache, self.logits = out.past_key_values, out.logits[:, -1, :]
        self.positions = self.positions + 1
