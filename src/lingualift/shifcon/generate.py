"""Generation with the shift applied: the Python API behind ``lingualift shifcon generate``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lingualift.errors import LingualiftError, require
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


def generate_from_config(config: Any) -> list[dict[str, str]]:
    """Run :class:`~lingualift.shifcon.config.GenerateConfig`."""
    from lingualift.data import Record, read_records, write_records
    from lingualift.models import load_causal_lm

    shifcon = ShifCon.load(config.shifcon)
    prompts, langs = list(config.prompts), None
    if config.data:
        records = read_records(config.data)
        prompts += [r.text for r in records]
        if config.lang is None and all(r.lang for r in records) and not config.prompts:
            langs = [r.lang for r in records]
    if config.lang:
        langs = config.lang
    model, tokenizer = load_causal_lm(config.model or shifcon.base_model)
    if config.adapter:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, config.adapter)
        except (OSError, ValueError) as exc:
            raise LingualiftError(
                f"Could not load the adapter {config.adapter} ({exc}); pass a PEFT adapter folder."
            ) from None
        model.eval()
    extra = {"temperature": config.temperature} if config.do_sample else {}
    rows = generate(
        model,
        tokenizer,
        None if config.no_shift else shifcon,
        prompts,
        langs,
        max_new_tokens=config.max_new_tokens,
        chat=config.chat,
        do_sample=config.do_sample,
        **extra,
    )
    if config.out:
        write_records(
            [
                Record(
                    id=str(i), text=r["completion"], lang=r["lang"], meta={"prompt": r["prompt"]}
                )
                for i, r in enumerate(rows)
            ],
            config.out,
        )
    return rows
