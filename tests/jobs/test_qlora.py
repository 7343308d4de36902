"""QLoRA through the verbs: ``quantization=nf4`` trains and stores (the card says so), updates
from a stored version (what an ECDA update does), evaluates, serves mixed-language batches and
runs ShifCon (vectors, hooks, training); the adapters load unchanged on the unquantized base."""

from __future__ import annotations

import json
import time

import pytest
import torch

from lingualift.training import TrainingArgs
from tests.helpers import needs_bitsandbytes, write_jsonl

pytestmark = needs_bitsandbytes()
TEXTS = [f"habari ya asubuhi rafiki yangu {i}" for i in range(12)]
STEPS = dict(max_steps=2, batch_size=4, max_length=32, lr=1e-2, report_to="none")


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_dir):
    """An nf4 adapter trained and stored by the train job (v1), and the data it used."""
    from lingualift.jobs.train import TrainConfig, run_train

    root = tmp_path_factory.mktemp("qlora")
    data = write_jsonl(root / "train.jsonl", [{"text": t, "lang": "sw"} for t in TEXTS])
    result = run_train(
        TrainConfig(
            lang="sw",
            model=str(tiny_model_dir),
            quantization="nf4",
            data=str(data),
            store=str(root / "store"),
            out_dir=str(root / "run"),
            train=TrainingArgs(**STEPS),
        )
    )
    return {"root": root, "data": data, "store": root / "store", "v1": result.adapter}


def test_train_stores_a_qlora_adapter_whose_card_records_the_quantization(world, tiny_model_dir):
    from lingualift.evaluation.loading import load_for_eval

    card = json.loads((world["v1"].path / "card.json").read_text())
    assert card["base_precision"] == {"dtype": "float32", "quantization": "nf4", "device": "cpu"}
    assert card["config"]["quantization"] == "nf4"
    assert card["config"]["train"]["gradient_checkpointing"] is False  # decided: it fits
    plain, _, _ = load_for_eval(str(tiny_model_dir), str(world["v1"].path), merge_adapters=False)
    assert type(plain.get_base_model().model.layers[0].self_attn.q_proj.base_layer).__name__ == (
        "Linear"  # the unquantized base takes the adapter unchanged
    )


def test_an_update_from_the_stored_version_on_the_quantized_base(world, tiny_model_dir):
    """What an ECDA update does: a fresh copy of the loaded (nf4) base trains from the parent
    version, and the gate scores each version beside the quantized weights (unmerged)."""
    from lingualift.adapters import AdapterStore
    from lingualift.jobs.train import TrainConfig, run_train
    from lingualift.placement import ModelSettings
    from lingualift.workflows.base import LoadedBase

    settings = ModelSettings(model=str(tiny_model_dir), quantization="nf4")
    base = LoadedBase(settings)
    fresh = base.fresh()
    assert fresh is not base.model and type(fresh.model.layers[0].mlp.up_proj).__name__ == (
        "Linear4bit"
    )
    result = run_train(
        TrainConfig(
            **settings.model_kwargs(),
            lang="sw",
            data=str(world["data"]),
            parent="current",
            store=str(world["store"]),
            out_dir=str(world["root"] / "update"),
            promote=False,
            train=TrainingArgs(**{**STEPS, "lr": 5e-3}),
        ),
        model=fresh,
        tokenizer=base.tokenizer,
    )
    card = AdapterStore(world["store"]).card("sw", result.adapter.version)
    assert card["parent"] == "sw/v1" and card["base_precision"]["quantization"] == "nf4"
    scored = base.with_adapter(result.adapter.path)
    assert type(scored).__name__.startswith("PeftModel")  # not merged into 4-bit weights
    with torch.inference_mode():
        ids = base.tokenizer(TEXTS[:2], return_tensors="pt", padding=True)
        assert torch.isfinite(scored(**ids).logits).all()


def test_eval_runs_on_a_quantized_base_with_the_adapter(world, tiny_model_dir, tmp_path):
    from lingualift.jobs.eval import EvalConfig, run_eval

    results = run_eval(
        EvalConfig(
            task="perplexity",
            data=str(world["data"]),
            model=str(tiny_model_dir),
            quantization="nf4",
            adapters=str(world["v1"].path),
            out_dir=str(tmp_path / "results"),
            batch_size=4,
        ),
        print_table=False,
    )
    assert results["results"]["perplexity_sw"]["perplexity,none"] > 1
    assert "quantization=nf4" in results["config"]["model_args"]
    assert results["config"]["device"] == "cpu"
    assert results["config"]["lingualift_config"]["quantization"] == "nf4"


