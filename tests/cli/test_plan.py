"""``lingualift plan``: one JSON object (or a table) from the model's config alone."""

import json

from lingualift.cli import main


def test_plan_json_for_llama_8b_on_a_24gb_card(capsys):
    code = main(
        [
            "plan",
            "model=meta-llama/Llama-3.1-8B",
            "dtype=bf16",
            "quantization=nf4",
            "batch_size=2",
            "max_length=2048",
            "lora.r=16",
            "device=cuda",
            "device_memory=24GB",
            "json=true",
        ]
    )
    assert code == 0
    plan = json.loads(capsys.readouterr().out)  # one JSON object, nothing else on stdout
    assert plan["name"] == "Llama-3.1-8B" and plan["device_memory_bytes"] == 24 * 10**9
    assert plan["placement"]["device"] == "cuda:0" and plan["placement"]["quantization"] == "nf4"
    verbs = plan["verbs"]
    assert set(verbs) == {"train", "eval", "serve", "shifcon"}
    for verb in verbs.values():
        assert verb["total_bytes"] >= verb["weights_bytes"] > 0 and isinstance(verb["fits"], bool)
    assert verbs["train"]["fits"] and verbs["train"]["gradient_checkpointing"]
    assert verbs["serve"]["concurrent_sequences"] > 0
    # r=16 on every linear layer: 32 x 16 x (sum of in + out) = 41,943,040 float32 parameters
    assert verbs["train"]["lora_bytes"] == 4 * 41_943_040


def test_plan_table_for_a_local_model(tiny_model_dir, capsys):
    assert main(["plan", f"model={tiny_model_dir}", "verbs=[train,eval]", "max_length=64"]) == 0
    out = capsys.readouterr().out
    assert "float32 on cpu" in out
    for row in ("weights", "LoRA", "optimizer", "activations", "checkpointing", "total"):
        assert row in out
