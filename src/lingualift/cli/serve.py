"""``lingualift serve``: the OpenAI-compatible server, the vLLM command, or the routing front."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb, config_from_args
from lingualift.jobs.serve import ServeConfig


def register(subparsers: Any) -> None:
    parser = add_verb(
        subparsers,
        "serve",
        "serve the base model and every language's adapter over an OpenAI-compatible API",
        run,
        ServeConfig,
        description="Serve one base model with the current adapter of each language "
        "(/v1/completions, /v1/chat/completions, /v1/models, /health, /metrics). model=<lang> uses "
        "that adapter, model=auto identifies the language; promote and rollback apply without a "
        "restart; every request is written to the traffic log. --engine vllm prints the vLLM "
        "command for the same adapters; --engine route runs a routing front before --upstream.",
    )
    parser.add_argument(
        "--engine", choices=["lingualift", "vllm", "route"], help="same as engine=<value>"
    )
    parser.add_argument("--upstream", help="with --engine route: the server to forward to")
    parser.add_argument(
        "--run", action="store_true", help="with --engine vllm: run the command (if vllm is here)"
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.jobs.serve import serve

    flags = [f"engine={args.engine}"] if args.engine else []
    flags += [f"upstream={args.upstream}"] if args.upstream else []
    flags += ["run=true"] if args.run else []
    args.overrides = [*args.overrides, *flags]
    return serve(config_from_args(args))
