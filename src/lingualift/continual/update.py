"""What a continual update trains on: the new target usage, the lineage's data, a replay sample.

On drift the recent windows become the new target usage ``E_t``. COMPASS then
selects from the pool against ``D_tr``: the data of the adapter's whole
lineage, i.e. the training data of the first version (read back from its
card: a data file or a ``corpus:`` spec, with the seed it was drawn with) plus
the selection every later version was trained on (kept as
``selection.jsonl`` in each ECDA version's folder). When a card names data
that is no longer readable, ``training_data`` (from the ECDA config) stands
in for the first version's data.

The next version trains on the new selection plus a replay sample of ``D_tr``:
``replay_fraction`` is the share of replayed examples in the update's training
mix (0.5: as many replayed as new ones). Two options can make an update help
the target language more:

- ``usage_as_training`` (off by default: it trains on user text): the drifted
  windows' queries themselves join the new examples, as target-language text,
  minus the gate's held-out split (which is never trained on); they are kept
  as ``usage.jsonl`` in the version folder and so join the lineage's data;
- ``target_language_first`` / ``target_language_boost``: within each cluster,
  COMPASS ranks pool items in the target language before the others, or raises
  their score by a factor (:class:`~lingualift.compass.sampler.GapSampler`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lingualift.adapters.store import AdapterStore, AdapterVersion
from lingualift.data import Record, read_records
from lingualift.data.sources import is_corpus_spec, read_source
from lingualift.errors import LingualiftError, require

SELECTION_FILE = "selection.jsonl"
USAGE_FILE = "usage.jsonl"
"""The drifted queries an update trained on (``usage_as_training``), kept in its version folder."""


@dataclasses.dataclass
class UpdateSettings:
    """How an update selects and trains (the ECDA config's update keys)."""

    budget: int = 200
    """Pool items COMPASS selects for the new usage."""
    replay_fraction: float = 0.5
    """Share of the update's training examples replayed from the lineage's data."""
    penalty: str = "l2sp"
    """Keep the weights near the current version: l2sp, ewc (Fisher-weighted) or none."""
    penalty_lambda: float = 1.0
    """Weight of the penalty (EWC's Fisher is mean-normalised, so the scales agree)."""
    fisher_samples: int = 32
    """Replay examples the EWC Fisher is estimated on."""
    usage_as_training: bool = False
    """Also train on the drifted windows' queries (as target-language text), minus the gate's
    held-out split. Off by default: it trains on user text, and keeps it in the version folder
    (usage.jsonl); turn it on only where your users' queries may be trained on."""
    target_language_first: bool = False
    """COMPASS ranks the pool's target-language items before every other language within each
    cluster (the quotas stay plain COMPASS's). Needs target-language items in the pool."""
    target_language_boost: float = 1.0
    """Or raises their ranking score within each cluster by this factor (1: plain COMPASS)."""

    def __post_init__(self) -> None:
        require(self.budget >= 1, f"budget must be at least 1, got {self.budget}.")
        require(
            0 <= self.replay_fraction < 1,
            f"replay_fraction must be in [0, 1), got {self.replay_fraction}.",
        )
        require(
            self.penalty in ("l2sp", "ewc", "none"),
            f"penalty must be l2sp, ewc or none; got {self.penalty!r}.",
        )
        require(self.penalty_lambda >= 0, "penalty_lambda must not be negative.")
        require(self.fisher_samples >= 1, "fisher_samples must be at least 1.")
        require(
            self.target_language_boost > 0,
            f"target_language_boost must be positive (1: off); got {self.target_language_boost}.",
        )


def lineage(store: AdapterStore, version: AdapterVersion) -> list[AdapterVersion]:
    """``version`` and its parents, oldest first (parents named by the cards)."""
    chain = [version]
    seen = {version.name}
    while parent := chain[-1].card.get("parent"):
        lang, _, number = str(parent).partition("/v")
        require(parent not in seen, f"The cards of {version.lang} name a parent cycle at {parent}.")
        seen.add(parent)
        chain.append(store.get(lang, number))
    return chain[::-1]


def _card_data(version: AdapterVersion, fallback: str | None) -> list[Record]:
    """The data a version's card says it was trained on (first version of a lineage)."""
    config = version.card.get("config") or {}
    seed = int((config.get("train") or {}).get("seed", 0))
    records: list[Record] = []
    for item in version.card.get("data") or []:
        path = str(item.get("path", ""))
        if item.get("role") == "selection" and Path(path).is_file():
            records.extend(read_records(path))
        elif is_corpus_spec(path):
            records.extend(read_source(path, seed=seed, role="training data"))
        elif item.get("role") == "train" and Path(path).is_file():
            records.extend(read_source(path, role="training data", allow_empty=True))
        elif item.get("role") == "train":
            if fallback is None:
                raise LingualiftError(
                    f"{version.name} was trained on {path}, which is not readable here; set "
                    "training_data=<file> to the data it was trained on."
                )
            return read_source(fallback, role="training data")
    if not records and fallback is not None:
        return read_source(fallback, role="training data")
    return records


def lineage_data(
    store: AdapterStore, version: AdapterVersion, training_data: str | None = None
) -> list[Record]:
    """``D_tr`` of the next update: the first version's data plus every later selection (and
    the drifted queries a later version trained on, with ``usage_as_training``)."""
    chain = lineage(store, version)
    if any(v.card.get("method") == "shifcon" for v in chain):
        raise LingualiftError(
            f"{version.name} is a ShifCon adapter (it needs the shift at inference), which an "
            "ECDA update and its gate, plain LoRA, cannot continue; make a LoRA version current "
            "('lingualift train' or 'lingualift quickstart') to keep it fresh with ECDA."
        )
    records = _card_data(chain[0], training_data)
    for later in chain[1:]:
        for name in (SELECTION_FILE, USAGE_FILE):
            if (later.path / name).is_file():
                records.extend(read_records(later.path / name))
    require(
        records,
        f"No training data found for {version.name}'s lineage; set training_data=<file>.",
    )
    unique: dict[str, Record] = {}
    for record in records:
        unique.setdefault(f"{record.id}\x1f{record.text}", record)
    return list(unique.values())


def replay_count(n_new: int, fraction: float, available: int) -> int:
    """Replayed examples so that they are ``fraction`` of the mix with ``n_new`` new ones
    (the selection, plus the drifted queries with ``usage_as_training``)."""
    if fraction <= 0:
        return 0
    return min(available, round(fraction * n_new / (1 - fraction)))


def replay_sample(records: Sequence[Record], n: int, seed: int) -> list[Record]:
    """``n`` records drawn without replacement with ``seed``, in their original order."""
    if n <= 0:
        return []
    rows = np.sort(np.random.default_rng(seed).choice(len(records), n, replace=False))
    return [records[i] for i in rows]


def split_usage(
    texts: Sequence[str], heldout_fraction: float, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Target usage for COMPASS and the gate's new held-out set, split by a hash of each text."""
    unique = list(dict.fromkeys(t for t in texts if t and t.strip()))
    ranked = sorted(unique, key=lambda t: hashlib.sha1(f"{seed}\x1f{t}".encode()).hexdigest())
    n_held = max(1, round(heldout_fraction * len(unique))) if heldout_fraction > 0 else 0
    held = set(ranked[:n_held])
    return [t for t in unique if t not in held], [t for t in unique if t in held]


def usage_records(texts: Sequence[str], lang: str, prefix: str) -> list[Record]:
    return [Record(id=f"{prefix}{i}", text=t, lang=lang) for i, t in enumerate(texts)]


def summary(records: Sequence[Record]) -> dict[str, Any]:
    from lingualift.data import fingerprint

    return {"rows": len(records), "fingerprint": fingerprint(list(records))}
