"""The ``ecda`` job: monitor -> select -> update -> gate -> promote or keep, per language.

``run_ecda(EcdaConfig(input=..., langs=[...], pool=...))`` runs the drift
monitor (:mod:`lingualift.jobs.monitor`) over a log once, or follows a log
folder (``follow=true``: poll every ``poll_seconds``, at most ``max_polls``
times or until Ctrl-C). When ``trigger_windows`` consecutive windows of a
language drift, an update is planned (and saved in the monitor's state
before anything else happens) with the drifted windows among the last
``usage_windows`` as the new target usage. Each update is a job of five
stages of the stage engine under ``out_dir/updates/<lang>-w<window>/``:

1. ``usage``: the usage texts split into COMPASS's target and the gate's new
   held-out set;
2. ``select``: COMPASS selects ``update.budget`` pool items against the
   lineage's data (first version's data + later selections), and a replay
   sample of that data is drawn (``update.replay_fraction``);
3. ``train``: the next version, started from the current one, on selection +
   replay with the L2-SP or EWC penalty (resumable checkpoints); stored
   *without* promoting, with its reference profile (of the new usage), its
   selection and its held-out set in the version folder;
4. ``gate``: current and candidate scored on the old and the new held-out sets;
5. ``decide``: ``store.promote`` with the evidence (windows, statistics,
   selection, metrics) or ``store.record`` a ``keep`` with the reason.

A crash anywhere leaves ``current`` and every finished version intact (the
pointer moves only in ``decide``, in one atomic history append); a rerun
finishes the pending update from its last finished stage and then goes on
reading the log where the monitor stopped.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from pathlib import Path
from typing import Any

from lingualift.adapters.store import AdapterStore, AdapterVersion
from lingualift.config import bookkeeping, save_config, settings_of, to_dict
from lingualift.continual.gate import Gate, heldout_nll, read_heldout
from lingualift.continual.logs import STDIN, check_source
from lingualift.continual.monitor import WindowReport
from lingualift.continual.reference import Reference
from lingualift.continual.update import (
    SELECTION_FILE,
    UpdateSettings,
    lineage_data,
    replay_count,
    replay_sample,
    split_usage,
    usage_records,
)
from lingualift.data import Record, fingerprint, write_records
from lingualift.data.sources import read_source
from lingualift.errors import require
from lingualift.jobs.common import BaseModel
from lingualift.jobs.monitor import (
    MonitorRun,
    MonitorSettings,
    load_reference,
    make_monitor,
    monitored_languages,
)
from lingualift.models import DEFAULT_MODEL
from lingualift.stages import Job, StageContext
from lingualift.training import TrainingArgs


def _update_training() -> TrainingArgs:
    return TrainingArgs(lr=1e-4, max_steps=20, batch_size=8, max_length=128, save_every=5)


@dataclasses.dataclass
class EcdaConfig(MonitorSettings):
    """Settings of ``lingualift ecda``."""

    input: str = ""
    """Production queries: a traffic-log file, a folder of log segments, or '-' (stdin)."""
    langs: list[str] = dataclasses.field(default_factory=list)
    """Languages to keep fresh; empty: every language of the store with a current version."""
    store: str | None = None
    """Adapter store root (default $LINGUALIFT_HOME/adapters)."""
    model: str = DEFAULT_MODEL
    """Base model of the adapters."""
    pool: str = ""
    """Candidate pool for COMPASS (a data file with a language column, or corpus:...)."""
    # Read by content where used (the gate's and the lineage's fingerprints cover them).
    training_data: str | None = bookkeeping(None)
    """The first version's training data, when its card names data that is not readable here."""
    old_heldout: str | None = bookkeeping(None)
    """Old held-out set for the gate when the current version keeps none (heldout.jsonl)."""
    out_dir: str = bookkeeping("runs/ecda")
    """Output folder: monitor/ (drift.jsonl, drift.png, state) and updates/<lang>-w<N>/."""
    follow: bool = bookkeeping(False)
    """Keep following the log (a folder of segments) instead of reading it once."""
    poll_seconds: float = bookkeeping(60.0)
    """Seconds between two reads of the log when following it."""
    max_polls: int | None = bookkeeping(None)
    """Stop following after this many reads (None: until Ctrl-C)."""
    trigger_windows: int = 1
    """Consecutive drifting windows of a language that start an update."""
    usage_windows: int = 3
    """Recent windows kept; the drifted ones among them become the new target usage."""
    cooldown_windows: int = 2
    """Windows to wait after a kept (not promoted) update before another can start."""
    heldout_fraction: float = 0.2
    """Share of the new usage held out for the gate (never used to select)."""
    n_clusters: int | None = None
    """COMPASS clusters (None: the rule on the target size)."""
    update: UpdateSettings = dataclasses.field(default_factory=UpdateSettings)
    """Selection budget, replay fraction, penalty (l2sp, ewc, none) and its lambda."""
    train: TrainingArgs = dataclasses.field(default_factory=_update_training)
    """Optimisation of an update (it starts from the current version's adapter)."""
    packing: bool = True
    """Pack training examples into full max_length rows."""
    eval_fraction: float = 0.1
    """Share of an update's training mix held out (kept as the new version's heldout.jsonl)."""
    gate: Gate = dataclasses.field(default_factory=Gate)
    """Promotion rule: min_gain on the new usage, tolerance on the old set (nats or relative)."""
    overwrite: bool = bookkeeping(False)
    """Start afresh in an out_dir made with other settings."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.trigger_windows >= 1, "trigger_windows must be at least 1.")
        require(
            self.usage_windows >= self.trigger_windows,
            "usage_windows must be at least trigger_windows.",
        )
        require(0 < self.heldout_fraction < 1, "heldout_fraction must be in (0, 1).")
        require(0 < self.eval_fraction < 1, "eval_fraction must be in (0, 1) (the gate needs it).")
        require(self.poll_seconds >= 0, "poll_seconds must not be negative.")


@dataclasses.dataclass
class EcdaResult:
    out_dir: Path
    updates: list[dict[str, Any]]
    """Every update of this folder: id, language, windows, status (promoted/kept), versions."""
    summary: dict[str, Any]


class EcdaLoop:
    """Plans updates from window reports and carries them out (see the module docstring)."""

    def __init__(
        self,
        config: EcdaConfig,
        store: AdapterStore,
        run: MonitorRun,
        pool: list[Record],
        base: BaseModel,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.store = store
        self.run = run
        self.pool = pool
        self.base = base
        self.progress = progress
        extra = run.extra
        extra.setdefault("streak", {})
        extra.setdefault("cooldown", {})
        extra.setdefault("updates", [])

    def _say(self, text: str) -> None:
        if self.progress:
            print(f"[ecda] {text}", file=sys.stderr, flush=True)

    # -- planning (inside the monitor's save) ----------------------------------------------

    def plan(self, reports: list[WindowReport]) -> bool:
        """Record the updates these reports trigger; True pauses the monitor to carry them out."""
        extra, config = self.run.extra, self.config
        planned = False
        for report in reports:
            if report.decision.get("skipped"):
                continue
            lang = report.lang
            streak = extra["streak"].get(lang, 0) + 1 if report.drift else 0
            extra["streak"][lang] = streak
            if streak < config.trigger_windows or report.index < extra["cooldown"].get(lang, 0):
                continue
            windows = self.run.stream.recent_usage(lang)
            texts = [t for w in windows for t in w["texts"]]
            entry = {
                "id": f"{lang}-w{report.index:05d}",
                "lang": lang,
                "window": report.index,
                "windows": [w["index"] for w in windows],
                "parent": self.store.get(lang).name,
                "status": "pending",
                "texts": texts,
            }
            extra["updates"].append(entry)
            extra["streak"][lang] = 0
            planned = True
            self._say(f"{lang}: drift in window {report.index}, update {entry['id']} planned")
        return planned

    # -- carrying out ----------------------------------------------------------------------

    def settle(self) -> None:
        """Carry out every pending update, oldest first, saving the state after each."""
        for entry in self.run.extra["updates"]:
            if entry["status"] != "pending":
                continue
            outcome = self.update(entry)
            entry.update(outcome, status=outcome["status"])
            entry.pop("texts", None)
            lang = entry["lang"]
            if outcome["status"] == "promoted":
                reference = load_reference(self.store, lang)
                self.run.stream.set_reference(lang, make_monitor(reference, self.config))
            else:
                self.run.stream.recent[lang].clear()
                last = self.run.stream.index[lang]
                self.run.extra["cooldown"][lang] = last + self.config.cooldown_windows
            self.run.save()

    def update(self, entry: dict[str, Any]) -> dict[str, Any]:
        config, store = self.config, self.store
        lang = entry["lang"]
        job = Job(
            Path(config.out_dir) / "updates" / entry["id"],
            label=f"ecda {entry['id']}",
            overwrite=config.overwrite,
            total=5,
            quiet=not self.progress,
        )
        parent = store.get(lang, entry["parent"].split("/v")[1])
        texts = entry["texts"]
        usage = job.run(
            "usage",
            {
                "lang": lang,
                "texts": fingerprint(usage_records(texts, lang, "u")),
                "heldout_fraction": config.heldout_fraction,
                "seed": config.seed,
            },
            lambda ctx: self._usage(ctx, texts, lang),
            describe="new target usage and its held-out split",
        )
        training = lineage_data(store, parent, config.training_data)
        select = job.run(
            "select",
            {
                "update": to_dict(config.update),
                "n_clusters": config.n_clusters,
                "encoder": self.run.encoder.name,
                "seed": config.seed,
                "training": fingerprint(training),
                "pool": fingerprint(self.pool),
            },
            lambda ctx: self._select(ctx, usage.path, training, lang),
            after=[usage],
            describe=f"COMPASS selection of {config.update.budget} pool items + replay",
        )
        train = self._train(job, select, usage, parent, texts)
        candidate = store.get(lang, train.result["version"])
        gate = job.run(
            "gate",
            {"gate": to_dict(config.gate), "old_heldout": config.old_heldout},
            lambda ctx: self._gate(ctx, parent, candidate, usage.path),
            after=[train],
            describe=f"scoring {parent.name} and {candidate.name} on the old and new sets",
        )
        decide = job.run(
            "decide",
            {"update": entry["id"]},
            lambda ctx: self._decide(entry, parent, candidate, select.result, gate.result),
            after=[gate],
            describe="promote or keep",
        )
        status = decide.result["status"]
        self._say(f"{entry['id']}: {status} {decide.result['current']} ({gate.result['reason']})")
        return {"status": status, "candidate": candidate.name, "current": decide.result["current"],
                "reason": gate.result["reason"]}  # fmt: skip

    def _usage(self, ctx: StageContext, texts: list[str], lang: str) -> dict[str, Any]:
        target, held = split_usage(texts, self.config.heldout_fraction, self.config.seed)
        require(target and held, f"The drifted windows of {lang} hold too few distinct queries.")
        write_records(usage_records(target, lang, "target-"), ctx.out / "target.jsonl")
        write_records(usage_records(held, lang, "heldout-"), ctx.out / "heldout.jsonl")
        return {"target": len(target), "heldout": len(held)}

    def _select(
        self, ctx: StageContext, usage: Path, training: list[Record], lang: str
    ) -> dict[str, Any]:
        from lingualift.data import read_records
        from lingualift.jobs.common import select_into

        config = self.config
        target = read_records(usage / "target.jsonl")
        budget = min(config.update.budget, len(self.pool))
        report = select_into(
            ctx.out, "compass", target, training, self.pool, budget, fmt="jsonl",
            encoder=self.run.encoder, n_clusters=config.n_clusters, seed=config.seed,
            target_lang=lang, progress=False,
        )  # fmt: skip
        n_replay = replay_count(report["n_selected"], config.update.replay_fraction, len(training))
        replay = replay_sample(training, n_replay, config.seed)
        if replay:
            write_records(replay, ctx.out / "replay.jsonl")
        return {**report, "n_replay": len(replay), "n_training": len(training)}

    def _train(
        self, job: Job, select: Any, usage: Any, parent: AdapterVersion, texts: list[str]
    ) -> Any:
        from lingualift.adapters.data import tokenize_examples
        from lingualift.compass.embedding import EmbeddedSet, embed_texts
        from lingualift.continual.penalty import add_penalty
        from lingualift.jobs.train import (
            TrainConfig,
            read_training_data,
            train_and_store,
            train_settings,
        )

        config, lang = self.config, parent.lang
        replay = select.path / "replay.jsonl"
        path = job.root / "train"
        train_config = TrainConfig(
            lang=lang, model=config.model, data=str(replay) if replay.is_file() else None,
            data_format="text", selection=str(select.path / SELECTION_FILE), train=config.train,
            packing=config.packing, eval_fraction=config.eval_fraction, parent=parent.name,
            out_dir=str(path), store=config.store, promote=False,
        )  # fmt: skip
        data = read_training_data(train_config)
        replay_examples = [ex for ex in data.examples if not ex.id.startswith("selection:")]
        settings = {**train_settings(train_config, data, parent), "update": to_dict(config.update)}

        def stage(ctx: StageContext) -> dict[str, Any]:
            vectors, name = embed_texts(texts, self.run.encoder, config.backend, progress=False)
            reference = Reference.build(
                EmbeddedSet(vectors, name), lang, texts=texts, seed=config.seed,
                encoder_spec=self.run.encoder_spec,
            )  # fmt: skip

            def prepare(trainer: Any) -> dict[str, Any]:
                rows = tokenize_examples(
                    replay_examples, trainer.tokenizer, config.train.max_length
                )
                _, info = add_penalty(
                    trainer, config.update.penalty, config.update.penalty_lambda, rows,
                    config.update.fisher_samples,
                )  # fmt: skip
                return {"penalty": info, "ecda": {"update": job.root.name,
                        "selection": SELECTION_FILE, "n_replay": len(replay_examples),
                        "replay_fraction": config.update.replay_fraction}}  # fmt: skip

            def extra_files(folder: Path) -> None:
                import shutil

                shutil.copy2(select.path / SELECTION_FILE, folder / SELECTION_FILE)
                reference.write(folder / "reference")

            _, result = train_and_store(
                ctx, train_config, data, self.base.fresh(), self.base.tokenizer, self.store,
                parent, self.progress, prepare=prepare, extra_files=extra_files,
            )  # fmt: skip
            return result

        return job.run(
            "train", settings, stage, after=[select, usage], path=path,
            describe=f"next version from {parent.name} ({config.update.penalty} penalty)",
        )  # fmt: skip

    def _gate(
        self, ctx: StageContext, current: AdapterVersion, candidate: AdapterVersion, usage: Path
    ) -> dict[str, Any]:
        from lingualift.adapters.data import Example
        from lingualift.data import read_records

        config = self.config
        old = read_heldout(current.path, current.name, config.old_heldout)
        new = [
            Example(id=r.id, kind="text", text=r.text)
            for r in read_records(usage / "heldout.jsonl")
        ]
        length, batch = config.train.max_length, config.train.batch_size
        scores = {}
        for role, version in (("current", current), ("candidate", candidate)):
            model = self.base.with_adapter(version.path)
            scores[role] = {
                "old": heldout_nll(model, self.base.tokenizer, old, length, batch),
                "new": heldout_nll(model, self.base.tokenizer, new, length, batch),
            }
            del model
        decision = config.gate.decide(scores["current"], scores["candidate"])
        result = {**decision.to_dict(), "current": current.name, "candidate": candidate.name,
                  "n_old": len(old), "n_new": len(new)}  # fmt: skip
        (ctx.out / "gate.json").write_text(json.dumps(result, indent=2), "utf-8")
        return result

    def _decide(
        self,
        entry: dict[str, Any],
        current: AdapterVersion,
        candidate: AdapterVersion,
        selection: dict[str, Any],
        gate: dict[str, Any],
    ) -> dict[str, Any]:
        lang = entry["lang"]
        for past in self.store.history(lang):
            if past.get("update") == entry["id"]:  # decided before a crash
                status = "promoted" if past["action"] == "promote" else "kept"
                return {"status": status, "current": f"{lang}/v{past['current']}"}
        windows = [
            r for r in self.run.rows if r["lang"] == lang and r["window"] in entry["windows"]
        ]
        evidence = {
            "update": entry["id"],
            "candidate": candidate.name,
            "parent": current.name,
            "windows": [
                {
                    "window": r["window"],
                    "n": r["n"],
                    "drift": r["drift"],
                    "pvalues": {k: r[k]["pvalue"] for k in ("js", "mmd", "novelty") if k in r},
                    "statistics": {
                        k: r[k]["statistic"] for k in ("js", "mmd", "novelty") if k in r
                    },
                    "rejected": r["decision"].get("rejected", []),
                    "grew": [{k: g[k] for k in ("cluster", "change")} for g in r["grew"]],
                }
                for r in windows
            ],
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


def run_ecda(
    config: EcdaConfig,
    progress: bool = True,
    encoder: Any = None,
    base: BaseModel | None = None,
    stop: threading.Event | None = None,
) -> EcdaResult:
    """``lingualift ecda`` (see the module docstring).

    ``stop``, once set (the verb sets it on SIGTERM), ends ``follow=true`` at the next
    point between two polls, as Ctrl-C while waiting for the next poll does.
    """
    require(config.input, "Set input=<log file, folder or -> (the production queries).")
    require(config.pool, "Set pool=<file or corpus:...> (the candidates COMPASS selects from).")
    store = AdapterStore(config.store)
    langs = monitored_languages(store, config.langs)
    check_source(config.input, allow_empty=config.follow)
    # Every bad input fails here, before anything is written.
    references = {lang: load_reference(store, lang) for lang in langs}
    for lang in langs:
        current = store.get(lang)
        read_heldout(current.path, current.name, config.old_heldout)
        lineage_data(store, current, config.training_data)
    pool = read_source(config.pool, role="pool")
    require(all(r.lang for r in pool), "Every pool item needs a language (a 'lang' column).")
    fingerprint_ = settings_of(config)
    fingerprint_["langs"] = langs
    if config.input == STDIN:
        fingerprint_["input"] = STDIN
    out = Path(config.out_dir)
    run = MonitorRun(
        out / "monitor", config.input, config, references, fingerprint_,
        overwrite=config.overwrite, progress=progress, encoder=encoder,
        keep_recent=config.usage_windows,
    )  # fmt: skip
    loop = EcdaLoop(config, store, run, pool, base or BaseModel(config.model), progress)
    loop.settle()  # an update a crash interrupted
    polls = 0
    while True:
        run.poll(on_reports=loop.plan, final=not config.follow)
        loop.settle()
        if run.paused:  # an update ran mid-log: go on reading against the new reference
            continue
        if run.report_stale:  # an idle poll of a followed folder redraws nothing
            run.write_report()
        polls += 1
        if not config.follow or (config.max_polls is not None and polls >= config.max_polls):
            break
        try:
            stopped = (stop or threading.Event()).wait(config.poll_seconds)
        except KeyboardInterrupt:  # Ctrl-C between polls: the documented way to stop following
            stopped = True
        if stopped:
            if progress:
                print("[ecda] stopped following the log", file=sys.stderr, flush=True)
            break
    save_config(config, out / "config.yaml")
    updates = [{k: v for k, v in u.items() if k != "texts"} for u in run.extra["updates"]]
    return EcdaResult(out, updates, run.summary())
