"""The memory planner: the users' model shapes, the parts it adds up, the pre-load check, and its
estimates against memory measured on this machine."""

import logging

import pytest
import torch

from lingualift.errors import LingualiftError
from lingualift.placement import DeviceCapabilities, ModelSettings
from lingualift.planning import (
    MemoryPlanner,
    ModelShape,
    PlanConfig,
    check_fits,
    model_shape,
    parse_bytes,
    plan_memory,
    planning_capabilities,
)
from lingualift.testing import save_tiny_causal_lm, tiny_causal_lm
from lingualift.training import LoraSettings

LLAMA_8B = "meta-llama/Llama-3.1-8B"
GPU_24GB = planning_capabilities(ModelSettings(device="cuda"), 24 * 10**9, DeviceCapabilities())


@pytest.fixture(scope="module")
def llama_8b():
    return model_shape(LLAMA_8B)


def _planner(shape, **settings):
    placement = ModelSettings(**{"device": "cuda", **settings}).resolve(GPU_24GB)
    return MemoryPlanner(shape, placement, LoraSettings())


def test_committed_configs_have_the_real_parameter_counts(llama_8b):
    assert llama_8b.total_params == 8_030_261_248
    assert model_shape("Qwen/Qwen2.5-7B").total_params == 7_615_616_512
    assert model_shape("microsoft/Phi-4-mini-instruct").total_params == 3_836_021_760
    assert (llama_8b.num_layers, llama_8b.num_kv_heads, llama_8b.head_dim) == (32, 8, 128)


def test_llama_8b_weights_bf16_and_nf4(llama_8b):
    bf16 = _planner(llama_8b, dtype="bf16").plan("eval", 1, 16).weights_bytes
    assert abs(bf16 - 16.06e9) / 16.06e9 < 0.15
    nf4 = _planner(llama_8b, dtype="bf16", quantization="nf4")
    assert nf4.plan("eval", 1, 16).weights_bytes < 0.4 * bf16
    assert nf4.plan("serve", 1, 16).weights_bytes < 0.4 * bf16
    # Training a quantized base keeps embeddings, head and norms in float32 (PEFT's k-bit
    # preparation), which for Llama's 2 x 525M-parameter embedding and head is 4.2 GB.
    assert nf4.plan("train", 1, 16).weights_bytes < 0.5 * bf16


def test_kv_cache_and_optimizer_follow_the_architecture(llama_8b):
    planner = _planner(llama_8b, dtype="bf16")
    serve = planner.plan("serve", 8, 2048, device_memory=80 * 10**9)
    # 2 (K and V) x 8 kv heads x 128 x 2 bytes x 2048 tokens x 32 layers
    assert serve.kv_cache_per_sequence_bytes == 2 * 8 * 128 * 2 * 2048 * 32
    assert serve.concurrent_sequences > 100
    train = planner.plan("train", 8, 2048, checkpointing=False)
    assert train.optimizer_bytes == 2 * train.lora_bytes == 2 * train.gradients_bytes
    checkpointed = planner.plan("train", 8, 2048, checkpointing=True)
    assert checkpointed.activations_bytes < train.activations_bytes / 4
    # The loss over a 128k vocabulary: three float32 copies of 16k tokens x 128k.
    assert planner.loss_bytes(8 * 2048) == 3 * 8 * 2048 * 128_256 * 4


def test_sliding_window_layers_cache_only_their_window():
    model, _ = tiny_causal_lm("gemma3", hidden_size=64, num_layers=6)
    shape = ModelShape.from_model(model, "gemma3")
    assert shape.window_per_layer == (128, 128, 128, 128, 128, None)
    planner = MemoryPlanner(shape, ModelSettings().resolve(DeviceCapabilities()))
    per_token = 2 * shape.num_kv_heads * shape.head_dim * 4
    assert planner.kv_cache_per_sequence(1000) == per_token * (5 * 128 + 1000)


@pytest.mark.parametrize("arch", ["llama", "gemma3", "qwen2", "phi3"])
@pytest.mark.parametrize("targets", ["all-linear", "q_proj,v_proj"])
def test_lora_parameters_match_peft(arch, targets):
    from peft import get_peft_model

    model, _ = tiny_causal_lm(arch, hidden_size=64, num_layers=2)
    shape = ModelShape.from_model(model, arch)
    if arch == "phi3" and targets != "all-linear":
        targets = "qkv_proj,o_proj"
    lora = LoraSettings(r=4, target_modules=targets)
    planner = MemoryPlanner(shape, ModelSettings().resolve(DeviceCapabilities()), lora)
    peft_model = get_peft_model(model, lora.peft_config())
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert planner.lora_params() == trainable


def test_unquantized_weights_are_exact(tiny_model_dir):
    from lingualift.models import load_causal_lm

    model, _ = load_causal_lm(str(tiny_model_dir), dtype="bf16")
    shape = model_shape(str(tiny_model_dir))
    planner = MemoryPlanner(shape, ModelSettings(dtype="bf16").resolve(DeviceCapabilities()))
    assert planner.weights_bytes() == sum(p.numel() * p.element_size() for p in model.parameters())


def test_nf4_weights_match_a_quantized_load(tmp_path):
    pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed (lingualift[qlora])")
    from lingualift.models import load_causal_lm

    folder = save_tiny_causal_lm(tmp_path / "m", "llama", hidden_size=256, num_layers=4)
    settings = ModelSettings(model=str(folder), quantization="nf4")
    model = load_causal_lm(settings, with_tokenizer=False)
    measured = sum(p.untyped_storage().nbytes() for p in model.parameters())
    measured += sum(
        p.quant_state.absmax.numel() * p.quant_state.absmax.element_size()
        for p in model.parameters()
        if getattr(p, "quant_state", None) is not None
    )
    planner = MemoryPlanner(model_shape(settings), settings.resolve())
    assert abs(planner.weights_bytes() - measured) / measured < 0.15, (
        planner.weights_bytes(),
        measured,
    )


