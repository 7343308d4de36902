"""``lingualift shifcon vectors|layers|train|generate|export``: the ShifCon workflow."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb, config_from_args, print_json
from lingualift.cli.verbs import Verb
from lingualift.jobs.shifcon import ExportConfig, GenerateConfig, LayersConfig, VectorsConfig
from lingualift.jobs.shifcon_train import ShifConTrainConfig


def register(subparsers: Any, verb: Verb) -> None:
    parser = subparsers.add_parser(
        verb.name,
        help=verb.help,
        description="ShifCon: language vectors, layer area, shifted training, generation, export. "
        "Typical order: vectors -> layers -> train -> generate/export.",
    )
    sub = parser.add_subparsers(dest="shifcon_verb", metavar="<step>", required=True)
    add_verb(
        sub,
        "vectors",
        "compute per-language, per-layer mean hidden states (safetensors)",
        run_vectors,
        config_cls=VectorsConfig,
    )
    add_verb(
        sub,
        "layers",
        "draw the subspace-distance curve and choose the layer area [a, b]",
        run_layers,
        config_cls=LayersConfig,
    )
    add_verb(
        sub,
        "train",
        "train with L = alpha*L_gen + beta*L_con through the shifted forward (LoRA or full)",
        run_train,
        config_cls=ShifConTrainConfig,
    )
    add_verb(
        sub, "generate", "generate with the shift applied", run_generate, config_cls=GenerateConfig
    )
    add_verb(
        sub,
        "export",
        "write lm-evaluation-harness 'steered' files, one per language",
        run_export,
        config_cls=ExportConfig,
    )


def run_vectors(args: argparse.Namespace) -> int:
    from lingualift.jobs.shifcon import run_vectors

    vectors, path = run_vectors(config_from_args(args))
    print(
        f"wrote {path}: {len(vectors.languages)} languages x {vectors.num_layers + 1} "
        f"hidden-state indices x {vectors.hidden_size} ({', '.join(vectors.languages)})"
    )
    return 0


def run_layers(args: argparse.Namespace) -> int:
    from lingualift.jobs.shifcon import run_layers

    config = config_from_args(args)
    shifcon, record = run_layers(config)
    mean = record["curves"]["mean"]
    print("index  mean-distance")
    for index, value in enumerate(mean):
        mark = " <- area" if shifcon.a <= index <= shifcon.b else ""
        print(f"{index:>5}  {value:.4f}{mark}")
    print(f"layer area a={shifcon.a} b={shifcon.b} ({record['rule']}); wrote {config.shifcon}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from lingualift.jobs.shifcon_train import run_shifcon_train

    metrics = run_shifcon_train(config_from_args(args))
    print_json(metrics)
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from lingualift.jobs.shifcon import run_shifcon_generate

    for row in run_shifcon_generate(config_from_args(args)):
        print(f"[{row['lang']}] {row['prompt']!r} -> {row['completion']!r}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from lingualift.jobs.shifcon import run_export

    paths = run_export(config_from_args(args))
    for path in paths:
        print(f"wrote {path}")
    return 0
