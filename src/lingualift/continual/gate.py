"""The gate: promote a candidate version only if it helps the new usage and keeps the old.

Both the candidate and the current version are scored by held-out NLL
(nats per token, the mean over every label token:
:func:`lingualift.adapters.heldout.heldout_nll`, the trainer's eval loss) on
two sets:

- the **old** set: the held-out examples kept with the current version
  (``heldout.jsonl`` in its folder, written when the version was created);
- the **new** set: a held-out split of the recent windows' queries (never
  used for selection).

Rule (``relative=False``, the default, in nats per token)::

    gain   = NLL_current(new) - NLL_candidate(new)     promote only if gain   >= min_gain
    regret = NLL_candidate(old) - NLL_current(old)     and          regret <= tolerance

With ``relative=True`` both differences are divided by the current version's
NLL on that set (``min_gain=0.01`` = 1 % better). Otherwise the current
version is kept and the reason is recorded.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lingualift.adapters.data import HELDOUT_FILE, Example, read_examples, read_examples_file
from lingualift.adapters.heldout import heldout_nll
from lingualift.errors import LingualiftError

__all__ = ["Gate", "GateDecision", "heldout_nll", "read_heldout"]


def read_heldout(
    version_folder: str | Path, name: str, fallback: str | None = None
) -> list[Example]:
    """The old held-out set kept with a version (or ``fallback``), or one clear error."""
    path = Path(fallback) if fallback else Path(version_folder) / HELDOUT_FILE
    if not path.is_file():
        raise LingualiftError(
            f"{name} has no old held-out set ({HELDOUT_FILE} in its folder), so the gate cannot "
            "check forgetting; retrain it with 'lingualift train' (eval_fraction > 0) or set "
            "old_heldout=<file>."
        )
    if fallback:
        return read_examples(str(path))[0]
    return read_examples_file(path)


@dataclasses.dataclass
class GateDecision:
    promote: bool
    reason: str
    metrics: dict[str, Any]
    """``{"old": {current, candidate, change}, "new": {...}}``."""
    rule: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Gate:
    """The promotion rule (see the module docstring)."""

    min_gain: float = 0.0
    """Least improvement of the new set's NLL (nats/token, or a fraction with relative)."""
    tolerance: float = 0.02
    """Most the old set's NLL may get worse (nats/token, or a fraction with relative)."""
    relative: bool = False
    """Compare relative changes (divided by the current version's NLL) instead of nats."""

    def decide(self, current: dict[str, float], candidate: dict[str, float]) -> GateDecision:
        """``current`` and ``candidate`` hold ``old`` and ``new`` NLLs."""
        scale = {k: (current[k] if self.relative else 1.0) for k in ("old", "new")}
        gain = (current["new"] - candidate["new"]) / scale["new"]
        regret = (candidate["old"] - current["old"]) / scale["old"]
        unit = "of the current NLL" if self.relative else "nats/token"
        metrics = {
            "new": {"current": current["new"], "candidate": candidate["new"], "gain": gain},
            "old": {"current": current["old"], "candidate": candidate["old"], "regret": regret},
        }
        problems = []
        if gain < self.min_gain:
            problems.append(f"new-usage gain {gain:.4f} < min_gain {self.min_gain:g} {unit}")
        if regret > self.tolerance:
            problems.append(f"old-set loss {regret:.4f} > tolerance {self.tolerance:g} {unit}")
        reason = (
            "; ".join(problems)
            if problems
            else (
                f"new-usage gain {gain:.4f} >= {self.min_gain:g} and old-set change "
                f"{regret:.4f} <= {self.tolerance:g} {unit}"
            )
        )
        return GateDecision(not problems, reason, metrics, dataclasses.asdict(self))
