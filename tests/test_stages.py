"""The stage engine: reuse, refusal by settings, atomic outputs, resumable work folders."""

from __future__ import annotations

import json

import pytest

from lingualift.errors import LingualiftError
from lingualift.stages import STAGE_FILE, Job


def writer(calls: list[str], text: str = "x"):
    def fn(ctx):
        calls.append(ctx.name)
        (ctx.out / "out.txt").write_text(text)
        return {"n": len(text)}

    return fn


def test_a_finished_stage_is_reused_and_downstream_stages_follow_upstream_changes(tmp_path):
    calls: list[str] = []
    job = Job(tmp_path, label="t", quiet=True)
    data = job.run("data", {"seed": 0}, writer(calls))
    model = job.run("model", {"steps": 2}, writer(calls), after=[data])
    assert calls == ["data", "model"] and model.result == {"n": 1}
    marker = json.loads((tmp_path / "model" / STAGE_FILE).read_text())
    assert marker["settings"] == {"steps": 2} and marker["after"] == {"data": data.fingerprint}

    again = Job(tmp_path, label="t", quiet=True)
    data2 = again.run("data", {"seed": 0}, writer(calls))
    model2 = again.run("model", {"steps": 2}, writer(calls), after=[data2])
    assert calls == ["data", "model"] and data2.reused and model2.reused

    with pytest.raises(LingualiftError, match=r"other settings \(seed: 0 -> 1\).*overwrite=true"):
        Job(tmp_path, label="t", quiet=True).run("data", {"seed": 1}, writer(calls))
    redo = Job(tmp_path, label="t", quiet=True, overwrite=True)
    new_data = redo.run("data", {"seed": 1}, writer(calls, "yy"))
    # The upstream change reaches the downstream stage through its fingerprint.
    with pytest.raises(LingualiftError, match="an earlier stage it reads changed"):
        Job(tmp_path, label="t", quiet=True).run(
            "model", {"steps": 2}, writer(calls), after=[new_data]
        )


def test_a_crash_leaves_no_half_stage_and_keeps_partial_work_of_the_same_settings(tmp_path):
    job = Job(tmp_path, label="t", quiet=True)

    def crash(ctx):
        (ctx.work / "checkpoint").write_text("step 3")
        (ctx.out / "half").write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        job.run("train", {"lr": 1}, crash)
    assert not (tmp_path / "train").exists()
    seen = []

    def resume(ctx):
        seen.append((ctx.work / "checkpoint").read_text())
        return {}

    job.run("train", {"lr": 1}, resume)
    assert seen == ["step 3"] and not (tmp_path / ".train.work").exists()

    with pytest.raises(KeyboardInterrupt):
        Job(tmp_path, quiet=True, overwrite=True).run("other", {"lr": 1}, crash)

    def fresh(ctx):
        seen.append((ctx.work / "checkpoint").exists())
        return {}

    Job(tmp_path, quiet=True).run("other", {"lr": 2}, fresh)  # other settings: work wiped
    assert seen[-1] is False


def test_a_foreign_folder_is_refused_and_progress_is_printed(tmp_path, capsys):
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(LingualiftError, match="did not write"):
        Job(tmp_path, quiet=True).run("out", {}, writer([]))
    assert (target / "notes.txt").read_text() == "mine"
    Job(tmp_path, label="quickstart", total=2).run("fresh", {}, writer([]))
    err = capsys.readouterr().err
    assert "[quickstart 1/2] fresh: running" in err and "done in" in err


def leftovers(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_stage_refused_on_bad_input_leaves_no_lock_no_work_and_no_new_folder(tmp_path):
    def refuse(ctx):
        raise LingualiftError("bad.jsonl:2: malformed JSON; fix or remove that line.")

    with pytest.raises(LingualiftError, match="malformed"):
        Job(tmp_path, quiet=True).run("train", {}, refuse, path=tmp_path / "runs" / "a" / "train")
    assert leftovers(tmp_path) == []  # no .train.lock, no .train.work/, no runs/a/


def test_a_failed_stage_keeps_the_work_it_can_resume_and_drops_only_the_lock(tmp_path):
    def checkpoint_then_fail(ctx):
        (ctx.work / "checkpoints").mkdir()
        (ctx.work / "checkpoints" / "step-3.pt").write_text("state")
        raise LingualiftError("out of disk space")

    with pytest.raises(LingualiftError):
        Job(tmp_path, quiet=True).run("train", {"lr": 1}, checkpoint_then_fail)
    assert leftovers(tmp_path) == [
        ".train.work", ".train.work/.fingerprint", ".train.work/checkpoints",
        ".train.work/checkpoints/step-3.pt",
    ]  # fmt: skip
    seen = []
    Job(tmp_path, quiet=True).run(
        "train", {"lr": 1}, lambda ctx: seen.append((ctx.work / "checkpoints").is_dir())
    )
    assert seen == [True] and leftovers(tmp_path) == ["train", "train/stage.json"]
