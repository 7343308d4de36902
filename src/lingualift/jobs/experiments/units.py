"""What the experiments share: units on the stage engine, held-out sets, scoring.

Every trained (or scored) system is a *unit*, e.g. ``compass / sw / seed 1``,
run as one stage of the experiment's :class:`~lingualift.stages.Job`: its
result lands atomically in ``<out>/units/<name>/stage.json`` with the
fingerprint of the settings that shaped it; a rerun reuses finished units and
refuses ones made with other settings, so an interrupted experiment resumes
where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lingualift.config import settings_of
from lingualift.data import ParallelCorpus
from lingualift.evaluation.heldout import HeldoutSet, score_heldout
from lingualift.jobs.experiments.config import ClozeSet, ExperimentConfig
from lingualift.languages import DOMINANT_LANGUAGE
from lingualift.stages import Job, StageContext


class Units:
    """The units of one experiment: ``<out>/units/<name>/``, each a stage."""

    def __init__(self, out: Path, config: ExperimentConfig, progress: bool = True) -> None:
        self.job = Job(out / "units", label="experiment", quiet=not progress)
        # Where outputs go and which units exist (langs, seeds, methods...) are bookkeeping:
        # each unit's name says its own, so adding a seed reuses the finished units.
        self.settings = settings_of(config)

    def run(
        self,
        name: str,
        compute: Callable[[StageContext], dict[str, Any]],
        **settings: Any,
    ) -> dict[str, Any]:
        """The result of unit ``name``: reused when finished, computed (and kept) otherwise.

        ``compute`` gets the unit's stage context: files it writes to ``ctx.out``
        stay with the unit; checkpoints in ``ctx.work`` let a crashed unit resume.
        ``settings`` are what the unit depends on beyond the config (a chosen learning
        rate, a step count): they join its fingerprint.
        """
        return self.job.run(
            name,
            {**self.settings, **settings, "unit": name},
            lambda ctx: {"unit": name, **compute(ctx)},
        ).result

    def path(self, name: str) -> Path:
        """The folder of unit ``name`` (files its ``compute`` wrote to ``ctx.out``)."""
        return self.job.root / name


def heldout_sets(config: ClozeSet, langs: Sequence[str], english: bool) -> HeldoutSet:
    """Held-out verses of ``config.heldout_books``: NLL texts and a cloze set per language.

    The NLL verses are the first ``heldout_per_language`` verses of the books; the
    cloze set is drawn from all of their verses with ``cloze_seed`` (the builder
    of :mod:`lingualift.evaluation.cloze`), the same for every system and seed.
    """
    from lingualift.evaluation.cloze import build_cloze

    corpus = ParallelCorpus()
    codes = list(langs) + ([DOMINANT_LANGUAGE] if english else [])
    texts = {
        code: [
            r.text
            for r in corpus.monolingual(
                code, config.heldout_books, limit=config.heldout_per_language
            )
        ]
        for code in codes
    }
    cloze = {}
    if config.cloze_per_language > 0:
        for code in langs:
            cloze[code] = build_cloze(
                code,
                config.heldout_books,
                n=config.cloze_per_language,
                seed=config.cloze_seed,
                records=corpus.monolingual(code, config.heldout_books),  # parse the corpus once
            )
    return HeldoutSet(texts, cloze)


def evaluate(
    model: Any, tokenizer: Any, sets: HeldoutSet, config: ExperimentConfig, shifcon: Any = None
) -> dict[str, dict[str, Any]]:
    """Held-out NLL and cloze accuracy per language, at the experiment's eval sizes."""
    return score_heldout(
        model, tokenizer, sets, shifcon,
        batch_size=config.eval_batch_size, max_length=config.eval_max_length,
    )  # fmt: skip
