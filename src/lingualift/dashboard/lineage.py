"""What the adapter store says about one language: its versions, their parents, every decision.

:func:`read_lineage` reads a store's ``<lang>/v<N>/card.json`` files and
``<lang>/history.jsonl`` (through :class:`~lingualift.adapters.store.AdapterStore`,
which decides the current version from the history and refuses a damaged one)
into plain dataclasses: a :class:`VersionNode` per version with its parent
(the card's ``parent``, written by ECDA updates and ``train parent=``), and a
:class:`Decision` per history entry (save, promote, rollback, keep) with the
gate's evidence when it has some: gain and regret against ``min_gain`` and
``tolerance``, the reason, and the windows that triggered the update.
Nothing here writes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from lingualift.adapters.store import AdapterStore
from lingualift.errors import LingualiftError

_NAME = re.compile(r"^(?:[^/]+/)?v?(\d+)$")


@dataclasses.dataclass
class VersionNode:
    """One stored version of a language's adapter."""

    version: int
    name: str
    """``sw/v2``."""
    parent: int | None
    """The version it was trained from (None: trained from the base model)."""
    current: bool
    created: str | None
    origin: str
    """How it was made: ``ECDA update sw-w00002``, ``train``, or ``copied in`` (no card)."""
    steps: int | None
    eval_loss: float | None
    problem: str | None
    """Why it cannot be served (missing or damaged files), None when it is whole."""


@dataclasses.dataclass
class GateEvidence:
    """What the gate measured and decided for one ECDA update."""

    update: str | None
    candidate: str | None
    parent: str | None
    gain: float | None
    """NLL improvement on the new usage's held-out split (nats/token, or relative)."""
    regret: float | None
    """NLL change on the old held-out set (positive: worse)."""
    min_gain: float | None
    tolerance: float | None
    relative: bool
    new_nll: dict[str, float]
    """``current`` and ``candidate`` NLL on the new usage."""
    old_nll: dict[str, float]
    """``current`` and ``candidate`` NLL on the old held-out set."""
    windows: list[dict[str, Any]]
    """The windows that triggered the update: ``window``, ``n``, ``pvalues``, ``rejected``,
    ``grew`` (as the loop recorded them)."""
    selection: dict[str, Any]
    """The COMPASS selection's report (sizes, JS before/after, languages, replay)."""

    @property
    def unit(self) -> str:
        return "of the current NLL" if self.relative else "nats/token"


@dataclasses.dataclass
class Decision:
    """One entry of the history: a pointer move (save, promote, rollback) or a gate's keep."""

    action: str
    time: str | None
    version: int | None
    """The version the entry is about (promoted, saved, rolled back to; the kept candidate)."""
    current: int | None
    """The current version after the entry."""
    previous: int | None
    """The current version before it (pointer moves only)."""
    reason: str | None
    evidence: GateEvidence | None
    """The gate's evidence (ECDA decisions only; None for manual promotes and rollbacks)."""


@dataclasses.dataclass
class Lineage:
    """A language's versions and decisions, oldest first."""

    lang: str
    current: int | None
    versions: list[VersionNode]
    decisions: list[Decision]
    problem: str | None = None
    """Why the store's files for this language could not be read (a damaged history)."""

    def node(self, version: int) -> VersionNode | None:
        return next((v for v in self.versions if v.version == version), None)

    @property
    def rollback_target(self) -> int | None:
        """The version a rollback would return to, None when there is none.

        Shown on the rollback button; the store's own rule (pointer moves push, rollbacks
        pop, deleted or damaged versions are skipped) is replayed here because the store
        keeps it private, and the store decides when the action runs.
        """
        stack: list[int] = []
        for decision in self.decisions:
            if decision.action not in ("save", "promote", "rollback"):
                continue
            if decision.action == "rollback" and stack:
                stack.pop()
            if decision.current is not None and (not stack or stack[-1] != decision.current):
                stack.append(decision.current)
        for candidate in reversed(stack[:-1]):
            node = self.node(candidate)
            if candidate != self.current and node is not None and node.problem is None:
                return candidate
        return None


