"""One batched generation helper for every caller that completes prompts.

Chain-of-thought multiple choice, long-context answers, per-language routing
and ShifCon generation all need the same things, so they share this loop:

- left padding (new tokens must follow every prompt directly), restored after;
- batches of prompts sorted by length (less padding), results in input order;
- stop strings that end a row early and are cut from its text;
- a per-batch context: ShifCon's shift for the rows' languages, or the
  rows' adapters (PEFT ``adapter_names``), chosen from the batch's row indices.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from lingualift.chat import ChatTemplate, resolve_chat_template
from lingualift.errors import require

BatchContext = Callable[[list[int]], AbstractContextManager[Any]]
"""``context(rows) -> context manager`` for the prompts at ``rows`` (input positions).

What the context manager yields, when it is a dict, is passed to ``generate`` as
extra keyword arguments (PEFT's ``adapter_names``); anything else is ignored."""


@dataclasses.dataclass
class Completion:
    """One prompt's continuation."""

    text: str
    """The decoded new tokens, cut at the first stop string."""
    new_tokens: int
    """Tokens generated for this row (padding and tokens after EOS not counted)."""


@contextlib.contextmanager
def left_padding(tokenizer: Any) -> Iterator[Any]:
    """Pad on the left while the context is open; a pad token is set if the tokenizer has none."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side = side


def chat_prompts(
    tokenizer: Any, prompts: Sequence[str], template: ChatTemplate | None = None
) -> list[str]:
    """Each prompt as a single user turn in ``template``: by default the tokenizer's own chat
    template, else lingualift's default (:func:`lingualift.chat.resolve_chat_template`)."""
    return (template or resolve_chat_template(tokenizer)).user_prompts(tokenizer, prompts)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the earliest stop string."""
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    stop: Sequence[str] = (),
    context: BatchContext | None = None,
    add_special_tokens: bool = True,
    progress: bool = False,
    **generate_kwargs: Any,
) -> list[Completion]:
    """Complete ``prompts`` in left-padded batches; greedy unless ``do_sample`` is given."""
    import torch

    prompts = list(prompts)
    require(prompts, "No prompts given; pass at least one.")
    require(max_new_tokens >= 1, f"max_new_tokens must be at least 1, got {max_new_tokens}.")
    require(batch_size >= 1, f"batch_size must be at least 1, got {batch_size}.")
    generate_kwargs.setdefault("do_sample", False)
    if stop:
        # transformers ends each row at its first stop string; the text is cut below.
        generate_kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="generate", unit="batch")
    device = next(model.parameters()).device
    out: list[Completion | None] = [None] * len(prompts)
    with left_padding(tokenizer):
        pad_id = tokenizer.pad_token_id
        eos_id = tokenizer.eos_token_id
        for rows in batches:
            batch = tokenizer(
                [prompts[i] for i in rows],
                return_tensors="pt",
                padding=True,
                add_special_tokens=add_special_tokens,
            ).to(device)
            manager = context(rows) if context is not None else contextlib.nullcontext()
            with torch.inference_mode(), manager as extra:
                generated = model.generate(
                    **batch,
                    **(extra if isinstance(extra, dict) else {}),
                    max_new_tokens=max_new_tokens,
                    pad_token_id=pad_id,
                    **generate_kwargs,
                )
            for i, row in zip(rows, generated[:, batch["input_ids"].shape[1] :], strict=True):
                kept = row[row != pad_id]
                if eos_id is not None and (kept == eos_id).any():
                    kept = kept[: int((kept == eos_id).nonzero()[0]) + 1]
                text = tokenizer.decode(kept, skip_special_tokens=True)
                out[i] = Completion(cut_at_stop(text, stop), int(kept.numel()))
    return out  # type: ignore[return-value]
