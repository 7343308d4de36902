"""``lingualift train``: train one language's LoRA adapter and store it.

The same module is the entry point for multi-process runs::

    accelerate launch -m lingualift.cli.train --config recipes/train_sw.yaml
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lingualift.cli._common import add_verb, config_from_args
from lingualift.cli.verbs import Verb
from lingualift.jobs.train import TrainConfig


def register(subparsers: Any, verb: Verb) -> None:
    parser = add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        config_cls=TrainConfig,
        description="Train a PEFT LoRA adapter for one target language on text, prompt/completion "
        "or chat data, optionally mixed with a COMPASS selection; evaluate on a held-out split; "
        "store it as <store>/<lang>/v<N> with a card. An interrupted run resumes from its last "
        "checkpoint when started again with the same settings; a finished one is not retrained. "
        "Runs under 'accelerate launch' unchanged.",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="accepted for compatibility: resuming is automatic",
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.jobs.train import run_train

    result = run_train(config_from_args(args))
    if result.adapter is not None:
        m = result.metrics
        before, after = m.get("eval_loss_before"), m.get("eval_loss")
        held = f"held-out loss {before:.4f} -> {after:.4f}; " if after is not None else ""
        verb = "already stored" if result.reused else "stored"
        print(
            f"{verb} {result.adapter.name} at {result.adapter.path} "
            f"({m['steps']} steps, {held}{m['tokens_per_s']} tok/s); run folder {result.run_dir}"
        )
    return 0


if __name__ == "__main__":  # `accelerate launch -m lingualift.cli.train ...`
    from lingualift.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
