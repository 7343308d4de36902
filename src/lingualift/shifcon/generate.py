"""Generation with the shift applied: the Python API behind ``lingualift shifcon generate``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lingualift.errors import require
from lingualift.languages import normalize_language
from lingualift.shifcon.core import ShifCon


def generate(
    model: Any,
    tokenizer: Any,
    shifcon: ShifCon | None,
    prompts: Sequence[str],
    langs: str | Sequence[str] | None = None,
    max_new_tokens: int = 48,
    chat: bool = False,
    **generate_kwargs: Any,
) -> list[dict[str, str]]:
    """Complete ``prompts`` with ShifCon on (rows in their own languages), greedy by default.

    ``langs`` is one code for all prompts, one per prompt, or ``None`` to
    identify each prompt's language. Prompts are left-padded into one batch;
    with ``shifcon=None`` the model runs unshifted (for comparison).
    """
    from lingualift.generation import chat_prompts, generate_texts
    from lingualift.langid import default_identifier

    prompts = list(prompts)
    require(prompts, "No prompts given; pass prompts=... or a data file.")
    if langs is None:
        found = default_identifier().identify_many(prompts)
        unsure = [p for p, f in zip(prompts, found, strict=True) if f.lang is None]
        require(
            not unsure,
            f"Could not identify the language of {unsure[0][:40]!r}; give lang=<code>.",
        )
        codes = [f.lang for f in found]
    elif isinstance(langs, str):
        codes = [normalize_language(langs)] * len(prompts)
    else:
        codes = [normalize_language(x) for x in langs]
        require(
            len(codes) == len(prompts),
            f"{len(codes)} languages for {len(prompts)} prompts; give one per prompt.",
        )
    completions = generate_texts(
        model,
        tokenizer,
        chat_prompts(tokenizer, prompts) if chat else prompts,
        max_new_tokens=max_new_tokens,
        batch_size=len(prompts),
        context=(lambda rows: shifcon.apply(model, [codes[i] for i in rows])) if shifcon else None,
        add_special_tokens=not chat,
        **generate_kwargs,
    )
    return [
        {"prompt": p, "lang": c, "completion": done.text}
        for p, c, done in zip(prompts, codes, completions, strict=True)
    ]
