"""The experiment runner on a tiny random model with tiny sizes (real corpus, real library)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from lingualift.errors import LingualiftError
from lingualift.jobs.experiments import (
    CompassGenresConfig,
    CompassVsBaselinesConfig,
    EcdaDriftConfig,
    GenreSettings,
    LayerAreaConfig,
    ShifConVsLoraConfig,
    experiment_name,
    load_experiment,
    run_experiment,
)
from lingualift.jobs.experiments.summary import mean_std
from lingualift.training import TrainingArgs

TINY = dict(
    langs=["sw"],
    seeds=[0, 1],
    train=TrainingArgs(max_steps=2, batch_size=2, max_length=24),
    heldout_per_language=4,
    cloze_per_language=4,
    eval_batch_size=4,
    eval_max_length=32,
)
SHIFCON = dict(vector_per_language=20, pairs_per_language=6)


def _units(out):
    return sorted(p.name for p in (out / "units").iterdir() if not p.name.startswith("."))


def test_shifcon_vs_lora_and_layer_area_resume(tmp_path, tiny_model_dir):
    out = tmp_path / "sl"
    config = ShifConVsLoraConfig(model=str(tiny_model_dir), out_dir=str(out), **TINY, **SHIFCON)
    result = run_experiment(config, progress=False)
    data = json.loads(result["results"].read_text())
    assert _units(out) == [
        "base",
        "base+shift",
        "lora__s0",
        "lora__s1",
        "shifcon__s0",
        "shifcon__s1",
    ]
    for system in ("lora", "shifcon"):
        for lang in ("sw", "en"):
            stat = data["summary"][system][lang]["nll"]
            assert stat["n"] == 2 and stat["mean"] > 0
        assert 0 <= data["summary"][system]["sw"]["cloze_acc_norm"]["mean"] <= 1
    assert "cloze" not in json.dumps(data["summary"]["lora"]["en"])  # no English cloze set
    assert result["plot"].stat().st_size > 0 and "| shifcon | sw |" in result["table"]
    assert load_experiment(out / "config.yaml") == config  # the saved config is a recipe

    # Resume: a deleted unit is recomputed, the others are read back unchanged.
    before = (out / "units" / "lora__s0" / "stage.json").read_text()
    shutil.rmtree(out / "units" / "shifcon__s1")
    run_experiment(config, progress=False)
    assert (out / "units" / "lora__s0" / "stage.json").read_text() == before
    assert (out / "units" / "shifcon__s1" / "stage.json").is_file()

    # Other settings in the same folder are refused, in one sentence.
    with pytest.raises(LingualiftError, match="other settings"):
        other = TrainingArgs(max_steps=3, batch_size=2, max_length=24)
        run_experiment(ShifConVsLoraConfig(**{**vars(config), "train": other}), progress=False)

    # With a learning-rate grid each system is tuned on validation verses; pairs get intervals.
    tuned = ShifConVsLoraConfig(
        **{**vars(config), "out_dir": str(tmp_path / "tuned"), "seeds": [0], "lr_grid": [1e-3, 1e-2],
           "validation_per_language": 4, "shifcon": str(out / "shifcon")}
    )  # fmt: skip
    result = run_experiment(tuned, progress=False)
    data = json.loads(result["results"].read_text())
    assert set(data["learning_rates"]["sweep"]) == {"lora", "shifcon"}
    assert data["learning_rates"]["shifcon"] in (1e-3, 1e-2)
    shift_vs_base = data["paired"]["sw/cloze/shift only - base"]
    assert shift_vs_base["ci95"][0] <= shift_vs_base["difference"] <= shift_vs_base["ci95"][1]
    assert "en/nll/shifcon - lora" in data["paired"] and result["curve"].stat().st_size > 0

    # Ablations (ShifCon with one part only) join the finished runs without redoing them.
    lora_unit = tmp_path / "tuned" / "units" / "lora__s0" / "stage.json"
    before = lora_unit.stat().st_mtime_ns
    ablated = ShifConVsLoraConfig(
        **{**vars(tuned), "ablations": ["shift-trained", "contrastive-only"]}
    )
    data = json.loads(run_experiment(ablated, progress=False)["results"].read_text())
    assert lora_unit.stat().st_mtime_ns == before
    assert {"shift-trained", "contrastive-only"} <= set(data["summary"])
    assert "sw/nll/contrastive-only - lora" in data["paired"]
    with pytest.raises(LingualiftError, match="Unknown ablations"):
        ShifConVsLoraConfig(**{**vars(tuned), "ablations": ["shift"]})

    # layer_area reuses the vectors of the first run and sweeps two bands.
    la = LayerAreaConfig(
        model=str(tiny_model_dir),
        out_dir=str(tmp_path / "la"),
        shifcon=str(out / "shifcon"),
        bands=[[0, 1]],
        shift_only=False,
        **{**TINY, "seeds": [0]},
        **SHIFCON,
    )
    result = run_experiment(la, progress=False)
    data = json.loads(result["results"].read_text())
    assert [0, 1] in data["bands"] and data["chosen"] in data["bands"]
    assert {"[0,1]", "base"} <= set(data["summary"])


def test_compass_vs_baselines(tmp_path, tiny_model_dir):
    out = tmp_path / "cb"
    config = CompassVsBaselinesConfig(
        model=str(tiny_model_dir),
        out_dir=str(out),
        encoder=f"lm:{tiny_model_dir}",
        methods=["compass", "random", "all"],
        usage_per_language=30,
        training_per_language=20,
        pool_per_language=4,
        budget=10,
        cloze_per_language=0,
        **{k: v for k, v in TINY.items() if k not in ("seeds", "cloze_per_language")},
        seeds=[0],
    )
    result = run_experiment(config, progress=False)
    data = json.loads(result["results"].read_text())
    units = {u["unit"]: u for u in data["units"]}
    assert units["compass__sw__s0"]["selection"]["n_selected"] == 10
    assert (
        units["all__sw__s0"]["selection"]["n_selected"]
        == units["all__sw__s0"]["selection"]["n_pool"]
    )
    assert all(u["train"]["steps"] == 2 for k, u in units.items() if k != "base")
    assert set(data["js"]["after"]) == {"compass/sw", "random/sw", "all/sw"}
    before = units["compass__sw__s0"]["selection"]["js_before"]
    assert data["js"]["before"]["sw"]["mean"] == pytest.approx(before)


def test_bad_config_and_mean_std():
    with pytest.raises(LingualiftError, match="drop 'en'"):
        EcdaDriftConfig(langs=["en"])
    with pytest.raises(LingualiftError, match="Unknown method"):
        CompassVsBaselinesConfig(methods=["compass", "best"])
    with pytest.raises(LingualiftError, match="Unknown method"):
        GenreSettings(side_methods=["best"])
    with pytest.raises(LingualiftError, match="a < b"):
        LayerAreaConfig(bands=[[5, 3]])
    with pytest.raises(LingualiftError, match="heldout_per_language must be at least 1"):
        ShifConVsLoraConfig(heldout_per_language=0)
    with pytest.raises(LingualiftError, match="max_steps must be at least 1"):
        ShifConVsLoraConfig(train=TrainingArgs(max_steps=0))
    CompassGenresConfig(train=TrainingArgs(max_steps=0))  # its steps come from the epochs
    stat = mean_std([1.0, 2.0, 3.0])
    assert stat["mean"] == 2.0 and stat["std"] == pytest.approx(1.0) and stat["n"] == 3


def test_registry_loads_each_experiment_with_only_its_keys(tmp_path):
    from lingualift.config import field_docs, settings_of
    from lingualift.jobs.experiments import EXPERIMENTS

    for name, experiment in EXPERIMENTS.items():
        config = load_experiment(None, [f"experiment={name}", "seeds=[4]"])
        assert type(config) is experiment.config and experiment_name(config) == name
        fields = [f.name for f in dataclasses.fields(experiment.config)]
        assert set(fields) <= set(field_docs(experiment.config)), name  # every key documented
        # which units run and where they go stay out of the fingerprints
        assert not {"out_dir", "seeds", "langs"} & set(settings_of(config))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("experiment: compass_genres\nbands: [[1, 2]]\n")
    with pytest.raises(LingualiftError, match="Unknown key 'bands' in .*r.yaml"):
        load_experiment(recipe)
    with pytest.raises(LingualiftError, match="must name the experiment .* got 'shifcon'"):
        load_experiment(None, ["experiment=shifcon"])
    genres = settings_of(CompassGenresConfig())["genres"]
    assert "conditions" not in genres and genres["budget"] == 60


def test_compass_genres_gap_control_realistic_with_paired_intervals(tmp_path, tiny_model_dir):
    out = tmp_path / "genres"
    config = CompassGenresConfig(
        model=str(tiny_model_dir),
        out_dir=str(out),
        encoder=f"lm:{tiny_model_dir}",
        langs=["sw"],
        seeds=[0],
        train=TrainingArgs(max_steps=0, batch_size=2, max_length=24),
        eval_batch_size=4,
        eval_max_length=64,
        genres=GenreSettings(
            conditions=["gap", "control", "realistic"], methods=["compass", "random", "all"],
            n_training=6, n_usage=10, n_validation=4, n_heldout=5, pool_per_genre=2,
            realistic_per_genre=2, budget=4, lr_grid=[1e-3, 1e-2],
        ),
    )  # fmt: skip
    result = run_experiment(config, progress=False)
    data = json.loads(result["results"].read_text())
    assert data["lr"] in (1e-3, 1e-2) and set(data["lr_sweep"]) == {"0.001", "0.01"}
    gap = data["summary"]["gap/sw"]["systems"]
    assert set(gap) >= {"base", "compass", "random", "all", "oracle"}
    assert gap["compass"]["vs_random"]["verdict"] in ("lower", "higher", "no difference shown")
    lo, hi = gap["compass"]["vs_random"]["ci95"]
    assert lo <= gap["compass"]["vs_random"]["difference"] <= hi
    assert 0 <= gap["compass"]["precision"] <= 1
    assert set(data["summary"]["control/sw"]["systems"]) == {"base", "compass", "random", "oracle"}
    effect = data["gap_minus_control"]["sw"]  # what of compass - random belongs to the gap
    assert effect["ci95"][0] <= effect["difference"] <= effect["ci95"][1]
    assert "gap − control" in result["table"]
    units = [u for u in data["units"] if u["system"] not in ("base",)]
    steps = {u["condition"]: u["train"]["steps"] for u in units}
    # Equal steps inside a condition, at least one epoch over its largest training set ('all').
    for unit in units:
        assert unit["train"]["steps"] == steps[unit["condition"]]
    all_units = [u for u in units if u["system"] == "all"]
    assert all_units and all(u["train"]["epochs"] >= 0.99 for u in all_units)
    realistic = [u for u in units if u["condition"] == "realistic" and u["selection"]]
    assert any(u["selection"]["target_language_share"] > 0 for u in realistic) or realistic
    assert "| gap/sw | compass |" in result["table"] and result["plot"].stat().st_size > 0


def test_ecda_drift(tmp_path, tiny_model_dir):
    """The ECDA experiment end to end on a tiny model: a few windows, one or two steps, every
    system (plain ECDA, ECDA training on the drifted queries, ECDA preferring target-language
    pool items, naive, full)."""
    out = tmp_path / "ecda"
    config = EcdaDriftConfig(
        model=str(tiny_model_dir), out_dir=str(out),
        encoder=f"lm:{tiny_model_dir}", langs=["sw"], seeds=[0],
        train=TrainingArgs(max_steps=1, batch_size=2, max_length=24),
        window=24, windows_before=3, windows_after=2, stable_books="40-42", drift_books="19",
        usage_per_language=60, training_per_language=16, pool_per_language=3, budget=8,
        pool_target_per_language=12, settle_rows=24,
        heldout_per_language=4, eval_batch_size=4, eval_max_length=32, full_steps=2,
    )  # fmt: skip
    result = run_experiment(config, progress=False)
    data = json.loads(result["results"].read_text())
    units = {u["unit"]: u for u in data["units"]}
    ecda_systems = ("ecda", "ecda+usage", "ecda+lang")
    assert set(units) == {"v1__sw", "naive__sw__s0", "full__sw__s0"} | {
        f"{s}__sw__s0" for s in ecda_systems
    }
    for system in ecda_systems:
        detection = units[f"{system}__sw__s0"]["detection"]
        assert detection["change_window"] == 3
        tested = 3 - sum(w < 3 for w in detection["held_windows"])
        assert detection["stable_windows"] == tested
    ecda = units["ecda__sw__s0"]
    update = next(u for u in ecda["updates"] if u["after_change"])
    assert update["status"] in ("promoted", "kept")
    assert units["naive__sw__s0"]["train"]["steps"] == update["train"]["steps"] == 1
    assert units["full__sw__s0"]["train"]["steps"] == 2
    # The pool holds target-language verses; no stream query is one of them.
    pool = [json.loads(x) for x in (out / "data/sw/pool.jsonl").read_text().splitlines()]
    mine = {r["text"] for r in pool if r["lang"] == "sw"}
    log = (out / "streams/sw-s0/traffic.jsonl").read_text().splitlines()
    assert len(mine) == 12 and not mine & {json.loads(x)["text"] for x in log}

    # On the same drifted window, ecda+lang's COMPASS takes more target-language pool items.
    def update_folder(system, suffix):
        update = units[f"{system}__sw__s0"]["updates"][0]
        assert update["id"] == units["ecda__sw__s0"]["updates"][0]["id"]  # the same trigger
        return out / f"streams/sw-s0{suffix}/ecda/updates" / update["id"]

    def languages(folder):
        lines = (folder / "select/selection.jsonl").read_text().splitlines()
        return [json.loads(x)["lang"] for x in lines]

    plain, boosted = (
        languages(update_folder("ecda", "")),
        languages(update_folder("ecda+lang", "-lang")),
    )
    assert boosted.count("sw") > plain.count("sw") and len(boosted) == len(plain) == 8
    # ecda+usage trains on the drifted queries, never on the gate's held-out split of them.
    folder = update_folder("ecda+usage", "-usage")
    used = {json.loads(x)["text"] for x in (folder / "usage/target.jsonl").read_text().splitlines()}
    gate = {
        json.loads(x)["text"] for x in (folder / "usage/heldout.jsonl").read_text().splitlines()
    }
    select = json.loads((folder / "select/stage.json").read_text())["result"]
    assert select["n_usage"] == len(used) > 0 and not used & gate
    card = json.loads((folder / "train/metrics.json").read_text())
    plain_card = json.loads((update_folder("ecda", "") / "train/metrics.json").read_text())
    assert card["train_rows"] > plain_card["train_rows"]  # the queries and their replay share
    summary = data["summary"]["sw"]
    assert set(summary["systems"]) == {"none", "naive", "full", *ecda_systems}
    assert {"ecda-none", "naive-none", "full-none", "ecda-full", "ecda+usage-ecda",
            "ecda+lang-ecda", "ecda+lang-full"} <= set(summary["paired"])  # fmt: skip
    new = summary["paired"]["ecda-none"]["new"]
    assert new["ci95"][0] <= new["difference"] <= new["ci95"][1]
    for system in ecda_systems:
        assert summary["goals"][system]["compute_share"] == pytest.approx(
            summary["systems"][system]["tokens"]["mean"]
            / summary["systems"]["full"]["tokens"]["mean"]
        )
    assert all(s["new_nll"]["mean"] > 0 for s in summary["systems"].values())
    for system in ecda_systems:
        assert f"| sw | {system} |" in result["table"]
    assert "false alarms" in result["table"] and "held (settling)" in result["table"]
    assert result["plot"].stat().st_size > 0
