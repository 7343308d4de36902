"""One ECDA update, carried out as five stages of the stage engine.

:class:`EcdaUpdater` is the :class:`~lingualift.continual.loop.Updater` of the
ECDA loop. Each planned update is a job under ``<updates>/<lang>-w<window>/``:

1. ``usage``: the usage texts split into COMPASS's target and the gate's new
   held-out set;
2. ``select``: COMPASS selects ``update.budget`` pool items against the
   lineage's data (first version's data + later selections), optionally
   preferring target-language items (``update.target_language_first`` or
   ``update.target_language_boost``), and a
   replay sample of that data is drawn (``update.replay_fraction`` of the mix);
3. ``train``: the next version, started from the parent, on selection +
   replay (+ the usage split's queries with ``update.usage_as_training``)
   with the L2-SP or EWC penalty (resumable checkpoints); stored *without*
   promoting, with its provisional reference profile (of the drifted windows;
   the ECDA loop grows the settled one from the next windows), its selection,
   the queries it trained on (``usage.jsonl``, with ``usage_as_training``) and
   its held-out set in the version folder;
4. ``gate``: parent and candidate scored on the old and the new held-out sets;
5. ``decide``: ``store.promote`` with the evidence (windows, statistics,
   selection, metrics) or ``store.record`` a ``keep`` with the reason.

The ``current`` pointer moves only in ``decide``, in one atomic history append;
a decision already in the history is not taken again, so a rerun after a crash
finishes an update from its last finished stage.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from lingualift.adapters.data import Example, examples_from_records, tokenize_examples
from lingualift.adapters.heldout import heldout_nll
from lingualift.adapters.store import AdapterStore, AdapterVersion
from lingualift.config import to_dict
from lingualift.continual.gate import Gate, read_heldout
from lingualift.continual.loop import PlannedUpdate, UpdateOutcome
from lingualift.continual.reference import Reference
from lingualift.continual.update import (
    SELECTION_FILE,
    USAGE_FILE,
    UpdateSettings,
    lineage_data,
    replay_count,
    replay_sample,
    split_usage,
    usage_records,
)
from lingualift.data import Record, fingerprint, read_records, write_records
from lingualift.embed import Encoder
from lingualift.errors import require
from lingualift.placement import ModelSettings
from lingualift.stages import Job, Stage, StageContext
from lingualift.training import TrainingArgs
from lingualift.workflows.base import LoadedBase
from lingualift.workflows.selection import select_into
from lingualift.workflows.training import (
    StageHooks,
    TrainConfig,
    read_training_data,
    train_and_store,
    train_settings,
)

NEW_HELDOUT_FILE = "heldout.jsonl"
"""The usage stage's split of the new usage that the gate scores (records, never selected from
or trained on)."""
TARGET_FILE = "target.jsonl"
"""The usage stage's other split: COMPASS's target usage (and training text with
``update.usage_as_training``)."""
NEW_EXAMPLE_PREFIXES = ("selection:", "usage:")
"""Ids of an update's new examples; every other example of its mix is replayed."""


@dataclasses.dataclass
class UpdateRecipe:
    """How an update is carried out (the ECDA config's update, training and gate keys)."""

    model: ModelSettings
    """Base model of the adapters, with its precision and placement (the training config's)."""
    store: str | None
    """Adapter store root, as configured (recorded in the training config)."""
    update: UpdateSettings
    """Selection budget, replay fraction, penalty and its lambda."""
    train: TrainingArgs
    """Optimisation of an update (it starts from the parent version's adapter)."""
    gate: Gate
    """Promotion rule."""
    packing: bool = True
    """Pack training examples into full max_length rows."""
    eval_fraction: float = 0.1
    """Share of the training mix held out (kept as the new version's heldout.jsonl)."""
    heldout_fraction: float = 0.2
    """Share of the new usage held out for the gate (never used to select)."""
    n_clusters: int | None = None
    """COMPASS clusters (None: the rule on the target size)."""
    training_data: str | None = None
    """The first version's training data, when its card names data not readable here."""
    old_heldout: str | None = None
    """Old held-out set for the gate when the parent keeps none."""
    backend: str = "local"
    """Embedding backend of the new reference's usage."""
    seed: int = 0
    """Seed of the usage split, the selection and the replay sample."""


