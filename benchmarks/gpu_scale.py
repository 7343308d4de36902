"""Benchmark: lingualift at the users' scale on one GPU, on random models of the real shapes.

For Llama-3.1-8B, Qwen2.5-7B and Phi-4-mini (their public config.json, committed under
``src/lingualift/planning/configs/``; random weights, nothing downloaded), per precision
(bf16, and nf4 QLoRA computing in bf16):

- **LoRA training** (r=8 on every linear layer, lingualift's ``LoraTrainer``, the ``train``
  verb's step): tokens/s and peak GPU memory at batch 8 x 2048, with and without gradient
  checkpointing, against the memory planner's estimate for the same job
  (``MemoryPlanner.plan("train", ...)``). A run the GPU cannot hold is recorded as
  out-of-memory, beside what the planner said;
- **ShifCon hooks**: the forward pass of batch 8 x 512 with the shift applied against without
  (``ShifCon.apply``), median of interleaved rounds;
- **multi-LoRA decoding**: batch 32 (prompts of 128 tokens, 32 new tokens, greedy), every row on
  one adapter against rows spread over 4 adapters, stacked (``StackedLora``, what the server
  does) and through PEFT's ``adapter_names`` loop.

The nf4 base is quantized in place with bitsandbytes (``Params4bit``: the kernels
``from_pretrained(quantization_config=...)`` uses), then gets PEFT's k-bit preparation in the
trainer as a loaded one does. A time budget (``--budget-s``, default 450 s) keeps the run under
8 minutes on one H100: what does not fit is recorded as skipped. Writes one JSON file.

    python benchmarks/gpu_scale.py                                  # one GPU, writes
                                                                    # docs/gpu_scale.json
    python benchmarks/gpu_scale.py --models llama-3.1-8b --precisions nf4
    python benchmarks/gpu_scale.py --tiny --out /tmp/gpu_scale_tiny.json   # CPU, tiny shapes
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from lingualift.atomic import atomic_write_text
from lingualift.placement import DeviceCapabilities, ModelSettings
from lingualift.planning import PLAN_CONFIGS, MemoryPlanner, ModelShape
from lingualift.training import LoraSettings, TrainingArgs

MODELS = {"llama-3.1-8b": "Llama-3.1-8B", "qwen2.5-7b": "Qwen2.5-7B", "phi-4-mini": "Phi-4-mini"}
PRECISIONS = ("bf16", "nf4")
FULL = dict(batch=8, length=2048, steps=3, hook_batch=8, hook_length=512, hook_rounds=5,
            decode_batch=32, prompt=128, new_tokens=32, adapters=4)  # fmt: skip
TINY = dict(batch=2, length=64, steps=1, hook_batch=2, hook_length=32, hook_rounds=2,
            decode_batch=4, prompt=8, new_tokens=2, adapters=4)  # fmt: skip
TINY_SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=512)  # fmt: skip


# -- models ---------------------------------------------------------------------------------


def model_config(name: str, tiny: bool) -> Any:
    """The committed config of ``name``, shrunk to a few thousand parameters with ``tiny``."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(PLAN_CONFIGS / name), trust_remote_code=False)
    if tiny:
        for key, value in TINY_SHAPE.items():
            setattr(config, key, value)
        # Long-RoPE factors are sized for the real head dim: plain RoPE at the tiny one; the
        # special tokens' ids must lie in the tiny vocabulary.
        config.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}
        config.pad_token_id, config.bos_token_id, config.eos_token_id = 0, 1, 2
    config.use_cache = True
    return config


