"""Generation with the shift applied: the Python API behind ``lingualift shifcon generate``."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from lingualift.errors import LingualiftError, require
from lingualift.languages import normalize_language
from lingualift.shifcon.core import ShifCon


def identify_language(text: str) -> str:
    """The language of ``text`` by py3langid (shipped with its model, works offline)."""
    import py3langid

    code, _ = py3langid.classify(text)
    return normalize_language(code)


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
    import torch

    prompts = list(prompts)
    require(prompts, "No prompts given; pass prompts=... or a data file.")
    if langs is None:
        codes = [identify_language(p) for p in prompts]
    elif isinstance(langs, str):
        codes = [normalize_language(langs)] * len(prompts)
    else:
        codes = [normalize_language(x) for x in langs]
        require(
            len(codes) == len(prompts),
            f"{len(codes)} languages for {len(prompts)} prompts; give one per prompt.",
        )
    texts = prompts
    if chat:
        require(
            getattr(tokenizer, "chat_template", None),
            "This tokenizer has no chat template; drop chat=true.",
        )
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
            )
            for p in prompts
        ]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # new tokens must follow every prompt directly
    try:
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not chat)
    finally:
        tokenizer.padding_side = side
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    manager = shifcon.apply(model, codes) if shifcon is not None else contextlib.nullcontext()
    generate_kwargs.setdefault("do_sample", False)
    generate_kwargs.setdefault("pad_token_id", tokenizer.pad_token_id)
    with torch.no_grad(), manager:
        output = model.generate(**batch, max_new_tokens=max_new_tokens, **generate_kwargs)
    new = output[:, batch["input_ids"].shape[1] :]
    completions = tokenizer.batch_decode(new, skip_special_tokens=True)
    return [
        {"prompt": p, "lang": c, "completion": t}
        for p, c, t in zip(prompts, codes, completions, strict=True)
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
