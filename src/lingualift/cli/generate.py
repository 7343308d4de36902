"""``lingualift generate``: generate with per-language adapters, routed per prompt."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from lingualift.chat import check_chat_template
from lingualift.cli._common import Flag, add_verb, config_from_args
from lingualift.cli.verbs import Verb
from lingualift.errors import require
from lingualift.placement import ModelSettings


@dataclasses.dataclass
class RoutedGenerationConfig(ModelSettings):
    """Settings of ``lingualift generate`` (the base model with its precision and placement:
    model, dtype, device, attn_implementation, quantization, trust_remote_code)."""

    prompts: list[str] = dataclasses.field(default_factory=list)
    """Prompts (also the command's bare words), before those of input."""
    input: str | None = None
    """JSONL/CSV/Parquet file of prompts: a text column (and optionally lang)."""
    text_field: str = "text"
    """Prompt column of input."""
    lang: str | None = None
    """Language of every prompt (default: the input's lang column, else detected per prompt)."""
    store: str | None = None
    """Adapter store root (default $LINGUALIFT_HOME/adapters)."""
    langs: list[str] | None = None
    """Adapters to load (default: every language with a current version)."""
    max_new_tokens: int = 64
    """Tokens to generate per prompt."""
    batch_size: int = 8
    """Prompts per forward pass."""
    chat: bool = False
    """Wrap each prompt as a user turn of a chat template (chat_template)."""
    chat_template: str | None = None
    """With chat: a built-in template ('plain', 'chatml'), a Jinja file, a chat_template.json, or
    the template itself; default: the tokenizer's own, else the 'plain' transcript (noted on
    stderr), as in lingualift serve."""
    strict: bool = False
    """Fail instead of falling back to the base model for a language without an adapter."""
    out: str | None = None
    """Write the results as JSONL/Parquet records here (default: print JSON lines)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("max_new_tokens", "batch_size"):
            value = getattr(self, name)
            require(value >= 1, f"{name} must be at least 1, got {value}.")
        check_chat_template(self.chat_template)  # a wrong name or file: before the model loads


def register(subparsers: Any, verb: Verb) -> None:
    add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        config_cls=RoutedGenerationConfig,
        description="Load one base model with the current adapter of each language and generate; "
        "each prompt uses the adapter of lang= or of its detected language (py3langid, offline), "
        "mixed-language batches run in one forward, and a language with no adapter falls back to "
        "the base model (reported on stderr).",
        flags=[
            Flag(("--input", "-i"), "input"),
            Flag(("--text-field",), "text_field"),
            Flag(("--lang",), "lang"),
            Flag(("--model",), "model"),
            Flag(("--store",), "store"),
            Flag(("--langs",), "langs"),
            Flag(("--max-new-tokens",), "max_new_tokens"),
            Flag(("--batch-size",), "batch_size"),
            Flag(("--chat",), "chat", switch=True),
            Flag(("--chat-template",), "chat_template"),
            Flag(("--strict",), "strict", switch=True),
            Flag(("--out", "-o"), "out"),
        ],
        positional="prompts",
    )


def run(args: argparse.Namespace) -> int:
    import json
    import logging

    from lingualift.adapters.routing import Router
    from lingualift.planning import check_fits, prompt_tokens_bound

    config = config_from_args(args)
    if config.out:  # refused before the model loads, not after generating
        from lingualift.atomic import check_file_target
        from lingualift.data.io import check_records_name

        check_records_name(check_file_target(config.out, "generations"))
    prompts: list[str] = list(config.prompts)
    langs: list[str | None] | None = [config.lang] * len(prompts) if config.lang else None
    if config.input:
        from lingualift.data import FieldMap, read_records

        records = read_records(config.input, FieldMap(text=config.text_field))
        prompts += [r.text for r in records]
        if config.lang:
            langs = [config.lang] * len(prompts)
        elif any(r.lang for r in records):
            langs = [None] * len(config.prompts) + [r.lang for r in records]
    require(prompts, "No prompts; pass them as arguments or with input=<file>.")
    # Fallbacks are reported below, once per prompt; the router's own warning would repeat them.
    logging.getLogger("lingualift.adapters.routing").setLevel(logging.ERROR)
    # Batches of the longest prompt plus its completion must fit: refused before loading.
    length = prompt_tokens_bound(prompts, chat=config.chat) + config.max_new_tokens
    batch = min(config.batch_size, len(prompts))
    router = Router(
        config.model_settings(),
        store=config.store,
        langs=config.langs,
        strict=config.strict,
        before_load=lambda settings: check_fits(
            "serve", settings, batch_size=batch, max_length=length
        ),
    )
    template = None
    if config.chat:
        from lingualift.chat import resolve_chat_template

        template = resolve_chat_template(router.tokenizer, config.chat_template)
        if template.is_default:
            print(
                f"note: the model has no chat template; chats use lingualift's default "
                f"{template.name!r} template (chat_template= chooses another)",
                file=sys.stderr,
            )
    results = router.generate(
        prompts,
        langs,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
        chat=config.chat,
        chat_template=template,
    )
    for result in results:
        if result.route.note:
            print(f"note: {result.prompt[:40]!r}: {result.route.note}", file=sys.stderr)
    if config.out:
        from lingualift.data import Record, write_records

        write_records(
            [
                Record(
                    id=str(i), text=r.text, lang=r.route.lang, source="generate", meta=r.to_dict()
                )
                for i, r in enumerate(results)
            ],
            config.out,
        )
        print(f"wrote {len(results)} generations to {config.out}")
    else:
        for r in results:
            print(json.dumps(r.to_dict(), ensure_ascii=False))
    return 0
