"""Artifacts made on the embedded model travel: another machine loads the same weights.

The embedded model's conversion is replaced by a tiny model of the same family
(``lingualift.testing.convert_tiny_embedded``), with the real GGUF provenance.
"Machine A" trains and stores an adapter; "machine B" is a second
``LINGUALIFT_HOME`` and Hugging Face cache, offline, in another process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lingualift
from lingualift import models
from lingualift.errors import LingualiftError
from lingualift.portable import base_identity, embedded_weights, registered_snapshot
from lingualift.testing import convert_tiny_embedded

EMBEDDED = "embedded:gemma-3-270m"
SRC = str(Path(lingualift.__file__).resolve().parents[1])
IDS = [[1, 40, 41, 42, 43, 44, 45, 46]]


@pytest.fixture(scope="module")
def machine_a(tmp_path_factory):
    """A home with the (tiny) embedded model, a stored sw adapter and an exported base."""
    from lingualift.cli import main
    from lingualift.jobs.train import TrainConfig, run_train
    from lingualift.training import LoraSettings, TrainingArgs

    root = tmp_path_factory.mktemp("machine-a")
    data = root / "sw.jsonl"
    data.write_text(
        "".join(json.dumps({"text": f"Habari ya {i}, rafiki {i * 3}."}) + "\n" for i in range(12))
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LINGUALIFT_HOME", str(root / "home"))
        mp.setenv("HF_HUB_CACHE", str(root / "hf"))
        mp.setattr(models, "_convert_embedded", convert_tiny_embedded)
        result = run_train(
            TrainConfig(
                lang="sw",
                model=EMBEDDED,
                data=str(data),
                train=TrainingArgs(max_steps=3, batch_size=4, max_length=32, lr=1e-2),
                lora=LoraSettings(r=4, dropout=0.0),
                out_dir=str(root / "runs" / "train-sw"),
                store=str(root / "store"),
            )
        )
        assert main(["export-base", f"out_dir={root / 'exported'}"]) == 0
        yield root, result.adapter.path, mp


def _logits_on_a(adapter: Path) -> torch.Tensor:
    from peft import PeftModel

    model = PeftModel.from_pretrained(
        models.load_causal_lm(EMBEDDED, with_tokenizer=False), adapter
    )
    with torch.no_grad():
        return model(input_ids=torch.tensor(IDS)).logits


def test_embedded_identity_names_the_gguf_and_its_hash():
    identity = base_identity(EMBEDDED)
    weights = identity.weights
    assert identity.name_or_path == "lingualift/gemma-3-270m-q4_k_m-dequantized"
    assert weights["gguf_file"] == "gemma-3-270m-q4_k_m.gguf" and len(weights["gguf_sha256"]) == 64
    assert identity.revision == weights["gguf_sha256"][:40]
    assert weights["quantization"] == "Q4_K_M" and weights["dequantized"] is True
    assert weights["derived_from"] == "google/gemma-3-270m"
    assert base_identity("google/gemma-3-270m").name_or_path == "google/gemma-3-270m"
    assert base_identity("google/gemma-3-270m").revision is None


def test_stored_adapter_names_its_base_portably(machine_a):
    root, adapter, _ = machine_a
    config = json.loads((adapter / "adapter_config.json").read_text())
    identity = base_identity(EMBEDDED)
    assert config["base_model_name_or_path"] == identity.name_or_path
    assert config["revision"] == identity.revision
    readme = (adapter / "README.md").read_text()
    assert identity.weights["gguf_sha256"] in readme and "Q4_K_M" in readme
    card = json.loads((adapter / "card.json").read_text())
    assert card["base_model"]["name_or_path"] == identity.name_or_path
    assert card["base_model"]["weights"]["gguf_sha256"] == identity.weights["gguf_sha256"]
    for name in ("adapter_config.json", "README.md", "card.json"):
        assert str(root / "home") not in (adapter / name).read_text(), name


def test_plain_peft_loads_the_adapter_offline_on_a_second_home(machine_a, tmp_path):
    adapter = machine_a[1]
    expected = _logits_on_a(adapter)
    script = f"""
import json, sys, torch
from peft import AutoPeftModelForCausalLM
adapter = {str(adapter)!r}
try:
    AutoPeftModelForCausalLM.from_pretrained(adapter)
    sys.exit("loaded before lingualift registered the base on this machine")
except OSError:
    pass
from lingualift import models
from lingualift.testing import convert_tiny_embedded
models._convert_embedded = convert_tiny_embedded
from lingualift.cli import main
assert main(["export-base", "out_dir={tmp_path / "exported"}"]) == 0
model = AutoPeftModelForCausalLM.from_pretrained(adapter)
with torch.no_grad():
    print(json.dumps(model(input_ids=torch.tensor({IDS})).logits.tolist()))
