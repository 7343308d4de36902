"""The ``ecda`` job: monitor -> select -> update -> gate -> promote or keep, per language.

``run_ecda(EcdaConfig(input=..., langs=[...], pool=...))`` runs
:func:`lingualift.workflows.ecda.ecda_over_log` over a log once, or follows a
log folder (``follow=true``: poll every ``poll_seconds``, at most ``max_polls``
times, until Ctrl-C or SIGTERM), and writes ``config.yaml`` into ``out_dir``:

- the drift monitor (:class:`~lingualift.continual.log_monitor.LogMonitor`,
  ``out_dir/monitor/``) tests windows per language and owns its state;
- the ECDA loop (:class:`~lingualift.continual.loop.EcdaLoop`, ``out_dir/loop.json``)
  plans an update when ``trigger_windows`` consecutive windows of a language
  drift (saved in its own state before the monitor moves past the window),
  with the drifted windows among the last ``usage_windows`` as the new target
  usage;
- each update is five stages of the stage engine under
  ``out_dir/updates/<lang>-w<window>/`` (usage, select, train, gate, decide:
  :class:`~lingualift.workflows.ecda_update.EcdaUpdater`).

A crash anywhere leaves ``current`` and every finished version intact (the
pointer moves only in ``decide``, in one atomic history append); a rerun
finishes the pending update from its last finished stage and then goes on
reading the log where the monitor stopped.
"""

from __future__ import annotations

import threading
from pathlib import Path

from lingualift.config import save_config
from lingualift.embed import Encoder
from lingualift.workflows.base import LoadedBase
from lingualift.workflows.ecda import EcdaConfig, EcdaResult, ecda_over_log

__all__ = ["EcdaConfig", "EcdaResult", "run_ecda"]


def run_ecda(
    config: EcdaConfig,
    progress: bool = True,
    encoder: Encoder | None = None,
    base: LoadedBase | None = None,
    stop: threading.Event | None = None,
) -> EcdaResult:
    """``lingualift ecda`` (see the module docstring).

    ``stop``, once set (the verb sets it on SIGTERM), ends ``follow=true`` at the next
    point between two polls, as Ctrl-C while waiting for the next poll does.
    """
    result = ecda_over_log(config, progress=progress, encoder=encoder, base=base, stop=stop)
    save_config(config, Path(config.out_dir) / "config.yaml")
    return result
