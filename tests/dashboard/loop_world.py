"""A small live loop on disk, made with the loop's own building blocks on a tiny model.

What ``benchmarks/live_loop.py --tiny`` produces with a server and an ``ecda`` process,
without the processes (they take a minute of start-ups): a store with ``sw/v1`` (trained,
held-out split kept, reference profile built), a traffic-log folder of closed segments as the
server writes them (``sw`` queries answered by ``sw/v1``, a few French ones by the base model),
``lingualift ecda`` over it (the change of topic drifts, an update is trained, gated and
promoted to ``sw/v2``), then more segments answered by ``sw/v2`` (as the hot-reloaded server
would) and a second ``ecda`` pass that tests them against v2's reference, and one open
``.partial`` segment that no reader may take.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np

from lingualift.adapters.store import AdapterStore
from lingualift.data import Record, write_records
from lingualift.data.traffic import log_row
from lingualift.testing import save_tiny_causal_lm

TINY = dict(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, initializer_range=0.2)
OLD = "habari ya asubuhi rafiki yangu mpendwa {i}"
NEW = "9{i} + 4{i} = 13{i}; 7{i} * 2 = {i}4{i}"
STEP_S = 0.5
"""Seconds between two queries of the replayed traffic (as fast as the live loop's tiny mode)."""
WINDOW = 30


@dataclasses.dataclass
class LoopWorld:
    root: Path
    model: Path
    store: Path
    traffic: Path
    ecda: Path


def draw(template: str, n: int, seed: int) -> list[str]:
    """``n`` queries of one kind; the numbers in them are random, so windows are exchangeable."""
    numbers = np.random.default_rng(seed).integers(100, 1000, n)
    return [template.format(i=int(i)) for i in numbers]


def write_segment(folder: Path, seq: int, rows: list[dict], closed: bool = True) -> Path:
    """A log segment named as the server names them (closed, or still ``.partial``)."""
    first = dt.datetime.fromisoformat(rows[0]["ts"].replace("Z", "+00:00"))
    name = f"traffic-{first.strftime('%Y%m%dT%H%M%SZ')}-{seq:06d}.jsonl"
    path = folder / (name if closed else name + ".partial")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def traffic(queries: list[str], adapter: str, start: float, tag: str) -> list[dict]:
    """Rows for ``sw`` queries answered by ``adapter``, one every STEP_S seconds from ``start``;
    every fifth request is a French one the base model answers."""
    rows = []
    for i, text in enumerate(queries):
        ts = start + i * STEP_S
        rows.append(log_row(f"{tag}{i}", ts, "sw", text, adapter))
        if i % 5 == 0:
            rows.append(log_row(f"{tag}fr{i}", ts + STEP_S / 2, "fr", f"bonjour {i}", None))
    return rows


def ecda_config(world: LoopWorld):
    from lingualift.continual.gate import Gate
    from lingualift.continual.update import UpdateSettings
    from lingualift.jobs.ecda import EcdaConfig
    from lingualift.training import TrainingArgs

    return EcdaConfig(
        input=str(world.traffic), langs=["sw"], store=str(world.store), model=str(world.model),
        pool=str(world.root / "pool.jsonl"), out_dir=str(world.ecda), window=WINDOW,
        n_permutations=99, n_bootstrap=199, n_clusters=3, cooldown_windows=2,
        update=UpdateSettings(budget=16),
        train=TrainingArgs(max_steps=3, batch_size=4, max_length=48, lr=0.02, save_every=1),
        gate=Gate(min_gain=-1.0, tolerance=1.0),  # permissive: a random tiny model barely moves
    )  # fmt: skip


def build_loop_world(root: Path) -> LoopWorld:
    """The files of a live loop with one promotion (see the module docstring)."""
    import torch

    from lingualift.jobs.ecda import run_ecda
    from lingualift.jobs.monitor import MonitorConfig, run_monitor
    from lingualift.jobs.train import TrainConfig, run_train
    from lingualift.training import TrainingArgs

    torch.set_num_threads(1)
    root.mkdir(parents=True, exist_ok=True)
    world = LoopWorld(root, root / "model", root / "store", root / "traffic", root / "ecda")
    save_tiny_causal_lm(world.model, "llama", **TINY)
    train = write_records(
        [Record(f"t{i}", OLD.format(i=i), "sw") for i in range(40)], root / "train.jsonl"
    )
    usage = write_records([Record(f"u{i}", t, "sw") for i, t in enumerate(draw(OLD, 120, 1))],
                          root / "usage.jsonl")  # fmt: skip
    write_records(
        [Record(f"p{i}", (OLD if i % 2 else NEW).format(i=200 + i), "fr") for i in range(60)],
        root / "pool.jsonl",
    )
    run_train(TrainConfig(
        lang="sw", model=str(world.model), data=str(train), eval_fraction=0.2,
        store=str(world.store), out_dir=str(root / "runs" / "train"),
        train=TrainingArgs(max_steps=2, batch_size=4, max_length=48),
    ))  # fmt: skip
    run_monitor(MonitorConfig(build_reference=str(usage), langs=["sw"], store=str(world.store),
                              encoder=f"lm:{world.model}", n_clusters=3), progress=False)  # fmt: skip

    # Two stable windows and one of the new topic, answered by v1 and ending now (the log's
    # times are real, so the promotion falls inside the traffic chart); ecda promotes v2.
    queries = draw(OLD, 2 * WINDOW, 2) + draw(NEW, WINDOW, 3)
    before = traffic(queries, "sw/v1", time.time() - len(queries) * STEP_S, "a")
    write_segment(world.traffic, 1, before[: len(before) // 2])
    write_segment(world.traffic, 2, before[len(before) // 2 :])
    run_ecda(ecda_config(world), progress=False)
    # After the hot reload v2 answers (from the promotion on, as the server would); the next
    # windows are tested against v2's reference.
    promoted = AdapterStore(world.store).history("sw")[-1]["time"]
    start = dt.datetime.fromisoformat(promoted).timestamp() + 1
    write_segment(world.traffic, 3, traffic(draw(NEW, 2 * WINDOW, 4), "sw/v2", start, "b"))
    run_ecda(ecda_config(world), progress=False)
    open_rows = traffic(draw(NEW, 4, 5), "sw/v2", start + 2 * WINDOW * STEP_S, "c")
    write_segment(world.traffic, 4, open_rows, closed=False)  # still being written
    return world


if __name__ == "__main__":  # python -m tests.dashboard.loop_world <folder>: the files to look at
    import sys

    print(build_loop_world(Path(sys.argv[1])))