def version_number(value: Any) -> int | None:
    """3, '3', 'v3' or 'sw/v3' -> 3; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    match = _NAME.match(str(value).strip()) if value is not None else None
    return int(match.group(1)) if match else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def gate_evidence(entry: dict[str, Any]) -> GateEvidence | None:
    """The gate's evidence in a history entry (None when the entry carries none)."""
    metrics = entry.get("metrics")
    if not isinstance(metrics, dict) and "windows" not in entry:
        return None
    metrics = metrics if isinstance(metrics, dict) else {}
    new = metrics.get("new") if isinstance(metrics.get("new"), dict) else {}
    old = metrics.get("old") if isinstance(metrics.get("old"), dict) else {}
    rule = entry.get("gate") if isinstance(entry.get("gate"), dict) else {}
    windows = entry.get("windows") if isinstance(entry.get("windows"), list) else []
    selection = entry.get("selection") if isinstance(entry.get("selection"), dict) else {}
    return GateEvidence(
        update=entry.get("update"),
        candidate=entry.get("candidate"),
        parent=entry.get("parent"),
        gain=_number(new.get("gain")),
        regret=_number(old.get("regret")),
        min_gain=_number(rule.get("min_gain")),
        tolerance=_number(rule.get("tolerance")),
        relative=bool(rule.get("relative")),
        new_nll={
            k: float(new[k]) for k in ("current", "candidate") if _number(new.get(k)) is not None
        },
        old_nll={
            k: float(old[k]) for k in ("current", "candidate") if _number(old.get(k)) is not None
        },
        windows=[w for w in windows if isinstance(w, dict)],
        selection=selection,
    )


def decision_of(entry: dict[str, Any]) -> Decision:
    """A :class:`Decision` from one history entry (fields the entry lacks are None)."""
    action = str(entry.get("action") or "?")
    version = version_number(entry.get("version"))
    if action == "keep":
        version = version_number(entry.get("candidate"))
    reason = entry.get("reason")
    if action == "rollback" and reason is None and entry.get("from") is not None:
        reason = f"rolled back from v{entry['from']}"
    return Decision(
        action=action,
        time=entry.get("time"),
        version=version,
        current=version_number(entry.get("current")),
        previous=version_number(entry.get("previous")),
        reason=str(reason) if reason is not None else None,
        evidence=gate_evidence(entry),
    )


def _node(store: AdapterStore, version: Any, parents: dict[int, int]) -> VersionNode:
    card = version.card or {}
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    ecda = card.get("ecda") if isinstance(card.get("ecda"), dict) else {}
    if ecda.get("update"):
        origin = f"ECDA update {ecda['update']}"
    elif card:
        origin = "train"
    else:
        origin = "copied in (no card.json)"
    parent = version_number(card.get("parent"))
    return VersionNode(
        version=version.version,
        name=version.name,
        parent=parent if parent is not None else parents.get(version.version),
        current=version.current,
        created=card.get("created"),
        origin=origin,
        steps=metrics.get("steps") if isinstance(metrics.get("steps"), int) else None,
        eval_loss=_number(metrics.get("eval_loss")),
        problem=version.problem,
    )


def read_lineage(store: AdapterStore, lang: str) -> Lineage:
    """Every version and decision of ``lang`` in ``store`` (see the module docstring).

    A damaged history does not raise: the lineage says why in ``problem`` and shows what
    the version folders hold, so one bad file does not take the whole page down.
    """
    try:
        entries = store.history(lang)
        current = store.current_version(lang)
        stored = store.list(lang)
    except (LingualiftError, OSError) as exc:
        return Lineage(lang, None, [], [], problem=str(exc))
    decisions = [decision_of(e) for e in entries if isinstance(e, dict)]
    # A card without a parent (a version trained before cards kept one) still has one when a
    # gate decision named it: the candidate's parent.
    parents = {
        d.version: version_number(d.evidence.parent)
        for d in decisions
        if d.evidence is not None and d.version is not None and d.evidence.parent
    }
    nodes = [_node(store, v, {k: p for k, p in parents.items() if p is not None}) for v in stored]
    return Lineage(lang, current, nodes, decisions)


def parse_time(value: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 time (naive: UTC); None when unreadable."""
    if not isinstance(value, str):
        return None
    try:
        stamp = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()