def build_model(name: str, precision: str, device: str, tiny: bool) -> tuple[Any, ModelShape]:
    """A random-initialised model of ``name``'s shape on ``device``: bf16, or nf4 over bf16."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(model_config(name, tiny), dtype=torch.bfloat16)
    shape = ModelShape.from_model(model, MODELS[name])  # before quantizing: the linears' sizes
    if precision == "nf4":
        quantize_nf4(model, device)
    model.eval()
    return model, shape


def quantize_nf4(model: Any, device: str) -> None:
    """Replace every decoder linear layer by bitsandbytes' nf4 ``Linear4bit`` (double-quantized
    scales, bf16 compute), as ``from_pretrained`` with lingualift's nf4 setting loads it."""
    import bitsandbytes as bnb
    from transformers import BitsAndBytesConfig

    from lingualift.models import decoder_layers

    for layer in decoder_layers(model):
        for parent in list(layer.modules()):
            for child_name, child in list(parent.named_children()):
                if type(child) is not torch.nn.Linear:
                    continue
                quantized = bnb.nn.Linear4bit(
                    child.in_features, child.out_features, bias=child.bias is not None,
                    compute_dtype=torch.bfloat16, compress_statistics=True, quant_type="nf4",
                    device="meta",
                )  # fmt: skip
                weight = bnb.nn.Params4bit(
                    child.weight.data, requires_grad=False, compress_statistics=True,
                    quant_type="nf4",
                )  # fmt: skip
                quantized.weight = weight.to(device)  # quantizes on the move
                if child.bias is not None:
                    quantized.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
                setattr(parent, child_name, quantized)
                del child, weight
    model.is_loaded_in_4bit = True  # what PEFT's k-bit preparation and lingualift read
    model.config.quantization_config = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )  # fmt: skip
    _free()


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _peak_reset() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak() -> dict[str, int | None]:
    if not torch.cuda.is_available():
        return {"peak_allocated_bytes": None, "peak_reserved_bytes": None}
    return {
        "peak_allocated_bytes": int(torch.cuda.max_memory_allocated()),
        "peak_reserved_bytes": int(torch.cuda.max_memory_reserved()),
    }


# -- LoRA training --------------------------------------------------------------------------


def train_step(model: Any, shape: ModelShape, precision: str, checkpointing: bool, sizes: dict,
               device: str, run_dir: Path) -> dict[str, Any]:  # fmt: skip
    """Steps of lingualift's LoRA trainer on random tokens; tokens/s, peak memory, the plan."""
    from lingualift.adapters.trainer import LoraTrainer

    batch, length = sizes["batch"], sizes["length"]
    lora = LoraSettings(r=8, alpha=16, dropout=0.05)
    args = TrainingArgs(
        max_steps=sizes["steps"] + 1, batch_size=batch, max_length=length, lr=1e-4,
        gradient_checkpointing=checkpointing, precision="auto", report_to="none",
    )  # fmt: skip
    settings = ModelSettings(
        model=shape.name, dtype="bf16", device=device,
        quantization="nf4" if precision == "nf4" else "none",
    )  # fmt: skip
    capabilities = DeviceCapabilities.detect()
    if not capabilities.bitsandbytes and precision == "nf4":
        raise RuntimeError("bitsandbytes is not installed")
    plan = MemoryPlanner(shape, settings.resolve(capabilities), lora, "auto")
    planned = plan.plan("train", batch, length, checkpointing)
    result: dict[str, Any] = {
        "batch_size": batch,
        "max_length": length,
        "gradient_checkpointing": checkpointing,
        "planned_total_bytes": planned.total_bytes,
        "planned_without_overhead_bytes": planned.total_bytes - planned.overhead_bytes,
        "planned_activations_bytes": planned.activations_bytes,
    }
    generator = torch.Generator().manual_seed(0)
    rows = [
        {"input_ids": ids, "labels": ids}
        for ids in torch.randint(3, shape.vocab_size, (batch * (sizes["steps"] + 1), length),
                                 generator=generator).tolist()
    ]  # fmt: skip
    tokenizer = SimpleNamespace(pad_token_id=0, eos_token="</s>", pad_token="</s>")
    _peak_reset()
    trainer = None
    try:
        trainer = LoraTrainer(model, tokenizer, args, lora, run_dir=run_dir)
        trainer.train_rows = rows
        trainer.train_step(trainer.micro_batches(0))  # warm-up (kernels, allocator)
        _sync()
        began = time.perf_counter()
        for step in range(1, sizes["steps"] + 1):
            out = trainer.train_step(trainer.micro_batches(step))
        _sync()
        seconds = time.perf_counter() - began
        result.update(
            tokens_per_s=round(batch * length * sizes["steps"] / seconds, 1),
            seconds_per_step=round(seconds / sizes["steps"], 3),
            loss=round(float(out["loss"]), 4),
            out_of_memory=False,
            **_peak(),
        )
        if result["peak_allocated_bytes"]:
            measured = result["peak_allocated_bytes"]
            result["plan_error"] = round(
                (result["planned_without_overhead_bytes"] - measured) / measured, 4
            )
    except torch.OutOfMemoryError as exc:
        result.update(out_of_memory=True, error=str(exc).splitlines()[0][:200], **_peak())
    finally:
        if trainer is not None:
            trainer.model.unload()  # the base without LoRA layers, for the next run
        del trainer
        _free()
    return result


