"""The verb table: every ``lingualift`` verb, its one-line help, its module and its doc page.

The CLI builds its parser from :data:`VERBS` (in this order), the README's verb
list is :func:`markdown_table` (a test keeps them equal; ``python -m
lingualift.cli.verbs`` prints it), and the recipe test checks that every
recipe's header command names a verb of this table.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Verb:
    """One verb of the ``lingualift`` command."""

    name: str
    """What the user types: ``lingualift <name>``."""
    help: str
    """One line, shown by ``lingualift --help`` and in the README."""
    module: str
    """The module whose ``register(subparsers, verb)`` adds the verb to the parser."""
    doc: str | None = None
    """The documentation page, relative to the repository root."""


VERBS: tuple[Verb, ...] = (
    Verb("info", "versions, embedded assets and cache contents", "lingualift.cli.info"),
    Verb(
        "export-base",
        "the embedded base model's weights (dequantized GGUF) as a plain Hugging Face folder for "
        "vLLM and lm-eval, registered under the portable name adapters record",
        "lingualift.cli.export_base",
        "docs/adapters.md",
    ),
    Verb(
        "plan",
        "memory of train, eval, serve and shifcon from the model's config alone (weights, LoRA, "
        "optimizer, activations with and without checkpointing, KV cache), and whether it fits a "
        "device",
        "lingualift.cli.plan",
        "docs/scale.md",
    ),
    Verb(
        "corpus",
        "export the embedded parallel corpus (22 languages; monolingual or aligned pairs) to a file",
        "lingualift.cli.corpus",
    ),
    Verb(
        "quickstart",
        "the main job end to end on the embedded defaults (COMPASS, LoRA, ShifCon, evaluation)",
        "lingualift.cli.quickstart",
        "docs/quickstart.md",
    ),
    Verb(
        "select",
        "COMPASS selection of auxiliary data where target usage is under-covered (and the "
        "random, lang-similarity, all baselines)",
        "lingualift.cli.select",
        "docs/compass.md",
    ),
    Verb(
        "train",
        "train a LoRA adapter for one language and store it as a new version (current only when it is "
        "the language's first, or with promote=true)",
        "lingualift.cli.train",
        "docs/adapters.md",
    ),
    Verb(
        "adapters",
        "list, show, promote or roll back stored language adapters",
        "lingualift.cli.adapters",
        "docs/adapters.md",
    ),
    Verb(
        "monitor",
        "drift of production queries (log file, segment folder, stdin) against each adapter "
        "version's reference profile; build_reference= builds one",
        "lingualift.cli.monitor",
        "docs/continual.md",
    ),
    Verb(
        "ecda",
        "the continual loop: monitor, COMPASS selection, update from the current version "
        "(replay + L2-SP/EWC), gate, promote or keep",
        "lingualift.cli.ecda",
        "docs/continual.md",
    ),
    Verb(
        "generate",
        "generate text, routing each prompt to its language's adapter",
        "lingualift.cli.generate",
        "docs/adapters.md",
    ),
    Verb(
        "serve",
        "OpenAI-compatible server: every language's adapter in mixed batches that requests "
        "join as they arrive (continuous batching), every OpenAI parameter honoured or refused "
        "(lm-eval's `local-completions` included), hot reload on promote/rollback, traffic "
        "log; the vLLM command and a routing front",
        "lingualift.cli.serve",
        "docs/serving.md",
    ),
    Verb(
        "dashboard",
        "the loop on one page: versions, lineage and gate decisions, traffic per adapter, every "
        "monitored window against its thresholds, read live; rollback with allow_actions=true "
        "and a key",
        "lingualift.cli.dashboard",
        "docs/continual.md",
    ),
    Verb(
        "shifcon",
        "shift non-dominant languages into the dominant subspace (ShifCon): vectors, layers, "
        "train, generate, export (lm-eval steered)",
        "lingualift.cli.shifcon",
        "docs/shifcon.md",
    ),
    Verb(
        "eval",
        "evaluate a model (+ adapters, + ShifCon) per language: Global-MMLU, MMLU-ProX, "
        "perplexity, long context, any lm-eval task",
        "lingualift.cli.eval",
        "docs/evaluation.md",
    ),
    Verb(
        "cloze",
        "build a cloze multiple-choice set (Global-MMLU format) from held-out corpus verses",
        "lingualift.cli.cloze",
        "docs/evaluation.md",
    ),
    Verb(
        "report",
        "compare results files per language (table + heat map PNG)",
        "lingualift.cli.report",
        "docs/evaluation.md",
    ),
    Verb(
        "experiment",
        "run an experiment that tests a method's claim (recipes/experiments/*.yaml)",
        "lingualift.cli.experiment",
        "docs/RESULTS.md",
    ),
)
"""Every verb, in the order ``lingualift --help`` and the README list them."""


def markdown_table() -> str:
    """The README's verb list: verb, what it does, documentation."""
    lines = ["| verb | what it does | docs |", "| --- | --- | --- |"]
    for verb in VERBS:
        doc = f"[{verb.doc}]({verb.doc})" if verb.doc else ""
        lines.append(f"| `{verb.name}` | {verb.help} | {doc} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - prints the README's table
    print(markdown_table())
