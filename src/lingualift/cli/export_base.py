"""``lingualift export-base``: the embedded base model as a plain Hugging Face folder."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb, config_from_args
from lingualift.cli.verbs import Verb
from lingualift.jobs.export_base import ExportBaseConfig


def register(subparsers: Any, verb: Verb) -> None:
    add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        config_cls=ExportBaseConfig,
        description="Write the weights adapters and ShifCon vectors were trained on (the "
        "embedded Q4_K_M GGUF, dequantized; not google/gemma-3-270m's weights) as a plain "
        "Hugging Face folder that vLLM, lm-eval and from_pretrained load as is, and register "
        "them in this machine's Hugging Face cache under the portable id stored adapters name.",
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.jobs.export_base import run_export_base

    result = run_export_base(config_from_args(args))
    print(f"{'found' if result.reused else 'wrote'} {result.out}")
    print(f"  adapters name this base as {result.name_or_path} (revision {result.revision})")
    if result.registered:
        print(f"  registered in the Hugging Face cache: {result.registered}")
    print(f"  vllm serve {result.out} --enable-lora --lora-modules <lang>=<adapter folder>")
    print(
        f"  lm_eval --model hf --model_args pretrained={result.out},peft=<adapter folder> "
        "--tasks <task>"
    )
    return 0
