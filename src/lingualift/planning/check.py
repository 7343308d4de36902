"""The pre-load check: does a verb fit the device, and if not, what would (one sentence)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from lingualift.errors import LingualiftError
from lingualift.placement import (
    DeviceCapabilities,
    ModelSettings,
    Placement,
    as_model_settings,
    parse_bytes,
)
from lingualift.planning.estimate import USABLE_FRACTION, MemoryPlanner, VerbPlan
from lingualift.planning.shape import ModelShape, model_shape
from lingualift.training import LoraSettings, TrainingArgs

logger = logging.getLogger(__name__)


SPECIAL_TOKENS_ALLOWANCE = 16
"""Tokens a prompt may gain beyond its text: BOS/EOS and other special tokens."""
CHAT_TEMPLATE_ALLOWANCE = 256
"""Tokens a chat template may add around a prompt (role headers, a default system prompt)."""


def prompt_tokens_bound(prompts: Sequence[str], chat: bool = False) -> int:
    """An upper bound on the tokens of the longest prompt, known before any tokenizer loads.

    Byte-level BPE (Llama 3, Qwen2) and byte-fallback SentencePiece (Gemma, Llama 2)
    tokenizers never make more tokens than the text has UTF-8 bytes; special tokens and a
    chat template add a few more. Generation plans keep only the last position's logits,
    so planning for this bound costs little (KV cache and one block's transient).
    """
    longest = max((len(p.encode("utf-8")) for p in prompts), default=0)
    return longest + SPECIAL_TOKENS_ALLOWANCE + (CHAT_TEMPLATE_ALLOWANCE if chat else 0)


def gigabytes(value: int) -> str:
    """A byte count as people say it: ``61 GB``, ``4.2 GB``, ``0.35 GB``."""
    gb = value / 1e9
    if gb >= 10:
        return f"{gb:.0f} GB"
    return f"{gb:.1f} GB" if gb >= 1 else f"{gb:.2f} GB"


def planning_capabilities(
    settings: ModelSettings, device_memory: int | None, detected: DeviceCapabilities | None
) -> DeviceCapabilities:
    """The machine to plan for: this one, or a GPU of ``device_memory`` that it lacks.

    ``lingualift plan device=cuda device_memory=24GB`` on a laptop plans for a 24 GB
    GPU (bf16, Ampere or newer); planning never needs bitsandbytes installed.
    """
    caps = detected if detected is not None else DeviceCapabilities.detect()
    if settings.device.startswith("cuda") and caps.cuda_devices == 0:
        index = int(settings.device.split(":")[1]) if ":" in settings.device else 0
        caps = dataclasses.replace(
            caps,
            cuda_devices=index + 1,
            bf16=(True,) * (index + 1),
            compute_capability=((8, 0),) * (index + 1),
            memory_bytes=(device_memory or 0,) * (index + 1),
        )
    return dataclasses.replace(caps, bitsandbytes=True)


@dataclasses.dataclass
class FitDecision:
    """What :func:`check_fits` decided: the plan to run, and whether to checkpoint."""

    plan: VerbPlan
    gradient_checkpointing: bool
    """Whether the job must run with gradient checkpointing (turned on by the check when only
    that makes it fit, and left as asked otherwise)."""
    device_memory: int | None
    """The device memory the plan was checked against (None: unknown, not checked)."""
    placement: Placement


def _describe_job(shape: ModelShape, placement: Placement, batch: int, length: int) -> str:
    dtype = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}[placement.dtype]
    if placement.quantization != "none":
        dtype = f"{placement.quantization} ({dtype} compute)"
    return f"{shape.name} in {dtype} with batch {batch} x {length}"


def check_fits(
    verb: str,
    model: ModelSettings | str,
    *,
    batch_size: int,
    max_length: int,
    lora: LoraSettings | None = None,
    precision: str = "auto",
    gradient_checkpointing: bool | None = None,
    device_memory: int | str | None = None,
    capabilities: DeviceCapabilities | None = None,
    shape: ModelShape | None = None,
    full_logits: bool = True,
) -> FitDecision:
    """Check, before anything loads, that ``verb`` fits the device; refuse in one sentence if not.

    ``gradient_checkpointing=None`` lets the check decide: off when the job fits without
    it, on (logged) when only that makes it fit. When nothing about the job as given fits,
    the refusal names what would (nf4 with checkpointing, a smaller batch) and its size.
    ``device_memory`` defaults to the settings' own ``device_memory``, else the resolved
    device's memory (a GPU's total, the CPU's available RAM); when that is unknown the plan
    is returned unchecked. ``full_logits=False`` plans an evaluation that keeps only a few
    positions' logits (answer letters, hidden states, generation) instead of every one.
    """
    settings = as_model_settings(model)
    memory = parse_bytes(device_memory if device_memory is not None else settings.device_memory)
    given = memory is not None
    caps = capabilities if capabilities is not None else DeviceCapabilities.detect()
    placement = settings.resolve(caps)
    if memory is None:
        memory = caps.memory_of(placement.device) or None
    shape = shape or model_shape(settings)
    planner = MemoryPlanner(shape, placement, lora, precision)
    training = verb in ("train", "shifcon")
    checkpointing = bool(gradient_checkpointing)
    plan = planner.plan(verb, batch_size, max_length, checkpointing, memory, full_logits)
    if memory is None or plan.fits:
        return FitDecision(plan, checkpointing, memory, placement)
    if training and gradient_checkpointing is None:
        checkpointed = planner.plan(verb, batch_size, max_length, True, memory, full_logits)
        if checkpointed.fits:
            logger.warning(
                "%s needs about %s without gradient checkpointing on %s of %s; turning "
                "gradient checkpointing on (about %s).",
                _describe_job(shape, placement, batch_size, max_length),
                gigabytes(plan.total_bytes),
                placement.device,
                gigabytes(memory),
                gigabytes(checkpointed.total_bytes),
            )
            return FitDecision(checkpointed, True, memory, placement)
    raise LingualiftError(
        _refusal(
            verb,
            shape,
            placement,
            planner,
            plan,
            memory,
            gradient_checkpointing,
            full_logits,
            given,
        )
    )


def check_training_args(
    verb: str,
    settings: ModelSettings,
    args: TrainingArgs,
    lora: LoraSettings | None = None,
    **kwargs: Any,
) -> TrainingArgs:
    """:func:`check_fits` for a training run of ``args``; returns ``args`` with
    ``gradient_checkpointing`` decided (``None``, auto, becomes on or off as the plan needs).

    What every training verb runs before it loads its base model (``verb``: ``train``, or
    ``shifcon`` for ShifCon training). ``kwargs`` go to :func:`check_fits` (tests pass
    ``capabilities``).
    """
    decision = check_fits(
        verb,
        settings,
        batch_size=args.batch_size,
        max_length=args.max_length,
        lora=lora,
        precision=args.precision,
        gradient_checkpointing=args.gradient_checkpointing,
        **kwargs,
    )
    return dataclasses.replace(args, gradient_checkpointing=decision.gradient_checkpointing)


def _refusal(
    verb: str,
    shape: ModelShape,
    placement: Placement,
    planner: MemoryPlanner,
    plan: VerbPlan,
    memory: int,
    gradient_checkpointing: bool | None,
    full_logits: bool = True,
    given_memory: bool = False,
) -> str:
    """One sentence: what the job needs, on what, and what would fit instead."""
    training = verb in ("train", "shifcon")
    batch, length = plan.batch_size, plan.max_length
    may_checkpoint = training  # a suggestion names gradient_checkpointing=true explicitly
    options: list[str] = []

    def fits(candidate: VerbPlan) -> bool:
        return candidate.total_bytes <= memory * USABLE_FRACTION

    if training and gradient_checkpointing is False:
        on = planner.plan(verb, batch, length, True, memory, full_logits)
        if fits(on):
            options.append(f"gradient_checkpointing=true (about {gigabytes(on.total_bytes)})")
    # Quantizing first (it keeps the batch), then the largest batch that fits as it is.
    variants = [(planner, "")]
    if placement.quantization == "none":
        nf4 = dataclasses.replace(placement, quantization="nf4")
        variants.insert(0, (MemoryPlanner(shape, nf4, planner.lora, planner.precision), "nf4"))
    for variant, quantization in variants:
        if len(options) >= 2:
            break
        size = batch if quantization else batch // 2
        while size >= 1:
            candidate = variant.plan(verb, size, length, may_checkpoint, memory, full_logits)
            if fits(candidate):
                ckpt = ["gradient_checkpointing=true"] if may_checkpoint else []
                smaller = []
                if size != batch:
                    accum = f" (grad_accum={batch // size} keeps the batch)" if training else ""
                    smaller = [f"batch_size={size}{accum}"]
                parts = (
                    [f"quantization={quantization}", *ckpt, *smaller]
                    if quantization
                    else [*smaller, *ckpt]
                )
                rest = f" with {' and '.join(parts[1:])}" if len(parts) > 1 else ""
                options.append(f"{parts[0]}{rest} (about {gigabytes(candidate.total_bytes)})")
                break
            size //= 2
    where = "card"
    if placement.device == "cpu":
        where = "machine (device_memory)" if given_memory else "machine (available memory)"
    head = (
        f"{_describe_job(shape, placement, batch, length)} needs about "
        f"{gigabytes(plan.total_bytes)} to {verb} on a {gigabytes(memory)} {where}"
    )
    if options:
        return f"{head}; use {' or '.join(options)}."
    return (
        f"{head}, and neither nf4 nor a batch of 1 fits; use a device with more memory, "
        "several GPUs (recipes/accelerate) or a shorter max_length."
    )