class EcdaUpdater:
    """Carries out planned updates as five-stage jobs (see the module docstring).

    Args:
        folder: the updates' folder (one job folder per update id).
        recipe: selection, training and gate settings.
        store: the adapter store.
        pool: COMPASS's candidate pool (every item with a language).
        base: the base model, loaded on first use.
        encoder: the monitor's encoder (the selection and the new reference use it).
        encoder_spec: its spec, recorded in the new reference.
        overwrite: redo stages made with other settings.
        progress: print the stages and the training bar.
    """

    def __init__(
        self,
        folder: str | Path,
        recipe: UpdateRecipe,
        store: AdapterStore,
        pool: list[Record],
        base: LoadedBase,
        encoder: Encoder,
        encoder_spec: str | None,
        *,
        overwrite: bool = False,
        progress: bool = True,
    ) -> None:
        self.folder = Path(folder)
        self.recipe = recipe
        self.store = store
        self.pool = pool
        self.base = base
        self.encoder = encoder
        self.encoder_spec = encoder_spec
        self.overwrite = overwrite
        self.progress = progress

    def __call__(self, update: PlannedUpdate) -> UpdateOutcome:
        recipe, store, lang = self.recipe, self.store, update.lang
        job = Job(
            self.folder / update.id,
            label=f"ecda {update.id}",
            overwrite=self.overwrite,
            total=5,
            quiet=not self.progress,
        )
        parent = store.get(lang, update.parent.split("/v")[1])
        texts = update.texts
        usage = job.run(
            "usage",
            {
                "lang": lang,
                "texts": fingerprint(usage_records(texts, lang, "u")),
                "heldout_fraction": recipe.heldout_fraction,
                "seed": recipe.seed,
            },
            lambda ctx: self._usage(ctx, texts, lang),
            describe="new target usage and its held-out split",
        )
        training = lineage_data(store, parent, recipe.training_data)
        select = job.run(
            "select",
            {
                "update": to_dict(recipe.update),
                "n_clusters": recipe.n_clusters,
                "encoder": self.encoder.name,
                "seed": recipe.seed,
                "training": fingerprint(training),
                "pool": fingerprint(self.pool),
            },
            lambda ctx: self._select(ctx, usage.path, training, lang),
            after=[usage],
            describe=f"COMPASS selection of {recipe.update.budget} pool items + replay",
        )
        train = self._train(job, select, usage, parent, texts)
        candidate = store.get(lang, train.result["version"])
        gate = job.run(
            "gate",
            {"gate": to_dict(recipe.gate), "old_heldout": recipe.old_heldout},
            lambda ctx: self._gate(ctx, parent, candidate, usage.path),
            after=[train],
            describe=f"scoring {parent.name} and {candidate.name} on the old and new sets",
        )
        decide = job.run(
            "decide",
            {"update": update.id},
            lambda ctx: self._decide(update, parent, candidate, select.result, gate.result),
            after=[gate],
            describe="promote or keep",
        )
        status = decide.result["status"]
        if self.progress:
            print(
                f"[ecda] {update.id}: {status} {decide.result['current']} "
                f"({gate.result['reason']})",
                file=sys.stderr,
                flush=True,
            )
        return UpdateOutcome(
            status, candidate.name, decide.result["current"], gate.result["reason"]
        )

    def _usage(self, ctx: StageContext, texts: list[str], lang: str) -> dict[str, Any]:
        target, held = split_usage(texts, self.recipe.heldout_fraction, self.recipe.seed)
        require(target and held, f"The drifted windows of {lang} hold too few distinct queries.")
        write_records(usage_records(target, lang, "target-"), ctx.out / TARGET_FILE)
        write_records(usage_records(held, lang, "heldout-"), ctx.out / NEW_HELDOUT_FILE)
        return {"target": len(target), "heldout": len(held)}

    def _select(
        self, ctx: StageContext, usage: Path, training: list[Record], lang: str
    ) -> dict[str, Any]:
        recipe, settings = self.recipe, self.recipe.update
        target = read_records(usage / TARGET_FILE)
        budget = min(settings.budget, len(self.pool))
        report = select_into(
            ctx.out, "compass", target, training, self.pool, budget, fmt="jsonl",
            encoder=self.encoder, n_clusters=recipe.n_clusters, seed=recipe.seed,
            target_lang=lang, target_language_boost=settings.target_language_boost,
            target_language_first=settings.target_language_first, progress=False,
        )  # fmt: skip
        # Replay is a share of the whole mix: the drifted queries trained on count as new ones.
        n_usage = len(target) if settings.usage_as_training else 0
        n_new = report["n_selected"] + n_usage
        n_replay = replay_count(n_new, settings.replay_fraction, len(training))
        replay = replay_sample(training, n_replay, recipe.seed)
        if replay:
            write_records(replay, ctx.out / "replay.jsonl")
        return {**report, "n_usage": n_usage, "n_replay": len(replay), "n_training": len(training)}

    def _train(
        self, job: Job, select: Stage, usage: Stage, parent: AdapterVersion, texts: list[str]
    ) -> Stage:
        from lingualift.compass.embedding import EmbeddedSet, embed_texts
        from lingualift.continual.penalty import add_penalty

        recipe, lang = self.recipe, parent.lang
        replay = select.path / "replay.jsonl"
        path = job.root / "train"
        train_config = TrainConfig(
            **recipe.model.model_kwargs(), lang=lang,
            data=str(replay) if replay.is_file() else None,
            data_format="text", selection=str(select.path / SELECTION_FILE), train=recipe.train,
            packing=recipe.packing, eval_fraction=recipe.eval_fraction, parent=parent.name,
            out_dir=str(path), store=recipe.store, promote=False,
        )  # fmt: skip
        data = read_training_data(train_config)
        usage_file = usage.path / TARGET_FILE
        n_usage = 0
        if recipe.update.usage_as_training:  # never the gate's held-out split (usage/heldout.jsonl)
            found, summary = examples_from_records(
                read_records(usage_file), str(usage_file), role="usage", id_prefix="usage:"
            )
            data.examples.extend(found)
            data.summaries.append(summary)
            n_usage = len(found)
        replay_examples = [ex for ex in data.examples if not ex.id.startswith(NEW_EXAMPLE_PREFIXES)]
        settings = {**train_settings(train_config, data, parent), "update": to_dict(recipe.update)}

        def stage(ctx: StageContext) -> dict[str, Any]:
            vectors, name = embed_texts(texts, self.encoder, recipe.backend, progress=False)
            reference = Reference.build(
                EmbeddedSet(vectors, name), lang, texts=texts, seed=recipe.seed,
                encoder_spec=self.encoder_spec,
            )  # fmt: skip

            def prepare(trainer: Any) -> dict[str, Any]:
                rows = tokenize_examples(
                    replay_examples, trainer.tokenizer, recipe.train.max_length
                )
                _, info = add_penalty(
                    trainer, recipe.update.penalty, recipe.update.penalty_lambda, rows,
                    recipe.update.fisher_samples,
                )  # fmt: skip
                ecda = {
                    "update": job.root.name,
                    "selection": SELECTION_FILE,
                    "n_replay": len(replay_examples),
                    "replay_fraction": recipe.update.replay_fraction,
                    "usage_as_training": recipe.update.usage_as_training,
                    "n_usage": n_usage,
                    "target_language_first": recipe.update.target_language_first,
                    "target_language_boost": recipe.update.target_language_boost,
                }
                return {"penalty": info, "ecda": ecda}

            def extra_files(folder: Path) -> None:
                shutil.copy2(select.path / SELECTION_FILE, folder / SELECTION_FILE)
                if recipe.update.usage_as_training:  # the lineage's data now holds them
                    shutil.copy2(usage_file, folder / USAGE_FILE)
                reference.write(folder / "reference")

            _, result = train_and_store(
                ctx, train_config, data, self.base.fresh(), self.base.tokenizer, self.store,
                parent, self.progress, StageHooks(prepare, extra_files),
            )  # fmt: skip
            return result

        return job.run(
            "train", settings, stage, after=[select, usage], path=path,
            describe=f"next version from {parent.name} ({recipe.update.penalty} penalty)",
        )  # fmt: skip

    def _gate(
        self, ctx: StageContext, current: AdapterVersion, candidate: AdapterVersion, usage: Path
    ) -> dict[str, Any]:
        recipe = self.recipe
        old = read_heldout(current.path, current.name, recipe.old_heldout)
        new = [
            Example(id=r.id, kind="text", text=r.text)
            for r in read_records(usage / NEW_HELDOUT_FILE)
        ]
        length, batch = recipe.train.max_length, recipe.train.batch_size
        scores = {}
        for role, version in (("current", current), ("candidate", candidate)):
            model = self.base.with_adapter(version.path)
            scores[role] = {
                "old": heldout_nll(model, self.base.tokenizer, old, length, batch),
                "new": heldout_nll(model, self.base.tokenizer, new, length, batch),
            }
            del model
        decision = recipe.gate.decide(scores["current"], scores["candidate"])
        result = {**decision.to_dict(), "current": current.name, "candidate": candidate.name,
                  "n_old": len(old), "n_new": len(new)}  # fmt: skip
        (ctx.out / "gate.json").write_text(json.dumps(result, indent=2), "utf-8")
        return result

    def _decide(
        self,
        update: PlannedUpdate,
        current: AdapterVersion,
        candidate: AdapterVersion,
        selection: dict[str, Any],
        gate: dict[str, Any],
    ) -> dict[str, Any]:
        lang = update.lang
        for past in self.store.history(lang):
            if past.get("update") == update.id:  # decided before a crash
                status = "promoted" if past["action"] == "promote" else "kept"
                return {"status": status, "current": f"{lang}/v{past['current']}"}
        evidence = {
            "update": update.id,
            "candidate": candidate.name,
            "parent": current.name,
            "windows": update.evidence,
            "selection": selection,
            "metrics": gate["metrics"],
            "gate": gate["rule"],
            "reason": gate["reason"],
        }
        if gate["promote"]:
            self.store.promote(lang, candidate.version, evidence=evidence)
            return {"status": "promoted", "current": candidate.name}
        self.store.record(lang, {"action": "keep", **evidence})
        return {"status": "kept", "current": current.name}