"""
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "LINGUALIFT_HOME": str(tmp_path / "home-b"),
        "HF_HUB_CACHE": str(tmp_path / "hf-b"),
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    got = torch.tensor(json.loads(done.stdout.strip().splitlines()[-1]))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert not (tmp_path / "home-b" / "adapters").exists()  # B never trained anything


def test_exported_base_is_the_embedded_weights(machine_a):
    from transformers import AutoModelForCausalLM

    exported = machine_a[0] / "exported"
    provenance = json.loads((exported / "lingualift.json").read_text())
    assert provenance["gguf_sha256"] == embedded_weights("gemma-3-270m")["gguf_sha256"]
    assert base_identity(str(exported)) == base_identity(EMBEDDED)  # lingualift reads it back
    plain = AutoModelForCausalLM.from_pretrained(exported)
    ours = models.load_causal_lm(EMBEDDED, with_tokenizer=False)
    for (name, a), (_, b) in zip(
        plain.state_dict().items(), ours.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert (registered_snapshot("gemma-3-270m") / "model.safetensors").is_file()


def test_export_base_refuses_what_needs_no_export_and_foreign_folders(tmp_path, capsys):
    from lingualift.cli import main

    assert main(["export-base", f"out_dir={tmp_path / 'x'}", "model=google/gemma-3-270m"]) == 2
    assert "needs no export" in capsys.readouterr().err
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(models, "_convert_embedded", convert_tiny_embedded)
        assert main(["export-base", f"out_dir={foreign}"]) == 2
    assert "did not write" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_lm_eval_hf_with_peft_on_the_exported_base_matches_lingualift(machine_a, tmp_path):
    pytest.importorskip("lm_eval")
    from lingualift.evaluation.loading import load_for_eval
    from lingualift.evaluation.mcq import evaluate_mcq, load_mcq

    from .evaluation.helpers import lm_eval_loglikelihoods

    root, adapter, _ = machine_a
    data, _, theirs = lm_eval_loglikelihoods(
        tmp_path, "hf", f"pretrained={root / 'exported'},peft={adapter},dtype=float32"
    )
    model, tokenizer, _ = load_for_eval(EMBEDDED, str(adapter))
    samples = evaluate_mcq(model, tokenizer, load_mcq(data), progress=False)
    for s in samples:
        assert s.loglikelihoods == pytest.approx(theirs[s.id], abs=1e-5)


def test_lm_eval_steered_on_the_exported_base_matches_the_shift(machine_a, tmp_path):
    pytest.importorskip("lm_eval")
    from lingualift.evaluation.loading import shifcon_apply
    from lingualift.evaluation.mcq import evaluate_mcq, load_mcq
    from lingualift.shifcon import ShifCon, compute_language_vectors
    from lingualift.shifcon.export import export_steered

    from .evaluation.helpers import lm_eval_loglikelihoods

    root = machine_a[0]
    model, tokenizer = models.load_causal_lm(EMBEDDED)
    texts = {"en": ["In the beginning.", "Hello there."], "sw": ["Hapo mwanzo.", "Habari yako."]}
    vectors = compute_language_vectors(
        model, tokenizer, texts, base_model=EMBEDDED, subspace_rank=0, progress=False
    )
    shifcon = ShifCon(vectors, 1, 3)
    export_steered(shifcon, tmp_path / "steered")
    manifest = json.loads((tmp_path / "steered" / "steered.json").read_text())
    identity = base_identity(EMBEDDED)
    assert manifest["base_model"] == identity.name_or_path
    assert manifest["revision"] == identity.revision and manifest["base_spec"] == EMBEDDED
    assert manifest["base_weights"]["gguf_sha256"] == identity.weights["gguf_sha256"]
    steer = tmp_path / "steered" / "sw.pt"
    data, _, theirs = lm_eval_loglikelihoods(
        tmp_path, "steered", f"pretrained={root / 'exported'},steer_path={steer},dtype=float32"
    )
    samples = evaluate_mcq(
        model, tokenizer, load_mcq(data), apply=shifcon_apply(shifcon, model), progress=False
    )
    for s in samples:
        assert s.loglikelihoods == pytest.approx(theirs[s.id], abs=1e-5)


def test_unknown_embedded_name_is_one_sentence():
    with pytest.raises(LingualiftError, match="embedded:gemma-3-270m"):
        base_identity("embedded:llama-9000")
