"""``lingualift serve``: the OpenAI-compatible server, the vLLM command, or the routing front."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import Flag, add_verb, config_from_args
from lingualift.cli.verbs import Verb
from lingualift.jobs.serve import ServeConfig


def register(subparsers: Any, verb: Verb) -> None:
    add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        ServeConfig,
        description="Serve one base model with the current adapter of each language "
        "(/v1/completions, /v1/chat/completions, /v1/models, /health, /metrics). model=<lang> uses "
        "that adapter, model=auto identifies the language; promote and rollback apply without a "
        "restart; every request is written to the traffic log; chat_template= renders chats for a "
        "model without a template (default: a plain transcript). engine=vllm prints the vLLM "
        "command for the same adapters; engine=route runs a routing front before upstream=.",
        flags=[
            Flag(("--engine",), "engine"),
            Flag(("--upstream",), "upstream"),
            Flag(("--run",), "run", switch=True),
            Flag(("--chat-template",), "chat_template"),  # vLLM's spelling
        ],
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.jobs.serve import serve

    return serve(config_from_args(args))
