"""``lingualift train``: train one language's LoRA adapter and store it.

The same module is the entry point for multi-process runs::

    accelerate launch -m lingualift.cli.train --config recipes/train_sw.yaml
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lingualift.adapters.config import TrainConfig
from lingualift.cli._common import add_verb, config_from_args


def register(subparsers: Any) -> None:
    parser = add_verb(
        subparsers,
        "train",
        "train a LoRA adapter for one language and store it as a new version",
        run,
        config_cls=TrainConfig,
        description="Train a PEFT LoRA adapter for one target language on text, prompt/completion "
        "or chat data, optionally mixed with a COMPASS selection; evaluate on a held-out split; "
        "store it as <store>/<lang>/v<N> with a card. Runs under 'accelerate launch' unchanged.",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in output_dir"
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.adapters.trainer import train

    config = config_from_args(args)
    if args.resume:
        config.resume = True
    result = train(config)
    if result.adapter is not None:
        m = result.metrics
        before, after = m["eval_loss_before"], m["eval_loss"]
        held = f"held-out loss {before:.4f} -> {after:.4f}; " if after is not None else ""
        print(
            f"stored {result.adapter.name} at {result.adapter.path} "
            f"({m['steps']} steps, {held}{m['tokens_per_s']} tok/s); run folder {result.run_dir}"
        )
    return 0


if __name__ == "__main__":  # `accelerate launch -m lingualift.cli.train ...`
    from lingualift.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
