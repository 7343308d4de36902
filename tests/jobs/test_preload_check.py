"""Every verb takes the flat model settings and runs the pre-load check: a job that cannot fit
its device is refused in one sentence (exit 2) before any model loads and before any file is
written; and no verb defaults to CUDA on a CPU-only machine."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from lingualift.cli import main
from lingualift.placement import DeviceCapabilities, ModelSettings
from tests.helpers import save_constant_shifcon, snapshot

RECIPES = Path(__file__).parents[2] / "recipes" / "experiments"
TOO_SMALL = "device_memory=100KB"  # the tiny model's weights alone are larger


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny model, a data file, a store with a sw adapter, a ShifCon folder for the model."""
    from peft import LoraConfig, get_peft_model

    from lingualift.adapters import AdapterStore, base_model_signature
    from lingualift.testing import save_tiny_causal_lm, tiny_causal_lm

    root = tmp_path_factory.mktemp("preload")
    model_dir = save_tiny_causal_lm(root / "model", "llama", hidden_size=32, num_layers=4)
    data = root / "data.jsonl"
    rows = [{"text": f"habari ya asubuhi rafiki yangu {i}", "lang": "sw"} for i in range(8)]
    rows += [{"text": f"good morning my friend {i}", "lang": "en"} for i in range(8)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model, _ = tiny_causal_lm("llama", hidden_size=32, num_layers=4)
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules="all-linear"))
    store = AdapterStore(root / "store")
    store.save("sw", peft_model, card={"base_model": base_model_signature(peft_model)})
    save_constant_shifcon(root / "shifcon", model_dir)
    return {"root": root, "model": model_dir, "data": data, "store": root / "store"}


