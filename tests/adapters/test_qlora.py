"""Half-precision and quantized bases: LoRA stays float32, QLoRA trains, stores and evaluates, and
its adapter loads unchanged on the unquantized base."""

import json

import pytest
import torch

from lingualift.adapters import AdapterStore
from lingualift.adapters.data import Example
from lingualift.adapters.trainer import LoraTrainer
from lingualift.evaluation.loading import load_for_eval
from lingualift.evaluation.perplexity import perplexity
from lingualift.models import base_precision, load_causal_lm
from lingualift.placement import ModelSettings
from lingualift.training import LoraSettings, TrainingArgs
from tests.helpers import needs_bitsandbytes

TEXTS = [f"habari ya asubuhi rafiki yangu {i}" for i in range(8)]


def _trainer(model, tokenizer, tmp_path, **args):
    trainer = LoraTrainer(
        model,
        tokenizer,
        TrainingArgs(max_steps=3, batch_size=2, max_length=32, lr=1e-2, report_to="none", **args),
        LoraSettings(r=4),
        run_dir=tmp_path / "run",
    )
    trainer.load_data([Example(id=str(i), kind="text", text=t) for i, t in enumerate(TEXTS)])
    return trainer


def test_lora_on_a_bf16_base_stays_float32_and_autocasts(tiny_model_dir, tmp_path):
    model, tokenizer = load_causal_lm(str(tiny_model_dir), dtype="bf16")
    trainer = _trainer(model, tokenizer, tmp_path, precision="auto")
    trainable = [p for p in trainer.model.parameters() if p.requires_grad]
    assert trainable and {p.dtype for p in trainable} == {torch.float32}
    frozen = {p.dtype for p in trainer.model.parameters() if not p.requires_grad}
    assert frozen == {torch.bfloat16}
    assert trainer.loop.precision == "bf16"  # auto follows the weights
    loss = trainer.train_step(trainer.micro_batches(0))["loss"]
    assert loss == loss  # finite, not NaN


def test_precision_auto_is_no_autocast_for_float32(tiny_model_dir, tmp_path):
    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    assert _trainer(model, tokenizer, tmp_path, precision="auto").loop.precision == "fp32"


@needs_bitsandbytes()
@pytest.mark.parametrize("quantization", ["nf4", "int8"])
def test_qlora_trains_stores_evaluates_and_loads_on_the_unquantized_base(
    tiny_model_dir, tmp_path, quantization
):
    settings = ModelSettings(model=str(tiny_model_dir), quantization=quantization)
    model, tokenizer = load_causal_lm(settings)
    layer = type(model.model.layers[0].self_attn.q_proj).__name__
    assert layer == {"nf4": "Linear4bit", "int8": "Linear8bitLt"}[quantization]
    trainer = _trainer(model, tokenizer, tmp_path)
    trainable = [p for p in trainer.model.parameters() if p.requires_grad]
    assert {p.dtype for p in trainable} == {torch.float32}
    losses = [trainer.train_step(trainer.micro_batches(step))["loss"] for step in range(3)]
    assert losses[-1] < losses[0]

    # The card records how the base was held while training (the helper the card calls).
    precision = base_precision(trainer.model)
    assert precision["quantization"] == quantization
    store = AdapterStore(tmp_path / "store")
    version = store.save("sw", trainer.model, card={"base_precision": precision})
    card = json.loads((version.path / "card.json").read_text())
    assert card["base_precision"]["quantization"] == quantization

    # Evaluated on the quantized base (one adapter stays unmerged there) ...
    quantized, tok, _ = load_for_eval(settings, str(version.path))
    assert type(quantized).__name__.startswith("PeftModel")
    on_quantized = perplexity(quantized, tok, TEXTS[:2]).perplexity
    # ... and loaded unchanged on the unquantized base, with the same LoRA weights.
    plain, tok, _ = load_for_eval(str(tiny_model_dir), str(version.path), merge_adapters=False)
    saved = {n: p for n, p in trainer.model.named_parameters() if "lora_" in n}
    loaded = {n: p for n, p in plain.named_parameters() if "lora_" in n}
    assert saved.keys() == loaded.keys()
    for name, value in saved.items():
        assert torch.equal(value.detach().cpu(), loaded[name].detach().cpu()), name
    on_plain = perplexity(plain, tok, TEXTS[:2]).perplexity
    assert abs(on_quantized - on_plain) / on_plain < 0.1  # a tiny model quantizes gently


@needs_bitsandbytes()
def test_several_adapters_are_not_merged_into_a_quantized_base(tiny_model_dir, tmp_path):
    from peft import get_peft_model

    from lingualift.errors import LingualiftError

    model, _ = load_causal_lm(str(tiny_model_dir))
    folder = tmp_path / "adapter"
    get_peft_model(model, LoraSettings(r=2).peft_config()).save_pretrained(folder)
    settings = ModelSettings(model=str(tiny_model_dir), quantization="nf4")
    with pytest.raises(LingualiftError, match="quantized base"):
        load_for_eval(settings, f"{folder}+{folder}")


@needs_bitsandbytes()
@pytest.mark.parametrize("quantization", ["nf4", "int8"])
def test_stacked_multi_lora_runs_over_a_quantized_base_as_pefts_path_does(
    tiny_model_dir, tmp_path, quantization, caplog
):
    """The server's mixed-language batches: every row on its own adapter, over bitsandbytes'
    4-/8-bit layers, gathered in one stacked product per layer (no fallback)."""
    import logging

    from peft import LoraConfig, get_peft_model

    from lingualift.adapters import base_model_signature
    from lingualift.adapters.registry import AdapterRegistry

    store = AdapterStore(tmp_path / "store")
    for seed, lang in enumerate(["sw", "fr"]):
        model, _ = load_causal_lm(str(tiny_model_dir))
        torch.manual_seed(seed)
        config = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
        peft_model = get_peft_model(model, config)
        store.save(lang, peft_model, card={"base_model": base_model_signature(peft_model)})
    settings = ModelSettings(model=str(tiny_model_dir), quantization=quantization)
    model, tokenizer = load_causal_lm(settings)
    registry = AdapterRegistry(model, store)
    ids = tokenizer(["habari", "bonjour rafiki", "hello"], return_tensors="pt", padding=True)
    rows = [registry.current("sw"), registry.current("fr"), None]
    with torch.inference_mode(), caplog.at_level(logging.WARNING):
        with registry.batch(rows) as extra:
            assert extra == {}  # stacked, not PEFT's per-adapter loop
            stacked = registry.model(**ids).logits
        expected = registry.model(**ids, adapter_names=["sw@v1", "fr@v1", "__base__"]).logits
        with registry.batch([None] * 3):
            base = registry.model(**ids).logits
    assert "PEFT's per-adapter path" not in caplog.text
    torch.testing.assert_close(stacked, expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(stacked[0], base[0])  # the adapters do change the rows
