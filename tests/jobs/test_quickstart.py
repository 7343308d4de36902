"""The quickstart orchestration on a tiny random model: every stage, the report, the cache."""

from __future__ import annotations

import json

import pytest

from lingualift.cli import main
from lingualift.errors import LingualiftError
from lingualift.jobs.quickstart import QuickstartConfig, run_quickstart
from lingualift.training import LoraSettings, TrainingArgs

TINY = dict(
    n_train=16, n_usage=12, n_heldout=4, n_cloze=4, pool_langs="fr,de", pool_per_language=8,
    budget=6, baselines=["random"], shifcon_langs=["fr"], vector_sentences=8, subspace_rank=2,
    shifcon_train="always", shifcon_train_steps=1, shifcon_pairs=4, eval_batch_size=8,
    cloze_letters=True,
)  # fmt: skip
TRAIN = dict(max_steps=2, batch_size=2, grad_accum=1, max_length=32, save_every=1)


def test_quickstart_runs_every_stage_then_reuses_them(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "qs"
    model = str(tiny_model_dir)
    args = [f"{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in TINY.items()]
    args += [f"train.{k}={v}" for k, v in TRAIN.items()] + ["lora.r=2"]
    assert (
        main(["quickstart", f"model={model}", f"encoder=lm:{model}", f"out_dir={out}", *args]) == 0
    )
    printed = capsys.readouterr()
    assert f"report: {(out / 'report.md').resolve()}" in printed.out
    report = json.loads((out / "report.json").read_text())
    assert set(report["eval"]) == {"base", "lora", "shifcon", "shifcon-trained"}
    assert set(report["selection"]) == {"compass", "random"}
    for sel in report["selection"].values():
        assert sel["n_selected"] == 6 and 0 <= sel["js_after"] <= 1
    for result in report["eval"].values():
        assert set(result["nll"]) == {"sw", "en"} and result["n_cloze"] == 4
    # ShifCon never shifts English rows, so English NLL with the shift equals the base model's.
    assert report["eval"]["shifcon"]["nll"]["en"] == report["eval"]["base"]["nll"]["en"]
    assert report["eval"]["lora"]["nll"]["sw"] != report["eval"]["base"]["nll"]["sw"]
    for name in ("report.md", "results.png", "select-compass/report.png", "shifcon/layers.png"):
        assert (out / name).is_file(), name
    assert "| lora |" in (out / "report.md").read_text()
    assert "reused" not in printed.err

    # Second run: every stage is reused from its stage.json; nothing is recomputed.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/stage.json")}
    config = QuickstartConfig(
        model=model, encoder=f"lm:{model}", out_dir=str(out), lora=LoraSettings(r=2),
        train=TrainingArgs(**TRAIN), **TINY,
    )  # fmt: skip
    run_quickstart(config)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert capsys.readouterr().err.count("finished earlier, reused") == len(stamps)


def test_bad_settings_fail_before_any_work(tmp_path):
    with pytest.raises(LingualiftError, match="non-dominant"):
        run_quickstart(QuickstartConfig(lang="en", out_dir=str(tmp_path / "a")))
    with pytest.raises(LingualiftError, match="no 'xh' text|corpus has no"):
        run_quickstart(QuickstartConfig(lang="xh", out_dir=str(tmp_path / "b")))
    with pytest.raises(LingualiftError, match="Unknown baseline"):
        run_quickstart(QuickstartConfig(baselines=["best"], out_dir=str(tmp_path / "c")))
    assert not any(tmp_path.iterdir())


def test_the_quickstarts_adapter_goes_into_production_as_it_is(tmp_path, tiny_model_dir, capsys):
    """The quickstart's version keeps its held-out set and reference profile, the report prints
    the serve / monitor / ecda commands, and 'lingualift ecda' runs on its store without
    old_heldout= (it used to stop at 'sw/v1 has no old held-out set')."""
    from lingualift.adapters.store import AdapterStore
    from tests.continual.helpers import log_rows, write_log

    out = tmp_path / "qs"
    model = str(tiny_model_dir)
    config = QuickstartConfig(
        model=model, encoder=f"lm:{model}", out_dir=str(out), lora=LoraSettings(r=2),
        train=TrainingArgs(**TRAIN), n_reference=40,
        **{**TINY, "shifcon_train": "never", "cloze_letters": False},
    )  # fmt: skip
    report = run_quickstart(config).read_text()
    store = AdapterStore(out / "adapters")
    v1 = store.get("sw")
    assert v1.name == "sw/v1" and (v1.path / "reference" / "reference.json").is_file()
    heldout = [json.loads(x)["text"] for x in (v1.path / "heldout.jsonl").read_text().splitlines()]
    texts = json.loads((out / "heldout" / "texts.json").read_text())
    assert heldout == texts["sw"] and len(heldout) == 4
    production = json.loads((out / "report.json").read_text())["production"]
    assert production["reference"]["rows"] == 40 and production["heldout"] == 4
    for verb in ("serve", "monitor", "ecda"):
        assert production["commands"][verb] in report
    assert f"lingualift ecda store={out / 'adapters'}" in report
    # ECDA straight from the quickstart's store: usage verses, then queries of another kind.
    from lingualift.data.sources import read_source

    stable = [r.text for r in read_source("corpus:sw:40,41:40", seed=7, role="usage")]
    drifted = [f"9{i} + 4{i} = 13{i}; 7{i} * 2 = {i}4{i}" for i in range(100, 140)]
    log = write_log(tmp_path / "traffic" / "seg-0001.jsonl", log_rows(stable + drifted))
    window = max(20, production["reference"]["min_window"])
    settings = {
        "store": out / "adapters", "langs": "[sw]", "input": log, "model": model,
        "pool": out / "data" / "pool.jsonl", "out_dir": tmp_path / "ecda", "window": window,
        "n_permutations": 99, "n_bootstrap": 199, "update.budget": 6, "train.max_steps": 1,
        "train.batch_size": 2, "train.max_length": 32, "gate.tolerance": 1.0,
    }  # fmt: skip
    capsys.readouterr()
    assert main(["ecda", *[f"{k}={v}" for k, v in settings.items()]]) == 0
    printed = capsys.readouterr().out
    assert "update sw-w" in printed, printed
    [gate] = (tmp_path / "ecda" / "updates").glob("*/gate/gate.json")
    assert json.loads(gate.read_text())["n_old"] == 4  # the quickstart's held-out verses