# verb, its words (with the world's paths), the verb named in the refusal
CASES = [
    ("train", lambda w, out: ["train", "lang=sw", f"data={w['data']}", f"out_dir={out}/run", f"store={out}/store"], "train"),
    ("shifcon-vectors", lambda w, out: ["shifcon", "vectors", f"data={w['data']}", "langs=[sw]", f"out_dir={out}/vectors"], "eval"),
    ("shifcon-train", lambda w, out: ["shifcon", "train", f"shifcon={w['root'] / 'shifcon'}", f"data={w['root'] / 'pairs.jsonl'}", f"out_dir={out}/shifcon-train"], "shifcon"),
    ("shifcon-generate", lambda w, out: ["shifcon", "generate", f"shifcon={w['root'] / 'shifcon'}", "prompts=[habari]", "lang=sw"], "serve"),
    ("eval-perplexity", lambda w, out: ["eval", "task=perplexity", f"data={w['data']}", f"out_dir={out}/results"], "eval"),
    ("eval-mcq", lambda w, out: ["eval", "task=global-mmlu", f"data={w['root'] / 'mcq.jsonl'}", f"out_dir={out}/results"], "eval"),
    ("serve", lambda w, out: ["serve", f"store={w['store']}", "port=0", "log_traffic=false"], "serve"),
    ("generate", lambda w, out: ["generate", "habari ya asubuhi", "lang=sw", f"store={w['store']}"], "serve"),
    ("quickstart", lambda w, out: ["quickstart", f"out_dir={out}/quickstart"], "train"),
    ("experiment", lambda w, out: ["experiment", "--config", str(RECIPES / "compass_vs_baselines.yaml"), f"out_dir={out}/experiment"], "train"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_verb_refuses_a_job_too_big_for_its_device_before_loading(
    case, world, tmp_path, capsys, monkeypatch
):
    from lingualift import models

    name, words, verb = case
    _pairs_and_questions(world["root"])
    loads = []
    monkeypatch.setattr(models, "load_causal_lm", lambda *a, **k: loads.append(a))
    before = snapshot(world["root"], tmp_path)
    argv = words(world, tmp_path)
    if name != "shifcon-train" and not any(w.startswith("model=") for w in argv):
        argv.append(f"model={world['model']}")
    code = main([*argv, TOO_SMALL])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("[")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    message = lines[0]
    assert "needs about" in message and f"to {verb} on a 0.00 GB machine (device_memory)" in message
    assert message.endswith(".") and "Traceback" not in err
    assert not loads  # refused before the model loads
    assert snapshot(world["root"], tmp_path) == before  # and before anything is written


def test_the_ecda_update_is_checked_before_the_base_loads(tmp_path, monkeypatch):
    """ECDA checks its inputs first, then whether an update's training fits (same sentence)."""
    from lingualift.errors import LingualiftError
    from lingualift.planning import check_training_args
    from lingualift.testing import save_tiny_causal_lm
    from lingualift.workflows import ecda

    model = save_tiny_causal_lm(tmp_path / "model", "llama", hidden_size=32, num_layers=2)
    config = ecda.EcdaConfig(model=str(model), device_memory="100KB", input="x", pool="y")
    seen = []

    def check(verb, settings, args, lora=None, **kwargs):
        seen.append((verb, settings.device_memory, args.batch_size, args.max_length))
        return check_training_args(verb, settings, args, lora, **kwargs)

    monkeypatch.setattr(ecda, "check_training_args", check)
    # Inputs are checked before the plan; stop right after them with a stub of each.
    monkeypatch.setattr(ecda, "check_source", lambda *a, **k: None)
    monkeypatch.setattr(ecda, "monitored_languages", lambda store, langs: ["sw"])
    monkeypatch.setattr(ecda, "load_reference", lambda store, lang: None)
    monkeypatch.setattr(ecda, "read_heldout", lambda *a: None)
    monkeypatch.setattr(ecda, "lineage_data", lambda *a: None)
    monkeypatch.setattr(ecda, "read_source", lambda *a, **k: [])
    current = SimpleNamespace(path=tmp_path, name="sw/v1")
    monkeypatch.setattr(ecda.AdapterStore, "get", lambda self, lang: current)
    opened = []
    monkeypatch.setattr(ecda.LogMonitor, "open", lambda *a, **k: opened.append(a))
    with pytest.raises(LingualiftError, match=r"needs about .* to train on a 0\.00 GB machine"):
        ecda.ecda_over_log(config, progress=False)
    assert seen == [("train", "100KB", 8, 128)] and not opened


def _pairs_and_questions(root: Path) -> None:
    """The parallel pairs and the multiple-choice questions some verbs read (once)."""
    pairs = root / "pairs.jsonl"
    if not pairs.is_file():
        rows = [
            {"text": f"habari {i}", "lang": "sw", "meta": {"parallel_text": f"hello {i}"}}
            for i in range(4)
        ]
        pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mcq = root / "mcq.jsonl"
    if not mcq.is_file():
        row = {
            "question": "Ni ipi?", "option_a": "a", "option_b": "b", "option_c": "c",
            "option_d": "d", "answer": "A", "subject": "x", "subject_category": "y", "lang": "sw",
        }  # fmt: skip
        mcq.write_text(json.dumps(row) + "\n")


# -- no verb defaults to CUDA on a CPU-only machine ---------------------------------------------


def _verb_configs() -> list[type]:
    from lingualift.cli.generate import RoutedGenerationConfig
    from lingualift.jobs.eval import EvalConfig
    from lingualift.jobs.experiments.registry import EXPERIMENTS
    from lingualift.jobs.quickstart import QuickstartConfig
    from lingualift.jobs.serve import ServeConfig
    from lingualift.jobs.shifcon import GenerateConfig, VectorsConfig
    from lingualift.jobs.shifcon_train import ShifConTrainConfig
    from lingualift.planning import PlanConfig
    from lingualift.workflows.ecda import EcdaConfig
    from lingualift.workflows.training import TrainConfig

    return [
        TrainConfig, VectorsConfig, GenerateConfig, ShifConTrainConfig, EvalConfig, ServeConfig,
        EcdaConfig, RoutedGenerationConfig, QuickstartConfig, PlanConfig,
        *(e.config for e in EXPERIMENTS.values()),
    ]  # fmt: skip


@pytest.mark.parametrize("cls", _verb_configs(), ids=lambda c: c.__name__)
def test_every_verb_config_is_the_one_settings_class_and_defaults_to_the_cpu(cls):
    assert issubclass(cls, ModelSettings)
    names = {f.name for f in dataclasses.fields(cls)}
    own = set(cls.__dataclass_fields__) - {f.name for f in dataclasses.fields(ModelSettings)}
    # One class: no verb keeps its own copy of a precision or placement key.
    assert not own & {"dtype", "device", "torch_dtype", "quantization", "attn_implementation"}
    assert {f.name for f in dataclasses.fields(ModelSettings)} <= names
    required = {"TrainConfig": {"data": "x.jsonl"}}.get(cls.__name__, {})
    config = cls(**required)
    settings = config.model_settings(config.model or "some/model")
    placement = settings.resolve(DeviceCapabilities())  # a machine without a GPU
    assert (placement.device, placement.dtype) == ("cpu", "float32")
    assert (config.dtype, config.device, config.quantization) == ("auto", "auto", "none")
