"""COMPASS-ECDA: keep language adapters fresh when production usage drifts.

>>> from lingualift.continual import DriftMonitor, Reference
>>> reference = Reference.load(store.path("sw"))          # <store>/sw/v<N>/reference/
>>> report = DriftMonitor(reference, alpha=0.05).update(window_embeddings, texts=queries)
>>> report.drift, report.decision["rejected"], report.grew[0]["examples"]

* :class:`Reference`: the reference profile kept in each version folder (clusters,
  reference histogram, embedding sample, novelty radius, encoder, language);
* :class:`DriftMonitor`: one window -> :class:`WindowReport` (JS with a bootstrap
  p-value, RBF MMD with a permutation p-value, novel share with a beta-binomial
  p-value, combined by Holm-Bonferroni at ``alpha``; grown and shrunk clusters);
* :class:`StreamMonitor`: routing by language, count or time windows, embedding;
  :func:`read_log` reads traffic logs (segments, files, stdin);
* :class:`LogMonitor`: a log read after its cursor, windowed and tested per language,
  with its own state (``state()`` / ``restore()``, ``state.json``) and drift rows; after a
  promotion it lets the new reference settle on the next windows (``settle_reference``);
* :class:`EcdaLoop`: drifting windows -> planned updates (its own state, ``loop.json``),
  carried out by an updater, talking to the monitor through its public methods;
* :mod:`~lingualift.continual.update` (lineage data, replay), :mod:`~lingualift.continual.penalty`
  (L2-SP, EWC through the training loop's loss hook), :class:`Gate` (promote or keep).

The five-stage update is :class:`lingualift.workflows.ecda_update.EcdaUpdater`; the jobs
are :func:`lingualift.jobs.monitor.run_monitor` (``lingualift monitor``) and
:func:`lingualift.jobs.ecda.run_ecda` (``lingualift ecda``).
"""

from lingualift.continual.gate import Gate, GateDecision, heldout_nll
from lingualift.continual.log_monitor import LogMonitor, MonitorSettings
from lingualift.continual.logs import Problem, Query, read_log
from lingualift.continual.loop import EcdaLoop, LoopSettings, PlannedUpdate, UpdateOutcome
from lingualift.continual.monitor import DriftMonitor, WindowReport
from lingualift.continual.reference import Reference
from lingualift.continual.stats import holm, mmd2_unbiased
from lingualift.continual.stream import StreamMonitor
from lingualift.continual.update import UpdateSettings

__all__ = [
    "DriftMonitor",
    "EcdaLoop",
    "Gate",
    "GateDecision",
    "LogMonitor",
    "LoopSettings",
    "MonitorSettings",
    "PlannedUpdate",
    "Problem",
    "Query",
    "Reference",
    "StreamMonitor",
    "UpdateOutcome",
    "UpdateSettings",
    "WindowReport",
    "heldout_nll",
    "holm",
    "mmd2_unbiased",
    "read_log",
]
