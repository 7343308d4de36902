"""The loop on one page: ``lingualift dashboard``, a local web app over the loop's own files.

It reads, live (every page load), the three places the ECDA loop keeps its
state, and shows per language what an operator needs to see in one place:

- :mod:`~lingualift.dashboard.lineage`: the adapter store's versions, their
  parents and every decision in ``history.jsonl`` with the gate's evidence;
- :mod:`~lingualift.dashboard.traffic`: requests per language and adapter over
  time, from the traffic log's closed segments;
- :mod:`~lingualift.dashboard.windows`: every monitored window's statistics
  against their thresholds and Holm levels, the clusters that grew and their
  example queries, and the ECDA loop's updates;
- :mod:`~lingualift.dashboard.views`: the three gathered into plain dataclasses
  (:class:`Overview`, testable without a browser);
- :mod:`~lingualift.dashboard.svg`: the charts, as server-side SVG (no CDN, no
  JavaScript library);
- :mod:`~lingualift.dashboard.app` (FastAPI + a Jinja2 template) and
  :mod:`~lingualift.dashboard.actions`: rollback, only with ``allow_actions=true``
  and an API key, carried out by the store and logged;
- :mod:`~lingualift.dashboard.config` and :mod:`~lingualift.dashboard.server`:
  the verb's config and the running server.

FastAPI and uvicorn come with the ``dashboard`` extra (``pip install
'lingualift[dashboard]'``); the data modules need neither.
"""

from lingualift.dashboard.config import DashboardConfig
from lingualift.dashboard.lineage import Decision, GateEvidence, Lineage, VersionNode, read_lineage
from lingualift.dashboard.traffic import TrafficReader, TrafficSeries
from lingualift.dashboard.views import LanguageView, LoopReader, LoopSources, Overview
from lingualift.dashboard.windows import MonitorView, TestStat, WindowStat, read_monitor

__all__ = [
    "DashboardConfig",
    "Decision",
    "GateEvidence",
    "LanguageView",
    "Lineage",
    "LoopReader",
    "LoopSources",
    "MonitorView",
    "Overview",
    "TestStat",
    "TrafficReader",
    "TrafficSeries",
    "VersionNode",
    "WindowStat",
    "read_lineage",
    "read_monitor",
]
