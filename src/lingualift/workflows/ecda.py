"""COMPASS-ECDA over a traffic log: the monitor, the loop and the updates, composed.

:func:`ecda_over_log` checks every input first (log, store, references, old
held-out sets, lineage data, pool: a bad one fails in one sentence before
anything is written), then composes

- a :class:`~lingualift.continual.log_monitor.LogMonitor` in ``<out_dir>/monitor``
  (its own state: cursor, windows, drift rows),
- an :class:`~lingualift.continual.loop.EcdaLoop` with its own state in
  ``<out_dir>/loop.json`` (planned updates, streaks, cooldowns),
- an :class:`~lingualift.workflows.ecda_update.EcdaUpdater` whose updates are
  five-stage jobs under ``<out_dir>/updates/<lang>-w<window>/``,

and runs the loop once over the log or follows it. Each tested window and each
update (planned, promoted or kept, with the gate's scores) also goes to the
experiment trackers of ``report_to`` (``<out_dir>/logs/``) and, with
``metrics_port``, to a Prometheus endpoint
(:class:`~lingualift.continual.metrics.LoopReporter`). ``lingualift ecda``
(:mod:`lingualift.jobs.ecda`) and the ``ecda_drift`` experiment both run it.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

from lingualift.adapters.store import AdapterStore
from lingualift.config import bookkeeping, settings_of
from lingualift.continual.deployed import load_reference, monitored_languages
from lingualift.continual.gate import Gate, read_heldout
from lingualift.continual.log_monitor import LogMonitor, MonitorSettings
from lingualift.continual.logs import check_source
from lingualift.continual.loop import LOOP_FILE, EcdaLoop, LoopSettings
from lingualift.continual.metrics import LoopReporter
from lingualift.continual.reference import SMALL_REFERENCE
from lingualift.continual.update import UpdateSettings, lineage_data
from lingualift.continual.watch import WatchSettings
from lingualift.data.columns import Columns, merge_columns
from lingualift.data.sources import read_source
from lingualift.embed import Encoder
from lingualift.errors import require
from lingualift.placement import ModelSettings
from lingualift.planning import check_training_args
from lingualift.training import LoraSettings, TrainingArgs
from lingualift.workflows.base import LoadedBase
from lingualift.workflows.ecda_update import EcdaUpdater, UpdateRecipe


def _update_training() -> TrainingArgs:
    return TrainingArgs(lr=1e-4, max_steps=20, batch_size=8, max_length=128, save_every=5)


@dataclasses.dataclass
class EcdaConfig(WatchSettings, MonitorSettings, ModelSettings):
    """Settings of ``lingualift ecda`` (the adapters' base model with its precision and
    placement: model, dtype, device, attn_implementation, quantization, trust_remote_code)."""

    input: str = ""
    """Production queries: a traffic-log folder or file, any data file or folder the one reader
    takes (CSV/TSV, Parquet, JSON arrays, compressed, save_to_disk, hf:<dataset>; docs/data.md),
    or '-' (stdin); columns maps its columns."""
    langs: list[str] = dataclasses.field(default_factory=list)
    """Languages to keep fresh; empty: every language of the store with a current version."""
    store: str | None = None
    """Adapter store root (default $LINGUALIFT_HOME/adapters)."""
    pool: str = ""
    """Candidate pool for COMPASS (a data file with a language column, or corpus:...), read with
    columns, overridden by pool_fields."""
    pool_fields: Columns = bookkeeping(default_factory=Columns)
    """Columns of the pool file where they differ from columns (text, id, lang, default_lang);
    the pool is fingerprinted by its content."""
    # Read by content where used (the gate's and the lineage's fingerprints cover them).
    training_data: str | None = bookkeeping(None)
    """The first version's training data, when its card names data that is not readable here."""
    old_heldout: str | None = bookkeeping(None)
    """Old held-out set for the gate when the current version keeps none (heldout.jsonl)."""
    out_dir: str = bookkeeping("runs/ecda")
    """Output folder: monitor/ (drift.jsonl, drift.png, state), loop.json (the loop's
    state), updates/<lang>-w<N>/ and logs/ (the trackers' windows and decisions; each
    update's training curves follow train.report_to in its own folder)."""
    trigger_windows: int = 1
    """Consecutive drifting windows of a language that start an update."""
    usage_windows: int = 3
    """Recent windows kept; the drifted ones among them become the new target usage."""
    cooldown_windows: int = 2
    """Windows to wait after a kept (not promoted) update before another can start."""
    settle_rows: int = SMALL_REFERENCE
    """After a promotion, the new version's reference is built from this many queries of the
    next windows, which are not tested until then (800: below it a reference's own noise raised
    false alarms, docs/continual.md); 0: test at once against the update's provisional
    reference (built from the drifted windows that triggered it)."""
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
        # Both bases check their own keys (neither calls the other).
        MonitorSettings.__post_init__(self)
        ModelSettings.__post_init__(self)
        self.loop_settings()  # trigger, usage and cooldown windows are checked there
        require(0 < self.heldout_fraction < 1, "heldout_fraction must be in (0, 1).")
        require(0 < self.eval_fraction < 1, "eval_fraction must be in (0, 1) (the gate needs it).")

    def loop_settings(self) -> LoopSettings:
        return LoopSettings(
            self.trigger_windows, self.usage_windows, self.cooldown_windows, self.settle_rows
        )

    def recipe(self) -> UpdateRecipe:
        return UpdateRecipe(
            model=self.model_settings(), store=self.store, update=self.update, train=self.train,
            gate=self.gate, packing=self.packing, eval_fraction=self.eval_fraction,
            heldout_fraction=self.heldout_fraction, n_clusters=self.n_clusters,
            training_data=self.training_data, old_heldout=self.old_heldout,
            backend=self.backend, seed=self.seed,
        )  # fmt: skip


