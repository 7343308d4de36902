"""From logits to tokens and from tokens to text, one batch row at a time.

Rows of one batch belong to different requests, so each keeps its own
sampling settings (greedy or temperature + top-p, an optional seed) and its own
stop strings. :func:`next_tokens` picks every row's next token from the batch's
last-position logits; :class:`TextStream` turns a row's tokens into text
deltas that are safe to send: never half a UTF-8 character, never the start of
a stop string that may still complete.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

REPLACEMENT_CHAR = "\ufffd"  # what a tokenizer decodes an incomplete UTF-8 sequence to


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How one request's tokens are chosen and when it stops."""

    max_tokens: int
    """Most new tokens."""
    temperature: float = 1.0
    """0 is greedy (argmax); above 0 samples from softmax(logits / temperature)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""
    stop: tuple[str, ...] = ()
    """Stop strings: generation ends at the first one, which is not returned."""
    seed: int | None = None
    """Seed of this row's own random generator (same seed, same prompt, same text)."""
    ignore_eos: bool = False
    """Keep generating past end-of-sequence tokens (benchmarks want fixed lengths)."""

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def row_generator(params: SamplingParams, device: Any):
    """A seeded ``torch.Generator`` for a sampling row with a seed, else None (global RNG)."""
    import torch

    if params.greedy or params.seed is None:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(params.seed)
    return generator


def next_tokens(logits: Any, params: Sequence[SamplingParams], generators: Sequence[Any]) -> Any:
    """Every row's next token from ``logits`` of shape (rows, vocab).

    Greedy rows take the argmax of the whole batch in one call; sampling rows
    are drawn one by one so each can use its own temperature, top-p and
    generator (a handful of small ops per row next to a full forward pass).
    """
    import torch

    chosen = logits.argmax(dim=-1)
    for row, (setting, generator) in enumerate(zip(params, generators, strict=True)):
        if setting.greedy:
            continue
        scores = logits[row].float() / setting.temperature
        probs = torch.softmax(scores, dim=-1)
        if setting.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            # Keep a token while the mass before it is below top_p (the first token always stays).
            drop = sorted_probs.cumsum(-1) - sorted_probs >= setting.top_p
            sorted_probs[drop] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        chosen[row] = torch.multinomial(probs, 1, generator=generator)[0]
    return chosen


class TextStream:
    """Incremental detokenization with stop strings for one row.

    Decoding the whole sequence at every step costs O(n^2); decoding each token
    alone breaks characters that span tokens and the spacing rules of
    SentencePiece tokenizers. This keeps a short window instead (the approach
    of text-generation-inference): the text of ``tokens[prefix:read]`` is
    already known, so the new text is ``decode(tokens[prefix:]) - that``, and
    it is released only when it does not end in an incomplete character.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.tokens: list[int] = []
        self.text = ""
        """All text decoded so far (cut at the stop string once one is found)."""
        self.sent = 0
        """How many characters of ``text`` were handed out by :meth:`releasable`."""
        self.stopped = False
        """True once a stop string appeared."""
        self._prefix = 0
        self._read = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token: int) -> None:
        """Append a token; sets :attr:`stopped` when a stop string is now complete."""
        if self.stopped:  # the text ended at the stop string
            return
        self.tokens.append(token)
        before = self._decode(self.tokens[self._prefix : self._read])
        after = self._decode(self.tokens[self._prefix :])
        if len(after) > len(before) and not after.endswith(REPLACEMENT_CHAR):
            start = len(self.text)
            self.text += after[len(before) :]
            self._prefix, self._read = self._read, len(self.tokens)
            self._check_stop(start)

    def _check_stop(self, start: int) -> None:
        if not self.stop:
            return
        longest = max(len(s) for s in self.stop)
        window_start = max(0, start - longest + 1)  # a stop string may straddle the old text
        hits = [i for s in self.stop if (i := self.text.find(s, window_start)) >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self.stopped = True

    def releasable(self, final: bool = False) -> str:
        """New text that can be sent now; with ``final`` everything that is left.

        While not final, a tail that could be the start of a stop string is held
        back until the next tokens show whether the stop string completes.
        """
        end = len(self.text)
        if not final and not self.stopped and self.stop:
            end -= _stop_prefix_overlap(self.text, self.stop)
        if final and not self.stopped:
            # Flush a last incomplete character as the tokenizer renders it.
            tail = self._decode(self.tokens[self._prefix :])
            known = self._decode(self.tokens[self._prefix : self._read])
            if len(tail) > len(known):
                self.text += tail[len(known) :]
                self._check_stop(len(self.text) - (len(tail) - len(known)))
                end = len(self.text)
        delta = self.text[self.sent : max(end, self.sent)]
        self.sent += len(delta)
        return delta


def _stop_prefix_overlap(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
    best = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:size]):
                best = size
                break
    return best