# -- ShifCon hooks --------------------------------------------------------------------------


def shifcon_overhead(model: Any, shape: ModelShape, sizes: dict, device: str) -> dict[str, Any]:
    """Median forward time with the shift applied over without (interleaved rounds)."""
    from lingualift.shifcon import LanguageVectors, ShifCon

    layers = shape.num_layers
    means = {lang: torch.randn(layers + 1, shape.hidden_size) for lang in ("en", "sw")}
    vectors = LanguageVectors(
        means=means, counts={}, tokens={}, base_model=shape.name, model_type=shape.model_type,
        num_layers=layers, hidden_size=shape.hidden_size,
    )  # fmt: skip
    # The published Llama-2-7B area [12, 15] of 32 layers, scaled to this depth.
    a = max(1, layers * 12 // 32)
    b = min(layers - 1, max(a + 1, layers * 15 // 32))
    shifcon = ShifCon(vectors, a, b, dominant="en")
    ids = torch.randint(3, shape.vocab_size, (sizes["hook_batch"], sizes["hook_length"]))
    ids = ids.to(device)
    times: dict[str, list[float]] = {"plain": [], "shifted": []}
    with torch.inference_mode():
        model(input_ids=ids, use_cache=False)  # warm-up
        for _ in range(sizes["hook_rounds"]):
            for variant in ("plain", "shifted"):
                context = shifcon.apply(model, "sw") if variant == "shifted" else None
                with context or contextlib.nullcontext():
                    _sync()
                    began = time.perf_counter()
                    model(input_ids=ids, use_cache=False)
                    _sync()
                times[variant].append(time.perf_counter() - began)
    plain, shifted = (statistics.median(times[k]) for k in ("plain", "shifted"))
    return {
        "batch_size": sizes["hook_batch"],
        "length": sizes["hook_length"],
        "area": [shifcon.a, shifcon.b],
        "plain_ms": round(plain * 1000, 2),
        "shifted_ms": round(shifted * 1000, 2),
        "overhead": round(shifted / plain - 1, 4),
    }


# -- multi-LoRA decoding --------------------------------------------------------------------


def multilora_decoding(model: Any, shape: ModelShape, sizes: dict, device: str) -> dict[str, Any]:
    """Greedy decoding of one batch: one adapter for all rows vs four, stacked and PEFT's."""
    from peft import LoraConfig, get_peft_model

    from lingualift.adapters.multilora import StackedLora

    names = [f"lang{i}" for i in range(sizes["adapters"])]
    torch.manual_seed(0)
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
    peft_model = get_peft_model(model, config, adapter_name=names[0])
    for name in names[1:]:
        peft_model.add_adapter(name, config)
    peft_model.eval()
    rows = sizes["decode_batch"]
    ids = torch.randint(3, shape.vocab_size, (rows, sizes["prompt"])).to(device)
    mask = torch.ones_like(ids)
    spread = [names[i % len(names)] for i in range(rows)]
    new = sizes["new_tokens"]
    stacked = StackedLora(peft_model)
    result: dict[str, Any] = {"batch_size": rows, "prompt": sizes["prompt"], "new_tokens": new,
                              "adapters": len(names)}  # fmt: skip

    def decode(**extra: Any) -> float:
        _sync()
        began = time.perf_counter()
        peft_model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
            do_sample=False, pad_token_id=0, **extra,
        )  # fmt: skip
        _sync()
        return time.perf_counter() - began

    try:
        with torch.inference_mode():
            peft_model.set_adapter(names[0])
            decode()  # warm-up
            one = decode()
            with stacked.apply(spread):
                decode()
                mixed = decode()
            peft_loop = decode(adapter_names=spread)
        tokens = rows * new
        result.update(
            stacked_reason=stacked.reason,
            one_adapter_tokens_per_s=round(tokens / one, 1),
            four_adapters_stacked_tokens_per_s=round(tokens / mixed, 1),
            four_adapters_peft_tokens_per_s=round(tokens / peft_loop, 1),
            stacked_vs_one=round(one / mixed, 4),
            peft_vs_one=round(one / peft_loop, 4),
        )
    finally:
        peft_model.unload()
        _free()
    return result


# -- the run --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes on the CPU (a test)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--budget-s", type=float, default=450.0)
    parser.add_argument("--out", type=Path, default=Path("docs/gpu_scale.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    device = "cpu" if args.tiny else "cuda:0"
    if args.tiny:
        torch.set_num_threads(1)  # tiny shapes run fastest on one thread (the cores are shared)
    if not args.tiny and not torch.cuda.is_available():
        parser.error("no CUDA GPU here; run with --tiny to check the script on the CPU")
    sizes = TINY if args.tiny else FULL
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if not args.tiny else f"cpu ({platform.machine()})",
        "device_memory_bytes": (
            torch.cuda.get_device_properties(0).total_memory if not args.tiny else None
        ),
        "tiny": args.tiny,
        "torch": torch.__version__,
        "sizes": sizes,
        "budget_s": args.budget_s,
        "results": {},
    }

    def left() -> float:
        return args.budget_s - (time.perf_counter() - started)

    run_dir = Path(tempfile.mkdtemp(prefix="gpu-scale-"))
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        for precision in [p.strip() for p in args.precisions.split(",") if p.strip()]:
            entry: dict[str, Any] = report["results"].setdefault(name, {}).setdefault(precision, {})
            if left() <= 0:
                entry["skipped"] = "time budget spent"
                continue
            began = time.perf_counter()
            model, shape = build_model(name, precision, device, args.tiny)
            entry["build_seconds"] = round(time.perf_counter() - began, 1)
            entry["params"] = shape.total_params
            for checkpointing in (
                True,
                False,
            ):  # checkpointed first: it fits where the other may not
                key = "train_checkpointing" if checkpointing else "train_no_checkpointing"
                if left() <= 0:
                    entry[key] = {"skipped": "time budget spent"}
                    continue
                entry[key] = train_step(model, shape, precision, checkpointing, sizes, device,
                                        run_dir / f"{name}-{precision}-{key}")  # fmt: skip
                print(f"{name} {precision} {key}: {json.dumps(entry[key])}", flush=True)
            for key, measure in (("shifcon_hooks", shifcon_overhead),
                                 ("multilora_decoding", multilora_decoding)):  # fmt: skip
                if left() <= 0:
                    entry[key] = {"skipped": "time budget spent"}
                    continue
                try:
                    entry[key] = measure(model, shape, sizes, device)
                except torch.OutOfMemoryError as exc:
                    entry[key] = {"out_of_memory": True, "error": str(exc).splitlines()[0][:200]}
                    _free()
                print(f"{name} {precision} {key}: {json.dumps(entry[key])}", flush=True)
            del model
            _free()
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