@dataclasses.dataclass
class EcdaResult:
    out_dir: Path
    updates: list[dict[str, Any]]
    """Every update of this folder: id, language, windows, status (promoted/kept), versions."""
    summary: dict[str, Any]


def ecda_over_log(
    config: EcdaConfig,
    progress: bool = True,
    encoder: Encoder | None = None,
    base: LoadedBase | None = None,
    stop: threading.Event | None = None,
) -> EcdaResult:
    """Check the inputs, then run (or resume) the loop over ``config.input`` (module docstring).

    ``encoder`` overrides the references' encoder spec; ``base`` shares an already
    loaded base model; ``stop``, once set, ends ``follow=true`` at the next point
    between two polls.
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
    pool_columns = merge_columns(config.columns, config.pool_fields, "pool_fields")
    pool = read_source(config.pool, pool_columns, role="pool", option="pool_fields")
    require(
        all(r.lang for r in pool),
        f"Every pool item needs a language; add a {pool_columns.lang!r} column, map one with "
        "pool_fields.lang=<column> or set pool_fields.default_lang=<code>.",
    )
    recipe = config.recipe()
    if base is None:  # does an update fit the device? Refused here, before anything is written
        recipe.train = check_training_args("train", config, config.train, LoraSettings())
    fingerprint = config.run_fingerprint(langs, config.input)
    out = Path(config.out_dir)
    reporter = LoopReporter(
        config, out / "logs", "ecda", config=settings_of(config), store=store, progress=progress
    )
    monitor = LogMonitor.open(
        out / "monitor", config.input, references, config, fingerprint,
        overwrite=config.overwrite, progress=progress, encoder=encoder,
        keep_recent=config.usage_windows, on_window=reporter.window,
    )  # fmt: skip
    loop = EcdaLoop.open(
        out / LOOP_FILE, config.loop_settings(), store, fingerprint,
        overwrite=config.overwrite, progress=progress,
    )  # fmt: skip
    updater = EcdaUpdater(
        out / "updates", recipe, store, pool, base or LoadedBase(config),
        monitor.encoder, monitor.encoder_spec, overwrite=config.overwrite, progress=progress,
    )  # fmt: skip
    with reporter.start(monitor, loop):
        loop.run(
            monitor, reporter.observe(updater), follow=config.follow,
            poll_seconds=config.poll_seconds, max_polls=config.max_polls, stop=stop,
        )  # fmt: skip
    return EcdaResult(out, loop.updates, monitor.summary())