def test_check_fits_refuses_in_one_sentence_that_says_what_fits(llama_8b):
    settings = ModelSettings(model=LLAMA_8B, dtype="bf16", device="cuda")
    with pytest.raises(LingualiftError) as err:
        check_fits(
            "train", settings, batch_size=8, max_length=2048, device_memory="24GB",
            capabilities=GPU_24GB, shape=llama_8b,
        )  # fmt: skip
    message = str(err.value)
    assert message.startswith("Llama-3.1-8B in bf16 with batch 8 x 2048 needs about ")
    assert "on a 24 GB card; use quantization=nf4 with gradient_checkpointing=true" in message
    assert "batch_size=" in message and "\n" not in message and message.endswith(".")
    with pytest.raises(LingualiftError, match="to eval on a 24 GB card; use"):
        check_fits(
            "eval", settings, batch_size=8, max_length=2048, device_memory="24GB",
            capabilities=GPU_24GB, shape=llama_8b,
        )  # fmt: skip


def test_check_fits_turns_checkpointing_on_when_only_that_fits(llama_8b, caplog):
    settings = ModelSettings(model=LLAMA_8B, dtype="bf16", device="cuda", quantization="nf4")
    kwargs = dict(batch_size=1, max_length=2048, device_memory="24GB", capabilities=GPU_24GB)
    with caplog.at_level(logging.WARNING, logger="lingualift.planning"):
        decision = check_fits("train", settings, shape=llama_8b, **kwargs)
    assert decision.gradient_checkpointing and decision.plan.fits
    assert "turning gradient checkpointing on" in caplog.text
    # Asked not to, the check refuses and names the setting that would fit.
    with pytest.raises(LingualiftError, match="use gradient_checkpointing=true"):
        check_fits("train", settings, shape=llama_8b, gradient_checkpointing=False, **kwargs)
    # What fits as it is runs as it is.
    decision = check_fits("serve", settings, shape=llama_8b, **kwargs)
    assert decision.plan.fits and decision.gradient_checkpointing is False


def test_unknown_memory_is_not_checked(tiny_model_dir):
    decision = check_fits(
        "train", str(tiny_model_dir), batch_size=2, max_length=32, capabilities=DeviceCapabilities()
    )
    assert decision.device_memory is None and decision.plan.fits is None


@pytest.mark.parametrize(
    "text, expected",
    [("24GB", 24 * 10**9), ("80 GiB", 80 * 2**30), ("512mb", 512 * 10**6), ("1.5g", 1_500_000_000)],
)
def test_sizes_parse(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["lots", "-3GB", "0"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(LingualiftError, match="device_memory must be"):
        parse_bytes(text)


def test_plan_for_a_gpu_this_machine_lacks(llama_8b):
    config = PlanConfig(
        model=LLAMA_8B, dtype="bf16", device="cuda", quantization="nf4", device_memory="24GB",
        batch_size=2, max_length=2048,
    )  # fmt: skip
    plan = plan_memory(config, capabilities=DeviceCapabilities())
    assert plan.placement.device == "cuda:0" and plan.device_memory == 24 * 10**9
    as_json = plan.to_dict()
    assert set(as_json["verbs"]) == {"train", "eval", "serve", "shifcon"}
    for verb in as_json["verbs"].values():
        assert {"weights_bytes", "total_bytes", "fits"} <= set(verb)
    assert as_json["verbs"]["train"]["gradient_checkpointing"] is True  # auto: needed to fit


# -- the estimate against measured peak memory -------------------------------------------------


@pytest.fixture(scope="module")
def measured_model(tmp_path_factory):
    """A random model big enough for resident-memory deltas to mean something (~90 MB)."""
    folder = tmp_path_factory.mktemp("plan-rss") / "m"
    return save_tiny_causal_lm(
        folder, "llama", hidden_size=512, num_layers=2, num_heads=8, num_kv_heads=4,
        intermediate_size=1536, vocab_size=32000,
    )  # fmt: skip


def test_estimates_are_within_15_percent_of_measured_peak_memory(measured_model):
    """Peak resident memory of a real LoRA training step and a perplexity pass, measured in a
    clean subprocess (lingualift.memcheck), against the planner's figures."""
    from lingualift.memcheck import measure

    batch, length = 2, 256
    measured = measure(str(measured_model), ("eval", "train"), batch, length)
    settings = ModelSettings(model=str(measured_model), device="cpu")
    planner = MemoryPlanner(model_shape(settings), settings.resolve(DeviceCapabilities()))
    train = planner.plan("train", batch, length)
    evaluation = planner.plan("eval", batch, length)

    def close(estimate, actual):
        return abs(estimate - actual) / actual < 0.15

    assert close(train.weights_bytes, measured.weights_bytes), (train, measured)
    step = train.activations_bytes + train.gradients_bytes  # the optimizer state exists already
    assert close(step, measured.train_peak_bytes), (step, measured)
    assert close(evaluation.activations_bytes, measured.eval_peak_bytes), (evaluation, measured)
    assert measured.train_peak_bytes > 100e6  # big enough to mean something


def test_the_planned_model_is_what_loads():
    """ModelShape reads real module sizes: the meta model's parameter count is the loaded one's."""
    model, _ = tiny_causal_lm("qwen2", hidden_size=64, num_layers=3)
    shape = ModelShape.from_model(model, "qwen2")
    assert shape.total_params == sum(p.numel() for p in model.parameters())
    linear = sum(
        m.weight.numel() for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear)
    )
    assert shape.linear_weight_params == linear
