"""``lingualift plan``: how much memory each verb needs, from the model's config alone."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb, config_from_args, print_json
from lingualift.cli.verbs import Verb
from lingualift.planning import PlanConfig


def register(subparsers: Any, verb: Verb) -> None:
    add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        config_cls=PlanConfig,
        description="Read only the model's config (no weights; Llama-3.1-8B, Qwen2.5-7B and "
        "Phi-4-mini ship with lingualift) and print, per verb, the memory of the weights, LoRA "
        "parameters, gradients, optimizer state and activations (with and without gradient "
        "checkpointing) and, for serve, the KV cache per sequence and how many sequences fit. "
        "Example: lingualift plan model=meta-llama/Llama-3.1-8B dtype=bf16 quantization=nf4 "
        "batch_size=8 max_length=2048 device=cuda device_memory=24GB",
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.planning import format_plan, plan_memory

    config = config_from_args(args)
    plan = plan_memory(config)
    if config.json:
        print_json(plan.to_dict())
    else:
        print(format_plan(plan))
    return 0
