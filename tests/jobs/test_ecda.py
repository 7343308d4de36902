"""``lingualift ecda`` end to end on a tiny model: drift -> select -> update -> gate -> promote."""

from __future__ import annotations

import json
import os
import signal
from types import SimpleNamespace

import pytest

from lingualift.adapters.store import AdapterStore
from lingualift.cli import main
from lingualift.continual.gate import Gate
from lingualift.continual.update import UpdateSettings
from lingualift.data import Record, write_records
from lingualift.jobs.ecda import EcdaConfig, run_ecda
from lingualift.jobs.monitor import MonitorConfig, run_monitor
from lingualift.jobs.train import TrainConfig, run_train
from lingualift.testing import save_tiny_causal_lm
from lingualift.training import TrainingArgs
from tests.adapters.conftest import TINY
from tests.continual.helpers import log_rows, write_log

OLD = "habari ya asubuhi rafiki yangu mpendwa {i}"
NEW = "9{i} + 4{i} = 13{i}; 7{i} * 2 = {i}4{i}"


def draw(template, n, seed):
    """``n`` queries of one kind; the numbers in them are random, so windows are exchangeable."""
    import numpy as np

    numbers = np.random.default_rng(seed).integers(100, 1000, n)
    return [template.format(i=int(i)) for i in numbers]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny model, a store with sw/v1 (trained, held-out set kept, reference built), a pool."""
    root = tmp_path_factory.mktemp("ecda")
    model = save_tiny_causal_lm(root / "model", "llama", **TINY)
    encoder = f"lm:{model}"
    train = write_records(
        [Record(f"t{i}", OLD.format(i=i), "sw") for i in range(40)], root / "train.jsonl"
    )
    usage = write_records([Record(f"u{i}", t, "sw") for i, t in enumerate(draw(OLD, 120, 1))],
                          root / "usage.jsonl")  # fmt: skip
    pool = write_records(
        [Record(f"p{i}", (OLD if i % 2 else NEW).format(i=200 + i), "fr") for i in range(60)],
        root / "pool.jsonl",
    )
    store = root / "store"
    import torch

    torch.set_num_threads(1)
    run_train(TrainConfig(
        lang="sw", model=str(model), data=str(train), eval_fraction=0.2, store=str(store),
        out_dir=str(root / "runs" / "train"),
        train=TrainingArgs(max_steps=2, batch_size=4, max_length=48),
    ))  # fmt: skip
    run_monitor(MonitorConfig(build_reference=str(usage), langs=["sw"], store=str(store),
                              encoder=encoder, n_clusters=3), progress=False)  # fmt: skip
    stable, drifted = draw(OLD, 60, 2), draw(NEW, 90, 3)
    log = write_log(root / "logs" / "seg-0001.jsonl", log_rows(stable + drifted))
    return {"root": root, "model": model, "encoder": encoder, "store": store, "pool": pool,
            "log": log, "train": train}  # fmt: skip


def args(world, tmp_path, **extra):
    settings = {
        "input": str(world["log"]), "langs": "[sw]", "store": str(tmp_path / "store"),
        "model": str(world["model"]), "pool": str(world["pool"]), "out_dir": str(tmp_path / "out"),
        "window": 30, "n_permutations": 99, "n_bootstrap": 199, "update.budget": 16,
        "train.max_steps": 3, "train.batch_size": 4, "train.max_length": 48, "train.lr": 0.02,
        "train.save_every": 1, "gate.tolerance": 1.0, "n_clusters": 3, **extra,
    }  # fmt: skip
    return ["ecda", *[f"{k}={v}" for k, v in settings.items()]]


def fresh_store(world, tmp_path):
    import shutil

    shutil.copytree(world["store"], tmp_path / "store")
    return AdapterStore(tmp_path / "store")


def test_ecda_promotes_v2_and_records_the_decision(world, tmp_path, capsys):
    store = fresh_store(world, tmp_path)
    assert main(args(world, tmp_path)) == 0
    out = capsys.readouterr().out
    assert "promoted" in out and store.current_version("sw") == 2
    assert "current reference sw/v2 (settling: 60 of 800 queries)" in out
    rows = [json.loads(x) for x in (tmp_path / "out/monitor/drift.jsonl").read_text().splitlines()]
    assert [r["drift"] for r in rows[:2]] == [False, False] and rows[2]["drift"]
    last = store.history("sw")[-1]
    assert last["action"] == "promote" and last["version"] == 2 and last["previous"] == 1
    assert last["update"] == "sw-w00002" and last["windows"][0]["window"] == 2
    assert last["metrics"]["new"]["gain"] >= 0 and "pvalues" in last["windows"][0]
    assert last["selection"]["n_selected"] == 16 and last["selection"]["n_replay"] > 0
    card = store.card("sw", 2)
    assert card["parent"] == "sw/v1" and card["penalty"] == {"kind": "l2sp", "lambda": 1.0}
    v2 = store.path("sw", 2)
    for name in ("reference/reference.json", "selection.jsonl", "heldout.jsonl"):
        assert (v2 / name).is_file(), name
    # Windows after the promotion are held while v2's reference settles; a rerun adds nothing.
    assert all(r["reference"] == "sw/v2" and r["decision"]["held"] for r in rows[3:])
    assert "settling the reference of sw/v2: 60 of 800 queries" in rows[-1]["decision"]["skipped"]
    history = store.history("sw")
    assert main(args(world, tmp_path)) == 0
    assert store.history("sw") == history and store.versions("sw") == [1, 2]
    # Rollback stays one command.
    assert main(["adapters", "--store", str(tmp_path / "store"), "rollback", "sw"]) == 0
    assert store.current_version("sw") == 1


def test_usage_as_training_trains_on_the_drifted_queries_but_never_the_gates_split(world, tmp_path):
    """update.usage_as_training: the drifted queries (minus the gate's held-out split) join the
    update's training mix, stay in the version folder and join the lineage's data; the windows
    after the promotion are held while v2's reference settles."""
    from lingualift.continual.update import lineage_data

    store = fresh_store(world, tmp_path)
    assert main(args(world, tmp_path, **{"update.usage_as_training": "true"})) == 0
    assert store.current_version("sw") == 2
    update = tmp_path / "out/updates/sw-w00002"
    read = lambda path: [json.loads(x)["text"] for x in path.read_text().splitlines()]  # noqa: E731
    target, gate = read(update / "usage/target.jsonl"), read(update / "usage/heldout.jsonl")
    kept = read(store.path("sw", 2) / "usage.jsonl")
    assert kept == target and not set(kept) & set(gate)
    card = store.card("sw", 2)
    assert card["ecda"]["usage_as_training"] and card["ecda"]["n_usage"] == len(target)
    roles = {d["role"]: d["rows"] for d in card["data"]}
    assert roles["usage"] == len(target) and roles["selection"] == 16
    # Replay stays half of the mix: as many replayed as selected + drifted queries.
    assert card["ecda"]["n_replay"] == 16 + len(target)
    assert set(target) <= {r.text for r in lineage_data(store, store.get("sw", 2))}
    rows = [json.loads(x) for x in (tmp_path / "out/monitor/drift.jsonl").read_text().splitlines()]
    assert [r["decision"].get("settling") for r in rows[3:]] == ["sw/v2", "sw/v2"]


def test_a_crash_inside_training_keeps_current_and_a_rerun_finishes(world, tmp_path, monkeypatch):
    from lingualift.adapters.trainer import LoraTrainer

    store = fresh_store(world, tmp_path)
    history = store.history("sw")
    real_step = LoraTrainer.train_step
    calls = {"n": 0}

    def crash_on_third(self, batches):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return real_step(self, batches)

    monkeypatch.setattr(LoraTrainer, "train_step", crash_on_third)
    with pytest.raises(RuntimeError, match="killed"):
        main(args(world, tmp_path, **{"gate.tolerance": 1.0}))
    assert store.current_version("sw") == 1 and store.history("sw") == history
    assert store.versions("sw") == [1]  # nothing half-stored
    work = tmp_path / "out/updates/sw-w00002/.train.work/checkpoints"
    assert sorted(p.name for p in work.iterdir()) == ["step-000001", "step-000002"]
    monkeypatch.setattr(LoraTrainer, "train_step", real_step)
    assert main(args(world, tmp_path)) == 0
    assert store.current_version("sw") == 2 and store.versions("sw") == [1, 2]
    assert [h["action"] for h in store.history("sw")].count("promote") == 1


def test_gate_refuses_a_candidate_worse_on_the_old_set(world, tmp_path):
    """A candidate built to be worse (large random LoRA weights) is refused by the real scores."""
    from lingualift.adapters.data import Example
    from lingualift.continual.gate import heldout_nll, read_heldout
    from lingualift.workflows.base import LoadedBase
    from tests.adapters.conftest import random_adapter

    store = fresh_store(world, tmp_path)
    base = LoadedBase(str(world["model"]))
    import torch

    bad = random_adapter(base.fresh(), seed=5, r=8)
    with torch.no_grad():  # large random updates: confident, wrong predictions everywhere
        for name, param in bad.named_parameters():
            if "lora_" in name:
                param.mul_(6.0)
    store.save("sw", bad, promote=False)
    current, candidate = store.get("sw", 1), store.get("sw", 2)
    old = read_heldout(current.path, current.name)
    new = [Example(id=str(i), kind="text", text=t) for i, t in enumerate(draw(NEW, 8, 9))]
    scores = {}
    for role, version in (("current", current), ("candidate", candidate)):
        model = base.with_adapter(version.path)
        scores[role] = {"old": heldout_nll(model, base.tokenizer, old, 48),
                        "new": heldout_nll(model, base.tokenizer, new, 48)}  # fmt: skip
    decision = Gate(min_gain=-10.0, tolerance=0.05).decide(scores["current"], scores["candidate"])
    assert not decision.promote and decision.metrics["old"]["regret"] > 0.05
    assert decision.reason.startswith("old-set loss")
    relative = Gate(min_gain=-10.0, tolerance=1e-6, relative=True)
    assert not relative.decide(scores["current"], scores["candidate"]).promote


def test_a_kept_update_is_recorded_without_moving_current(world, tmp_path):
    store = fresh_store(world, tmp_path)
    config = EcdaConfig(
        input=str(world["log"]), langs=["sw"], store=str(tmp_path / "store"),
        model=str(world["model"]), pool=str(world["pool"]), out_dir=str(tmp_path / "out"),
        window=30, n_permutations=99, n_bootstrap=199, n_clusters=3, cooldown_windows=5,
        train=TrainingArgs(max_steps=2, batch_size=4, max_length=48),
        update=UpdateSettings(budget=16, penalty="ewc", penalty_lambda=2.0, fisher_samples=4),
        gate=Gate(min_gain=100.0),  # no candidate gains 100 nats
    )  # fmt: skip
    result = run_ecda(config, progress=False)
    assert [u["status"] for u in result.updates] == ["kept"]  # the cooldown held off the rest
    assert store.current_version("sw") == 1 and store.versions("sw") == [1, 2]
    last = store.history("sw")[-1]
    assert last["action"] == "keep" and last["candidate"] == "sw/v2" and last["current"] == 1
    assert "new-usage gain" in last["reason"] and last["windows"][0]["drift"]
    assert store.card("sw", 2)["penalty"] == {"kind": "ewc", "lambda": 2.0, "fisher_examples": 4}


def test_bad_input_exit_2_nothing_written(world, tmp_path, capsys):
    store = fresh_store(world, tmp_path)
    out = tmp_path / "out"

    def refused(match, *argv, **extra):
        code = main(args(world, tmp_path, **extra) + list(argv))
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(errors) == 1 and match in errors[0], err
        assert not out.exists() and store.current_version("sw") == 1

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    refused("is empty", input=str(empty))
    refused("does not exist", input=str(tmp_path / "nope.jsonl"))
    refused("No adapter for language 'hi'", langs="[hi]")
    refused("at least 20 queries per window", window=8)
    refused("was built with encoder", encoder=f"lm:{world['model']}@0")
    (store.path("sw") / "heldout.jsonl").unlink()
    refused("sw/v1 has no old held-out set")
    import shutil

    shutil.rmtree(store.path("sw") / "reference")
    refused("sw/v1 has no reference profile")


def test_follow_a_log_folder(world, tmp_path, capsys):
    """follow=true polls the folder; a segment closed later is read on a later run."""
    store = fresh_store(world, tmp_path)
    logs = tmp_path / "logs"
    write_log(logs / "seg-0001.jsonl", log_rows(draw(OLD, 60, 2)))
    write_log(logs / "seg-0002.jsonl.partial", log_rows(draw(NEW, 60, 3)))
    follow = {"input": str(logs), "follow": "true", "max_polls": 2, "poll_seconds": 0}
    assert main(args(world, tmp_path, **follow)) == 0
    assert "sw: 2 windows, 0 with drift" in capsys.readouterr().out
    (logs / "seg-0002.jsonl.partial").rename(logs / "seg-0002.jsonl")
    assert main(args(world, tmp_path, **follow)) == 0
    assert "promoted" in capsys.readouterr().out and store.current_version("sw") == 2


def test_ctrl_c_between_polls_stops_following_cleanly(world, tmp_path, capsys, monkeypatch):
    """follow=true runs 'until Ctrl-C': a Ctrl-C while it waits for the next poll is the normal
    end (exit 0, summary printed, config.yaml written), not an interruption to resume."""
    import contextlib
    import importlib

    fresh_store(world, tmp_path)
    logs = tmp_path / "logs"
    write_log(logs / "seg-0001.jsonl", log_rows(draw(OLD, 60, 2)))

    def ctrl_c(seconds):
        raise KeyboardInterrupt

    # Ctrl-C while the verb waits for its next poll (and only there).
    waiting = SimpleNamespace(wait=ctrl_c)
    verb = importlib.import_module("lingualift.cli.ecda")
    monkeypatch.setattr(verb, "sigterm_requests_stop", lambda: contextlib.nullcontext(waiting))
    follow = {"input": str(logs), "follow": "true", "max_polls": "null", "poll_seconds": 30}
    assert main(args(world, tmp_path, **follow)) == 0
    captured = capsys.readouterr()
    assert "sw: 2 windows, 0 with drift" in captured.out
    assert "stopped following" in captured.err and "interrupted" not in captured.err
    assert (tmp_path / "out" / "config.yaml").is_file()


def test_idle_polls_of_a_followed_folder_rewrite_nothing(world, tmp_path, monkeypatch):
    """A poll that finds no new line neither redraws drift.png nor rewrites the state: with a
    short poll_seconds an idle follower used to re-plot and re-save on every poll."""
    from lingualift.continual.log_monitor import LogMonitor
    from lingualift.continual.loop import EcdaLoop

    fresh_store(world, tmp_path)
    logs = tmp_path / "logs"
    write_log(logs / "seg-0001.jsonl", log_rows(draw(OLD, 60, 2)))
    calls = {"report": 0, "save": 0, "loop": 0}

    def counted(name, real):
        def wrapper(self):
            calls[name] += 1
            return real(self)

        return wrapper

    monkeypatch.setattr(LogMonitor, "write_report", counted("report", LogMonitor.write_report))
    monkeypatch.setattr(LogMonitor, "save", counted("save", LogMonitor.save))
    monkeypatch.setattr(EcdaLoop, "save", counted("loop", EcdaLoop.save))
    follow = {"input": str(logs), "follow": "true", "max_polls": 4, "poll_seconds": 0}
    assert main(args(world, tmp_path, **follow)) == 0
    assert calls == {"report": 1, "save": 1, "loop": 2}  # the loop saves once per window
    assert (tmp_path / "out/monitor/drift.png").is_file()
    # A segment closed later is read, saved and reported by the next poll.
    write_log(logs / "seg-0002.jsonl", log_rows(draw(OLD, 30, 4)))
    assert main(args(world, tmp_path, **follow)) == 0
    assert calls == {"report": 2, "save": 2, "loop": 3}


def test_sigterm_during_a_poll_stops_following_at_the_next_pause(
    world, tmp_path, capsys, monkeypatch
):
    """A supervisor's SIGTERM (kill, systemd, docker stop) ends 'lingualift ecda follow=true'
    cleanly even when it lands in the middle of reading a window: the loop stops at the next
    pause between polls. Python's default would end it on the spot, writing nothing."""
    from lingualift.continual.log_monitor import LogMonitor

    fresh_store(world, tmp_path)
    logs = tmp_path / "logs"
    write_log(logs / "seg-0001.jsonl", log_rows(draw(OLD, 60, 2)))
    poll = LogMonitor.poll

    def poll_then_sigterm(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while this poll is still running
        for _ in range(1000):  # the handler runs at the next bytecode boundary
            pass
        return poll(self, *args, **kwargs)

    monkeypatch.setattr(LogMonitor, "poll", poll_then_sigterm)
    before = signal.getsignal(signal.SIGTERM)
    follow = {"input": str(logs), "follow": "true", "max_polls": "null", "poll_seconds": 30}
    assert main(args(world, tmp_path, **follow)) == 0
    captured = capsys.readouterr()
    assert "sw: 2 windows, 0 with drift" in captured.out and "stopped following" in captured.err
    assert (tmp_path / "out" / "config.yaml").is_file()
    assert signal.getsignal(signal.SIGTERM) is before  # the verb's handler is gone again