def test_serve_answers_and_hot_reloads_over_a_quantized_base(world, tiny_model_dir, tmp_path):
    from fastapi.testclient import TestClient

    from lingualift.adapters import AdapterStore
    from lingualift.jobs.serve import ServeConfig, build_server

    store = AdapterStore(tmp_path / "store")  # this test promotes: a store of its own
    card = {"base_model": AdapterStore(world["store"]).card("sw", 1)["base_model"]}
    store.save("sw", source=world["v1"].path, card=card)
    config = ServeConfig(
        model=str(tiny_model_dir),
        model_name="tiny",
        quantization="nf4",
        store=str(store.root),
        log_traffic=False,
        batch_wait_ms=50,
        reload_interval_s=0.05,
    )
    parts = build_server(config)
    assert type(parts.registry.model.get_base_model().model.layers[0].mlp.up_proj).__name__ == (
        "Linear4bit"
    )
    with TestClient(parts.app) as client:

        def ask(model: str) -> str | None:
            reply = client.post(
                "/v1/completions", json={"model": model, "prompt": "habari", "max_tokens": 3}
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["choices"][0]["text"] is not None
            return reply.headers.get("x-lingualift-adapter")

        assert ask("sw") == "sw/v1" and ask("tiny") == "base"
        # A promotion reaches the running server: the new version loads beside the nf4 weights.
        store.save("sw", source=world["v1"].path, card=card, promote=True)
        deadline = time.monotonic() + 20
        while parts.registry.snapshot().get("sw") != "sw/v2" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ask("sw") == "sw/v2"


def test_shifcon_vectors_hooks_and_training_on_a_quantized_base(tmp_path, tiny_model_dir):
    from lingualift.jobs.shifcon import LayersConfig, VectorsConfig, run_layers, run_vectors
    from lingualift.jobs.shifcon_train import ShifConTrainConfig, run_shifcon_train
    from lingualift.models import load_causal_lm
    from lingualift.placement import ModelSettings
    from lingualift.shifcon import ShifCon

    rows = [{"text": t, "lang": "sw"} for t in TEXTS] + [
        {"text": f"good morning my friend {i}", "lang": "en"} for i in range(12)
    ]
    records = write_jsonl(tmp_path / "records.jsonl", rows)
    folder = tmp_path / "shifcon"
    run_vectors(
        VectorsConfig(
            model=str(tiny_model_dir),
            quantization="nf4",
            data=str(records),
            langs=["sw"],
            out_dir=str(folder),
            per_language=8,
            batch_size=4,
            max_length=16,
            subspace_rank=2,
        ),
        progress=False,
    )
    run_layers(LayersConfig(shifcon=str(folder)))
    shifcon = ShifCon.load(folder)

    model, tokenizer = load_causal_lm(ModelSettings(model=str(tiny_model_dir), quantization="nf4"))
    ids = tokenizer(TEXTS[:2], return_tensors="pt", padding=True)
    with torch.inference_mode():
        plain = model(**ids).logits
        with shifcon.apply(model, "sw"):
            shifted = model(**ids).logits
    assert not torch.allclose(plain, shifted)  # the hooks shift the quantized model too

    pairs = write_jsonl(
        tmp_path / "pairs.jsonl",
        [{"text": t, "lang": "sw", "meta": {"parallel_text": f"hello {t}"}} for t in TEXTS],
    )
    metrics = run_shifcon_train(
        ShifConTrainConfig(
            shifcon=str(folder),
            quantization="nf4",
            data=str(pairs),
            out_dir=str(tmp_path / "t"),
            train=TrainingArgs(**STEPS),
        ),
        progress=False,
    )
    assert metrics["steps"] == 2 and metrics["final_loss"] == metrics["final_loss"]
    card = json.loads((tmp_path / "t" / "adapter" / "card.json").read_text())
    assert card["base_precision"]["quantization"] == "nf4"


def test_full_fine_tuning_of_a_quantized_base_is_refused(tmp_path):
    from lingualift.errors import LingualiftError
    from lingualift.jobs.shifcon_train import ShifConTrainConfig

    with pytest.raises(LingualiftError, match="use method=lora .QLoRA. or quantization=none"):
        ShifConTrainConfig(method="full", quantization="nf4")
