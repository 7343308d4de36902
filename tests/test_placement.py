"""ModelSettings: one set of precision and placement settings, resolved from the machine."""

import dataclasses

import pytest
import torch

from lingualift.config import field_docs, load_config
from lingualift.errors import LingualiftError
from lingualift.placement import DeviceCapabilities, ModelSettings

CPU_ONLY = DeviceCapabilities(cpu_memory_bytes=8 * 10**9, bitsandbytes=True)
A100 = DeviceCapabilities(
    cuda_devices=2,
    bf16=(True, True),
    compute_capability=((8, 0), (8, 0)),
    memory_bytes=(80 * 10**9, 80 * 10**9),
    flash_attn=True,
    bitsandbytes=True,
)
T4 = DeviceCapabilities(
    cuda_devices=1, bf16=(False,), compute_capability=((7, 5),), memory_bytes=(16 * 10**9,)
)


def test_auto_resolves_to_cpu_float32_sdpa_on_this_machine():
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    placement = ModelSettings().resolve()
    assert (placement.device, placement.dtype, placement.attn_implementation) == (
        "cpu",
        "float32",
        "sdpa",
    )
    assert placement.quantization == "none" and placement.trust_remote_code is False


def test_auto_on_a_bf16_gpu_is_cuda0_bf16_and_flash_attention_when_installed():
    placement = ModelSettings().resolve(A100)
    assert (placement.device, placement.dtype, placement.attn_implementation) == (
        "cuda:0",
        "bfloat16",
        "flash_attention_2",
    )
    no_flash = dataclasses.replace(A100, flash_attn=False)
    assert ModelSettings().resolve(no_flash).attn_implementation == "sdpa"
    # FlashAttention-2 runs in half precision only.
    assert ModelSettings(dtype="fp32").resolve(A100).attn_implementation == "sdpa"


def test_auto_on_an_older_gpu_is_float16_and_sdpa():
    placement = ModelSettings().resolve(T4)
    assert (placement.dtype, placement.attn_implementation) == ("float16", "sdpa")


def test_aliases_are_normalised():
    settings = ModelSettings(dtype="bf16", device="CUDA:1", quantization="NF4")
    assert (settings.dtype, settings.device, settings.quantization) == ("bfloat16", "cuda:1", "nf4")
    assert ModelSettings(dtype="fp16").dtype == "float16"
    assert ModelSettings(dtype="torch.float32").dtype == "float32"
    assert ModelSettings(device=None).device == "auto"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dtype": "int4"}, "dtype must be auto, float32"),
        ({"device": "tpu"}, "device must be auto, cpu, cuda or cuda:N"),
        ({"attn_implementation": "flash"}, "attn_implementation must be one of"),
        ({"quantization": "gptq"}, "quantization must be none, nf4 or int8"),
        ({"model": " "}, "model must name a base model"),
        ({"model": 3}, "model must name a base model"),
    ],
)
def test_bad_values_fail_in_one_sentence(kwargs, message):
    with pytest.raises(LingualiftError, match=message):
        ModelSettings(**kwargs)


@pytest.mark.parametrize(
    "kwargs, caps, message",
    [
        ({"device": "cuda"}, CPU_ONLY, "no CUDA GPU; use device=auto or device=cpu"),
        ({"device": "cuda:2"}, A100, "has 2 CUDA GPU"),
        ({"quantization": "nf4"}, DeviceCapabilities(), "pip install 'lingualift\\[qlora\\]'"),
        ({"attn_implementation": "flash_attention_2"}, CPU_ONLY, "needs the flash-attn package"),
        ({"attn_implementation": "flash_attention_2"}, T4, "compute capability 8.0"),
    ],
)
def test_what_the_machine_cannot_do_is_refused(kwargs, caps, message):
    with pytest.raises(LingualiftError, match=message):
        ModelSettings(**kwargs).resolve(caps)


def test_explicit_choices_are_kept():
    placement = ModelSettings(
        dtype="float16", device="cuda:1", attn_implementation="eager"
    ).resolve(A100)
    assert (placement.device, placement.dtype, placement.attn_implementation) == (
        "cuda:1",
        "float16",
        "eager",
    )
    assert ModelSettings(dtype="bf16").resolve(CPU_ONLY).dtype == "bfloat16"


