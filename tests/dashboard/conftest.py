"""The loop's files written by hand in the formats the store, the server and the monitor write.

No model: the store's versions are minimal PEFT folders, the history entries carry the evidence
an ECDA update records, the drift rows have the monitor's fields. The browser test builds the
real thing on a tiny model (``loop_world.py``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lingualift.adapters.store import AdapterStore
from lingualift.continual.stats import holm
from lingualift.data.traffic import log_row
from tests.continual.helpers import fake_peft

T0 = 1_767_261_600.0  # 2026-01-01T10:00:00Z


@dataclasses.dataclass
class LoopFiles:
    store: Path
    traffic: Path
    ecda: Path


def evidence(update: str, candidate: str, parent: str, gain: float, regret: float) -> dict:
    """What an ECDA update's decision records in the history."""
    return {
        "update": update,
        "candidate": candidate,
        "parent": parent,
        "windows": [
            {
                "window": 2,
                "n": 30,
                "drift": True,
                "pvalues": {"js": 0.005, "mmd": 0.01, "novelty": 0.0},
                "statistics": {"js": 0.17, "mmd": 0.70, "novelty": 1.0},
                "rejected": ["novelty", "js", "mmd"],
                "grew": [{"cluster": 0, "change": 0.275}],
            }
        ],
        "selection": {
            "method": "compass",
            "n_selected": 16,
            "n_pool": 60,
            "js_before": 0.78,
            "js_after": 0.39,
            "n_replay": 16,
        },
        "metrics": {
            "new": {"current": 5.72, "candidate": 5.72 - gain, "gain": gain},
            "old": {"current": 6.12, "candidate": 6.12 + regret, "regret": regret},
        },
        "gate": {"min_gain": 0.0, "tolerance": 0.02, "relative": False},
        "reason": f"new-usage gain {gain:.4f} and old-set change {regret:.4f}",
    }


def drift_row(window: int, reference: str, pvalues: dict, examples=("q",)) -> dict:
    """A row of drift.jsonl as the monitor writes it."""
    decision = holm(pvalues, 0.05)
    return {
        "lang": "sw", "window": window, "reference": reference,
        "start": f"2026-01-01T10:0{window}:00+00:00", "end": f"2026-01-01T10:0{window}:59+00:00",
        "first": f"seg.jsonl:{30 * window + 1}", "last": f"seg.jsonl:{30 * window + 30}", "n": 30,
        "js": {"statistic": 0.02 + window / 100, "pvalue": pvalues["js"], "threshold": 0.07,
               "n_bootstrap": 199},
        "mmd": {"statistic": 0.001, "pvalue": pvalues["mmd"], "threshold": 0.02,
                "bandwidth": 0.0075, "n_permutations": 99},
        "novelty": {"statistic": 0.0, "pvalue": pvalues["novelty"], "threshold": 0.2,
                    "n_novel": 0, "radius": 0.0037},
        "decision": decision,
        "drift": decision["drift"],
        "grew": [{"cluster": 1, "window_share": 0.5, "reference_share": 0.3, "change": 0.2,
                  "examples": list(examples)}],
        "shrank": [],
    }  # fmt: skip


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def make_store(root: Path) -> AdapterStore:
    """sw: v1 (train), v2 promoted by a gate, v3 kept out by a gate; hi: v1 only."""
    store = AdapterStore(root)
    store.save("sw", writer=fake_peft, card={"metrics": {"steps": 16, "eval_loss": 4.9}})
    store.save("sw", writer=fake_peft, card={"parent": "sw/v1", "ecda": {"update": "sw-w00002"},
                                             "metrics": {"steps": 10}}, promote=False)  # fmt: skip
    store.promote("sw", 2, evidence=evidence("sw-w00002", "sw/v2", "sw/v1", 0.0081, 0.004))
    store.save("sw", writer=fake_peft, card={"parent": "sw/v2", "ecda": {"update": "sw-w00005"}},
               promote=False)  # fmt: skip
    store.record("sw", {"action": "keep", **evidence("sw-w00005", "sw/v3", "sw/v2", -0.01, 0.05)})
    store.save("hi", writer=fake_peft, card={})
    return store


@pytest.fixture
def loop_files(tmp_path) -> LoopFiles:
    """A store, a traffic-log folder (two closed segments, one open) and an ECDA out_dir."""
    make_store(tmp_path / "store")
    traffic = tmp_path / "traffic"
    first = [log_row(f"a{i}", T0 + 10 * i, "sw", f"habari {i}", "sw/v1") for i in range(6)]
    first += [log_row(f"f{i}", T0 + 10 * i + 1, "fr", f"bonjour {i}", None) for i in range(2)]
    second = [log_row(f"b{i}", T0 + 60 + 10 * i, "sw", f"9{i} + 4", "sw/v2") for i in range(4)]
    write_jsonl(traffic / "traffic-20260101T100000Z-000001.jsonl", first)
    write_jsonl(traffic / "traffic-20260101T100100Z-000002.jsonl", second)
    write_jsonl(traffic / "traffic-20260101T100200Z-000003.jsonl.partial", second)
    ecda = tmp_path / "ecda"
    rows = [
        drift_row(0, "sw/v1", {"js": 0.4, "mmd": 0.5, "novelty": 1.0}),
        drift_row(1, "sw/v1", {"js": 0.3, "mmd": 0.2, "novelty": 1.0}),
        drift_row(2, "sw/v1", {"js": 0.005, "mmd": 0.01, "novelty": 0.0},
                  examples=("9 + 4 = 13", "<script>alert(1)</script>")),
        drift_row(3, "sw/v2", {"js": 0.5, "mmd": 0.6, "novelty": 0.2}),
    ]  # fmt: skip
    write_jsonl(ecda / "monitor" / "drift.jsonl", rows)
    (ecda / "monitor" / "state.json").write_text(json.dumps(
        {"format": "lingualift-monitor-state/1", "settings": {"alpha": 0.05}, "n_windows": 4}
    ))  # fmt: skip
    (ecda / "monitor" / "summary.json").write_text(json.dumps(
        {"languages": {"sw": {"windows": 4, "drift": 1, "queries": 120, "reference": "sw/v2"}},
         "notes": []}
    ))  # fmt: skip
    (ecda / "loop.json").write_text(json.dumps({
        "format": "lingualift-ecda-loop/1", "settings": {"alpha": 0.05},
        "updates": [{"id": "sw-w00002", "lang": "sw", "window": 2, "windows": [2],
                     "parent": "sw/v1", "texts": [], "evidence": [], "status": "promoted",
                     "candidate": "sw/v2", "current": "sw/v2", "reason": "gain"}],
        "streak": {"sw": 0}, "cooldown": {}, "next_window": {"sw": 4},
    }))  # fmt: skip
    return LoopFiles(tmp_path / "store", traffic, ecda)