def test_from_pretrained_arguments_load_safely_in_the_dtype_and_on_the_device():
    cpu = ModelSettings().resolve(CPU_ONLY).from_pretrained_kwargs()
    assert cpu["dtype"] is torch.float32
    assert cpu["trust_remote_code"] is False and cpu["use_safetensors"] is True
    assert "device_map" not in cpu and "quantization_config" not in cpu
    gpu = ModelSettings(trust_remote_code=True).resolve(A100).from_pretrained_kwargs()
    assert gpu["device_map"] == {"": "cuda:0"} and gpu["dtype"] is torch.bfloat16
    assert gpu["trust_remote_code"] is True
    assert gpu["attn_implementation"] == "flash_attention_2"


def test_nf4_follows_qlora_and_int8_is_llm_int8():
    nf4 = ModelSettings(quantization="nf4").resolve(A100).quantization_config()
    assert nf4.load_in_4bit and nf4.bnb_4bit_quant_type == "nf4"
    assert nf4.bnb_4bit_use_double_quant and nf4.bnb_4bit_compute_dtype is torch.bfloat16
    int8 = ModelSettings(quantization="int8").resolve(A100).quantization_config()
    assert int8.load_in_8bit and not int8.load_in_4bit
    assert ModelSettings().resolve(A100).quantization_config() is None


@dataclasses.dataclass
class FakeJobConfig(ModelSettings):
    """A job config that inherits the settings (as every verb's config will)."""

    lang: str = "sw"
    """Target language."""

    def __post_init__(self) -> None:
        super().__post_init__()


def test_a_job_config_takes_the_settings_as_flat_keys():
    config = load_config(
        FakeJobConfig,
        overrides=["model=meta-llama/Llama-3.1-8B", "dtype=bf16", "quantization=nf4", "lang=hi"],
    )
    assert (config.model, config.dtype, config.quantization, config.lang) == (
        "meta-llama/Llama-3.1-8B",
        "bfloat16",
        "nf4",
        "hi",
    )
    assert config.model_settings() == ModelSettings(
        model="meta-llama/Llama-3.1-8B", dtype="bf16", quantization="nf4"
    )
    assert config.model_settings("other/model").model == "other/model"
    docs = field_docs(FakeJobConfig)
    assert {f.name for f in dataclasses.fields(ModelSettings)} <= set(docs)
    with pytest.raises(LingualiftError, match="dtype must be"):
        load_config(FakeJobConfig, overrides=["dtype=int4"])


def test_a_model_left_to_the_job_must_be_set_before_loading():
    settings = ModelSettings(model=None)  # e.g. "the ShifCon folder's base", decided later
    with pytest.raises(LingualiftError, match="No base model to load"):
        settings.resolve(CPU_ONLY)
    assert settings.model_settings("google/gemma-3-270m").resolve(CPU_ONLY).model == (
        "google/gemma-3-270m"
    )


def test_each_launched_process_takes_its_own_gpu_and_fsdp_loads_on_the_cpu(monkeypatch):
    two = DeviceCapabilities(
        cuda_devices=2, bf16=(True, True), compute_capability=((8, 0), (8, 0)),
        memory_bytes=(80 * 10**9,) * 2, bitsandbytes=True,
    )  # fmt: skip
    monkeypatch.setenv("LOCAL_RANK", "1")  # the second process of `accelerate launch`
    assert ModelSettings().resolve(two).device == "cuda:1"
    assert ModelSettings(device="cuda").resolve(two).device == "cuda:1"
    assert ModelSettings(device="cuda:0").resolve(two).device == "cuda:0"  # as asked
    kwargs = ModelSettings(quantization="nf4").resolve(two).from_pretrained_kwargs()
    assert kwargs["device_map"] == {"": "cuda:1"}
    assert kwargs["quantization_config"].bnb_4bit_quant_storage == torch.uint8
    # Under FSDP the weights load on the CPU and FSDP moves each shard; packed nf4 weights are
    # stored in the compute dtype (one dtype per flat parameter), as PEFT's FSDP guide does.
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    kwargs = ModelSettings(quantization="nf4").resolve(two).from_pretrained_kwargs()
    assert "device_map" not in kwargs
    assert kwargs["quantization_config"].bnb_4bit_quant_storage == torch.bfloat16
