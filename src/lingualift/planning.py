"""The memory planner: what each verb needs on a device, from the model's config alone.

Nothing is loaded: :func:`model_shape` builds the model on PyTorch's meta device
(:func:`lingualift.models.load_config_only`) and reads its shapes, or uses a config
committed under ``lingualift/plan_configs/`` for the users' big models (Llama-3.1-8B,
Qwen2.5-7B, Phi-4-mini), so planning works offline. :class:`MemoryPlanner` turns a shape,
a resolved :class:`~lingualift.placement.Placement`, the LoRA settings and the batch into
a :class:`VerbPlan` per verb:

- **weights**: every parameter in the load dtype; with ``nf4`` the decoder's linear
  weights take 4 bits plus double-quantized block scales, with ``int8`` one byte plus a
  float32 scale per row; for training, PEFT's k-bit preparation keeps the unquantized rest
  (embeddings, head, norms) in float32.
- **LoRA, gradients, optimizer**: LoRA parameters in float32 (``r * (in + out)`` per
  targeted linear), their gradients, and AdamW's two float32 moments.
- **activations**, counted as what autograd keeps for the backward pass of a LoRA step with
  the base frozen: each RMSNorm's float32 input; each LoRA layer's (dropped-out) input and
  dropout mask; the attention's query, key, value and output (keys and values repeated to
  every head, as transformers does for padded batches) and its log-sum-exp; the gated MLP's
  gate, activation and up projections; and the loss over the whole vocabulary (logits in
  float32, their log-softmax and its gradient: three ``tokens x vocab x 4`` bytes, which
  dominates small models with big vocabularies such as Gemma 3's 262k). With gradient
  checkpointing only each layer's input stays, plus one layer recomputed at a time.
- **serve**: the KV cache per sequence (sliding-window layers keep their window) and how
  many concurrent sequences fit beside the weights.

:func:`check_fits` is the pre-load check every verb can call: it returns the plan (turning
gradient checkpointing on when only that makes the job fit) or refuses in one sentence that
says what would fit. The estimates are checked against measured peak memory in
``tests/test_planning.py`` and ``benchmarks/plan_accuracy.py`` (docs/scale.md).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lingualift.errors import LingualiftError, require
from lingualift.placement import (
    DeviceCapabilities,
    ModelSettings,
    Placement,
    as_model_settings,
)
from lingualift.training import LoraSettings

logger = logging.getLogger(__name__)

VERBS = ("train", "eval", "serve", "shifcon")
PLAN_CONFIGS = Path(__file__).parent / "plan_configs"
BUNDLED_CONFIGS = {
    "meta-llama/Llama-3.1-8B": ("llama-3.1-8b", "Llama-3.1-8B"),
    "meta-llama/Llama-3.1-8B-Instruct": ("llama-3.1-8b", "Llama-3.1-8B-Instruct"),
    "Qwen/Qwen2.5-7B": ("qwen2.5-7b", "Qwen2.5-7B"),
    "Qwen/Qwen2.5-7B-Instruct": ("qwen2.5-7b", "Qwen2.5-7B-Instruct"),
    "microsoft/Phi-4-mini-instruct": ("phi-4-mini", "Phi-4-mini"),
}
"""Hub ids whose public config.json ships with lingualift (shapes only, no weights)."""

NF4_BYTES_PER_WEIGHT = 0.5 + 1 / 64 + 4 / (64 * 256)
"""4 bits per weight, an 8-bit scale per block of 64 and a float32 scale per 256 blocks
(bitsandbytes' nf4 with double quantization)."""
CUDA_OVERHEAD_BYTES = 1_000_000_000
"""Allowance on a GPU for the CUDA context, cuBLAS workspaces and kernels' scratch space."""
USABLE_FRACTION = 0.95
"""Share of a device's memory a plan may fill (the rest absorbs allocator fragmentation)."""
CE_COPIES = 3
"""float32 ``tokens x vocab`` tensors alive at once around a training loss: the log-softmax
that cross-entropy keeps, its gradient and the gradient of the logits."""
EVAL_CE_COPIES = 3
"""float32 ``tokens x vocab`` tensors alive at once in an evaluation's loss (the upcast
logits, cross-entropy's contiguous input and its log-softmax)."""


# -- the model's shape -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LinearShape:
    """One kind of linear layer of a decoder block (e.g. ``q_proj``), repeated in every block."""

    name: str
    in_features: int
    out_features: int


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """The shape facts the planner needs, read from a model built on the meta device."""

    name: str
    """How messages name the model (e.g. Llama-3.1-8B)."""
    model_type: str
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    total_params: int
    """Every parameter once (tied embeddings counted once)."""
    linear_weight_params: int
    """Weights of the decoder blocks' linear layers (what bitsandbytes quantizes)."""
    linear_rows: int
    """Output rows of those linear layers (int8 keeps a float32 scale per row)."""
    linears: tuple[LinearShape, ...]
    """The linear layers of one decoder block."""
    norm_widths: tuple[int, ...]
    """Per decoder block: the width of each RMSNorm's input (per token)."""
    window_per_layer: tuple[int | None, ...]
    """Per decoder block: its sliding-window length, None for full attention."""
    gated_mlp: bool = True

    @classmethod
    def from_model(cls, model: Any, name: str) -> ModelShape:
        """Read the shape of ``model`` (normally on the meta device)."""
        import torch

        from lingualift.models import decoder_layers

        config = model.config.get_text_config()
        layers = decoder_layers(model)
        num_heads = int(config.num_attention_heads)
        hidden = int(config.hidden_size)
        head_dim = int(getattr(config, "head_dim", None) or hidden // num_heads)
        num_kv = int(getattr(config, "num_key_value_heads", None) or num_heads)
        linears, norms, gated = [], [], False
        for module_name, module in layers[0].named_modules():
            short = module_name.rsplit(".", 1)[-1]
            if isinstance(module, torch.nn.Linear):
                linears.append(LinearShape(short, module.in_features, module.out_features))
                gated = gated or short in ("gate_proj", "gate_up_proj", "w1")
            elif (
                "norm" in type(module).__name__.lower()
                and getattr(module, "weight", None) is not None
            ):
                norms.append(
                    _norm_width(short, module.weight.numel(), hidden, num_heads, num_kv, head_dim)
                )
        linear_weights = linear_rows = 0
        for layer in layers:
            for module in layer.modules():
                if isinstance(module, torch.nn.Linear):
                    linear_weights += module.weight.numel()
                    linear_rows += module.out_features
        window = getattr(config, "sliding_window", None)
        types = getattr(config, "layer_types", None) or []
        use_window = bool(getattr(config, "use_sliding_window", True))
        windows = tuple(
            int(window)
            if window and use_window and i < len(types) and "sliding" in str(types[i])
            else None
            for i in range(len(layers))
        )
        return cls(
            name=name,
            model_type=str(config.model_type),
            num_layers=len(layers),
            hidden_size=hidden,
            intermediate_size=int(getattr(config, "intermediate_size", 4 * hidden)),
            num_heads=num_heads,
            num_kv_heads=num_kv,
            head_dim=head_dim,
            vocab_size=int(config.vocab_size),
            total_params=sum(p.numel() for p in model.parameters()),
            linear_weight_params=linear_weights,
            linear_rows=linear_rows,
            linears=tuple(linears),
            norm_widths=tuple(norms),
            window_per_layer=windows,
            gated_mlp=gated,
        )


def _norm_width(name: str, size: int, hidden: int, heads: int, kv_heads: int, head_dim: int) -> int:
    """Elements per token a norm sees: per-head query/key norms run over every head."""
    if size == head_dim and size != hidden:
        return (kv_heads if name.startswith("k") else heads) * head_dim
    return size


def bundled_config(spec: str) -> tuple[Path, str] | None:
    """The committed config folder and display name of a hub id lingualift ships a config for."""
    found = BUNDLED_CONFIGS.get(str(spec).strip())
    return (PLAN_CONFIGS / found[0], found[1]) if found else None


def model_shape(model: str | ModelSettings) -> ModelShape:
    """The shape of a model spec, from its config only (no weights are read)."""
    from lingualift.models import load_config_only

    settings = as_model_settings(model)
    bundled = bundled_config(settings.model)
    if bundled is not None:
        folder, name = bundled
        skeleton = load_config_only(str(folder), trust_remote_code=False)
    else:
        skeleton = load_config_only(settings)
        name = Path(settings.model.rstrip("/")).name or settings.model
        name = name.split(":", 1)[-1]
    return ModelShape.from_model(skeleton, name)


# -- the plan --------------------------------------------------------------------------------


@dataclasses.dataclass
class VerbPlan:
    """The memory one verb needs, by part, in bytes."""

    verb: str
    batch_size: int
    max_length: int
    weights_bytes: int
    """The base model's weights as this verb holds them."""
    lora_bytes: int = 0
    """LoRA parameters (float32)."""
    gradients_bytes: int = 0
    """Gradients of the trainable parameters (float32)."""
    optimizer_bytes: int = 0
    """AdamW state: two float32 moments per trainable parameter."""
    activations_bytes: int = 0
    """Peak activation memory as planned (with checkpointing when it is on)."""
    activations_full_bytes: int = 0
    """Peak activations without gradient checkpointing."""
    activations_checkpointed_bytes: int | None = None
    """Peak activations with gradient checkpointing (training verbs only)."""
    gradient_checkpointing: bool | None = None
    """Whether the plan checkpoints (None: not a training verb)."""
    kv_cache_per_sequence_bytes: int | None = None
    """KV cache of one sequence of max_length tokens (serve)."""
    concurrent_sequences: int | None = None
    """How many max_length sequences fit in the KV cache beside the rest (serve, when the
    device's memory is known)."""
    overhead_bytes: int = 0
    """CUDA context and workspaces on a GPU, nothing on the CPU."""
    fits: bool | None = None
    """Whether total_bytes fits the device (None when its memory is unknown)."""

    @property
    def total_bytes(self) -> int:
        return (
            self.weights_bytes
            + self.lora_bytes
            + self.gradients_bytes
            + self.optimizer_bytes
            + self.activations_bytes
            + self.overhead_bytes
        )

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "total_bytes": self.total_bytes}


class MemoryPlanner:
    """Per-verb memory of a model shape under one placement, LoRA setting and autocast."""

    def __init__(
        self,
        shape: ModelShape,
        placement: Placement,
        lora: LoraSettings | None = None,
        precision: str = "auto",
    ) -> None:
        require(
            precision in ("auto", "fp32", "bf16", "fp16"),
            f"precision must be auto, fp32, bf16 or fp16; got {precision!r}.",
        )
        self.shape = shape
        self.placement = placement
        self.lora = lora or LoraSettings()
        self.precision = precision

    # -- parts -----------------------------------------------------------------------------

    @property
    def autocast(self) -> str:
        """The training autocast, resolved as :func:`lingualift.training.autocast_precision`."""
        if self.precision != "auto":
            return self.precision
        dtype = self.placement.dtype
        if dtype == "bfloat16":
            return "bf16"
        if dtype == "float16" and self.placement.device != "cpu":
            return "fp16"
        return "fp32"

    def weights_bytes(self, training: bool = False) -> int:
        """The base weights; training a quantized base keeps the unquantized rest in float32."""
        shape, placement = self.shape, self.placement
        if placement.quantization == "none":
            return shape.total_params * placement.bytes_per_param
        rest = shape.total_params - shape.linear_weight_params
        rest_bytes = rest * (4 if training else placement.bytes_per_param)
        if placement.quantization == "nf4":
            return math.ceil(shape.linear_weight_params * NF4_BYTES_PER_WEIGHT) + rest_bytes
        return shape.linear_weight_params + 4 * shape.linear_rows + rest_bytes

    def targeted(self) -> list[LinearShape]:
        """The linear layers of a block that get a LoRA adapter."""
        targets = self.lora.target_modules
        if targets == "all-linear":
            return list(self.shape.linears)
        wanted = {t.strip() for t in targets.split(",") if t.strip()}
        return [linear for linear in self.shape.linears if linear.name in wanted]

    def lora_params(self) -> int:
        per_layer = sum(
            self.lora.r * (lin.in_features + lin.out_features) for lin in self.targeted()
        )
        return per_layer * self.shape.num_layers

    def _activation_bytes(self) -> tuple[int, int]:
        """(bytes per element of the activations, of what LoRA layers keep) in training."""
        half = self.autocast in ("bf16", "fp16")
        if half:
            return 2, 2
        if self.placement.quantization != "none":
            return 4, 4  # k-bit preparation runs the residual stream in float32
        return self.placement.bytes_per_param, 4

    def layer_activation_bytes(self, tokens: int) -> int:
        """What one decoder block keeps for the backward pass of a LoRA step."""
        shape = self.shape
        act, lora_bytes = self._activation_bytes()
        dropout = self.lora.dropout > 0
        # CUDA's fused dropout keeps a boolean mask; the CPU's keeps the scaled float noise.
        mask_bytes = 1 if self.placement.device != "cpu" else lora_bytes
        norms = sum(shape.norm_widths) * 4  # RMSNorm upcasts its input to float32 and keeps it
        lora = 0
        seen_inputs: set[int] = set()
        for linear in self.targeted():
            if dropout:  # the dropped-out copy (LoRA's dtype) and the dropout mask
                lora += linear.in_features * (lora_bytes + mask_bytes)
            elif lora_bytes != act or linear.in_features not in seen_inputs:
                lora += linear.in_features * lora_bytes
                seen_inputs.add(linear.in_features)
            lora += self.lora.r * lora_bytes  # the rank-r activation lora_B keeps
        heads, d = shape.num_heads, shape.head_dim
        attention = d * 4 * heads * act + heads * 4  # q, k, v repeated to every head, out; lse
        mlp = (3 if shape.gated_mlp else 2) * shape.intermediate_size * act
        return tokens * (norms + lora + attention + mlp)

    def loss_bytes(self, tokens: int) -> int:
        """The training loss over the whole vocabulary (float32 copies alive at once)."""
        return CE_COPIES * tokens * self.shape.vocab_size * 4

    def train_activations(self, tokens: int, checkpointing: bool) -> int:
        shape = self.shape
        act, _ = self._activation_bytes()
        per_layer = self.layer_activation_bytes(tokens)
        final_norm = tokens * shape.hidden_size * 4
        if not checkpointing:
            return shape.num_layers * per_layer + final_norm + self.loss_bytes(tokens)
        # Each block keeps only its input; the backward pass recomputes one block at a time,
        # while the gradient flowing down (float32) and the block's own gradients are alive.
        inputs = shape.num_layers * tokens * shape.hidden_size * act
        recompute = per_layer + 2 * tokens * shape.hidden_size * 4
        return inputs + final_norm + max(self.loss_bytes(tokens), recompute)

    def inference_activations(self, tokens: int, full_logits: bool) -> int:
        """The peak transient of a forward pass without gradients."""
        shape = self.shape
        act = self.placement.bytes_per_param
        hidden = tokens * shape.hidden_size * act * 3  # residual, normed input, block output
        attention = tokens * shape.head_dim * (2 * shape.num_heads + 2 * shape.num_kv_heads) * act
        mlp = tokens * shape.intermediate_size * act * (3 if shape.gated_mlp else 2)
        block = hidden + max(attention, mlp)
        if not full_logits:
            return block
        # Scorers upcast the logits at once (the half-precision ones are dropped) and the
        # cross-entropy adds its log-softmax and a contiguous copy of its input.
        logits = EVAL_CE_COPIES * tokens * shape.vocab_size * 4
        return max(block, logits)

    def kv_cache_per_sequence(self, length: int) -> int:
        shape = self.shape
        per_token = 2 * shape.num_kv_heads * shape.head_dim * self.placement.bytes_per_param
        return sum(
            per_token * (min(length, window) if window else length)
            for window in shape.window_per_layer
        )

    # -- verbs -----------------------------------------------------------------------------

    def _overhead(self) -> int:
        return CUDA_OVERHEAD_BYTES if self.placement.device != "cpu" else 0

    def train(
        self, batch_size: int, max_length: int, checkpointing: bool, verb: str = "train"
    ) -> VerbPlan:
        """A LoRA training step of ``batch_size`` sequences of ``max_length`` tokens."""
        tokens = batch_size * max_length
        lora = self.lora_params()
        full = self.train_activations(tokens, checkpointing=False)
        checkpointed = self.train_activations(tokens, checkpointing=True)
        extra_full = extra_ckpt = 0
        if verb == "shifcon":
            # The English side of each pair runs the blocks too (no loss over the vocabulary).
            extra_full = self.shape.num_layers * self.layer_activation_bytes(tokens)
            act, _ = self._activation_bytes()
            extra_ckpt = self.shape.num_layers * tokens * self.shape.hidden_size * act
        return VerbPlan(
            verb=verb,
            batch_size=batch_size,
            max_length=max_length,
            weights_bytes=self.weights_bytes(training=True),
            lora_bytes=lora * 4,
            gradients_bytes=lora * 4,
            optimizer_bytes=lora * 8,
            activations_bytes=(checkpointed + extra_ckpt) if checkpointing else (full + extra_full),
            activations_full_bytes=full + extra_full,
            activations_checkpointed_bytes=checkpointed + extra_ckpt,
            gradient_checkpointing=checkpointing,
            overhead_bytes=self._overhead(),
        )

    def eval(self, batch_size: int, max_length: int) -> VerbPlan:
        """Scoring ``batch_size`` sequences of ``max_length`` tokens (perplexity: full logits)."""
        activations = self.inference_activations(batch_size * max_length, full_logits=True)
        return VerbPlan(
            verb="eval",
            batch_size=batch_size,
            max_length=max_length,
            weights_bytes=self.weights_bytes(),
            lora_bytes=self.lora_params() * 4,
            activations_bytes=activations,
            activations_full_bytes=activations,
            overhead_bytes=self._overhead(),
        )

    def serve(self, batch_size: int, max_length: int, device_memory: int | None = None) -> VerbPlan:
        """Decoding ``batch_size`` sequences of up to ``max_length`` tokens with a KV cache."""
        prefill = self.inference_activations(batch_size * max_length, full_logits=False)
        per_sequence = self.kv_cache_per_sequence(max_length)
        plan = VerbPlan(
            verb="serve",
            batch_size=batch_size,
            max_length=max_length,
            weights_bytes=self.weights_bytes(),
            lora_bytes=self.lora_params() * 4,
            activations_bytes=prefill + batch_size * per_sequence,
            activations_full_bytes=prefill + batch_size * per_sequence,
            kv_cache_per_sequence_bytes=per_sequence,
            overhead_bytes=self._overhead(),
        )
        if device_memory:
            free = int(device_memory * USABLE_FRACTION) - (
                plan.total_bytes - batch_size * per_sequence
            )
            plan.concurrent_sequences = max(0, free // per_sequence) if per_sequence else None
        return plan

    def plan(
        self,
        verb: str,
        batch_size: int,
        max_length: int,
        checkpointing: bool = False,
        device_memory: int | None = None,
    ) -> VerbPlan:
        require(verb in VERBS, f"Unknown verb {verb!r} to plan; use {', '.join(VERBS)}.")
        if verb in ("train", "shifcon"):
            plan = self.train(batch_size, max_length, checkpointing, verb=verb)
        elif verb == "eval":
            plan = self.eval(batch_size, max_length)
        else:
            plan = self.serve(batch_size, max_length, device_memory)
        if device_memory:
            plan.fits = plan.total_bytes <= device_memory * USABLE_FRACTION
        return plan


# -- the pre-load check ----------------------------------------------------------------------


def parse_bytes(value: str | int | float | None) -> int | None:
    """``24GB``, ``80 GiB``, ``512MB`` or a number of bytes; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        require(value > 0, f"device_memory must be positive, got {value}.")
        return int(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]i?b?|b)?\s*", str(value), re.IGNORECASE)
    require(
        match is not None,
        f"device_memory must be a size like 24GB, 80GiB or 512MB; got {value!r}.",
    )
    number, unit = float(match.group(1)), (match.group(2) or "b").lower()
    powers = {"k": 1, "m": 2, "g": 3, "t": 4}
    scale = 1 if unit == "b" else (1024 if "i" in unit else 1000) ** powers[unit[0]]
    require(number > 0, f"device_memory must be positive, got {value!r}.")
    return int(number * scale)


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
) -> FitDecision:
    """Check, before anything loads, that ``verb`` fits the device; refuse in one sentence if not.

    ``gradient_checkpointing=None`` lets the check decide: off when the job fits without
    it, on (logged) when only that makes it fit. When nothing about the job as given fits,
    the refusal names what would (nf4 with checkpointing, a smaller batch) and its size.
    ``device_memory`` defaults to the resolved device's memory (a GPU's total, the CPU's
    available RAM); when that is unknown the plan is returned unchecked.
    """
    settings = as_model_settings(model)
    memory = parse_bytes(device_memory)
    caps = capabilities if capabilities is not None else DeviceCapabilities.detect()
    placement = settings.resolve(caps)
    if memory is None:
        memory = caps.memory_of(placement.device) or None
    shape = shape or model_shape(settings)
    planner = MemoryPlanner(shape, placement, lora, precision)
    training = verb in ("train", "shifcon")
    checkpointing = bool(gradient_checkpointing)
    plan = planner.plan(verb, batch_size, max_length, checkpointing, memory)
    if memory is None or plan.fits:
        return FitDecision(plan, checkpointing, memory, placement)
    if training and gradient_checkpointing is None:
        checkpointed = planner.plan(verb, batch_size, max_length, True, memory)
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
        _refusal(verb, shape, placement, planner, plan, memory, gradient_checkpointing)
    )


def _refusal(
    verb: str,
    shape: ModelShape,
    placement: Placement,
    planner: MemoryPlanner,
    plan: VerbPlan,
    memory: int,
    gradient_checkpointing: bool | None,
) -> str:
    """One sentence: what the job needs, on what, and what would fit instead."""
    training = verb in ("train", "shifcon")
    batch, length = plan.batch_size, plan.max_length
    may_checkpoint = training  # a suggestion names gradient_checkpointing=true explicitly
    options: list[str] = []

    def fits(candidate: VerbPlan) -> bool:
        return candidate.total_bytes <= memory * USABLE_FRACTION

    if training and gradient_checkpointing is False:
        on = planner.plan(verb, batch, length, True, memory)
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
            candidate = variant.plan(verb, size, length, may_checkpoint, memory)
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
    where = "card" if placement.device != "cpu" else "machine (available memory)"
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


# -- what ``lingualift plan`` runs -----------------------------------------------------------


@dataclasses.dataclass
class PlanConfig(ModelSettings):
    """Settings of ``lingualift plan``: a model, its precision and placement, the work's shape."""

    verbs: list[str] = dataclasses.field(default_factory=lambda: list(VERBS))
    """Which verbs to plan (train, eval, serve, shifcon)."""
    batch_size: int = 8
    """Sequences per batch (per micro-batch when training)."""
    max_length: int = 512
    """Tokens per sequence (every sequence is planned at this length)."""
    lora: LoraSettings = dataclasses.field(default_factory=LoraSettings)
    """The LoRA adapter (rank, targets, dropout) the training verbs train."""
    precision: str = "auto"
    """Training autocast: auto (follows dtype), fp32, bf16 or fp16."""
    gradient_checkpointing: str = "auto"
    """auto (on only when the job does not fit without it), true or false."""
    device_memory: str | None = None
    """Memory of the device to plan for, e.g. 24GB or 80GiB (default: the resolved device's:
    a GPU's total memory, the CPU's available memory)."""
    json: bool = False
    """Print one JSON object instead of a table."""

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [v for v in self.verbs if v not in VERBS]
        if unknown:
            raise LingualiftError(f"Unknown verb {unknown[0]!r} to plan; use {', '.join(VERBS)}.")
        require(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}.")
        require(self.max_length >= 1, f"max_length must be at least 1, got {self.max_length}.")
        value = str(self.gradient_checkpointing).strip().lower()
        require(
            value in ("auto", "true", "false"),
            f"gradient_checkpointing must be auto, true or false; got "
            f"{self.gradient_checkpointing!r}.",
        )
        self.gradient_checkpointing = value
        parse_bytes(self.device_memory)  # a bad size fails here, before any model is read


@dataclasses.dataclass
class MemoryPlan:
    """What ``lingualift plan`` prints: the placement and a plan per verb."""

    model: str
    placement: Placement
    shape: ModelShape
    device_memory: int | None
    verbs: dict[str, VerbPlan]

    def to_dict(self) -> dict[str, Any]:
        placement = dataclasses.asdict(self.placement)
        placement["notes"] = list(self.placement.notes)
        return {
            "model": self.model,
            "name": self.shape.name,
            "placement": placement,
            "params": self.shape.total_params,
            "device_memory_bytes": self.device_memory,
            "verbs": {verb: plan.to_dict() for verb, plan in self.verbs.items()},
        }


def plan_memory(config: PlanConfig, capabilities: DeviceCapabilities | None = None) -> MemoryPlan:
    """Plan every verb of ``config`` (reads the model's config only)."""
    memory = parse_bytes(config.device_memory)
    caps = planning_capabilities(config, memory, capabilities)
    placement = config.resolve(caps)
    if memory is None:
        memory = caps.memory_of(placement.device) or None
    shape = model_shape(config)
    planner = MemoryPlanner(shape, placement, config.lora, config.precision)
    plans: dict[str, VerbPlan] = {}
    for verb in config.verbs:
        ckpt_setting = config.gradient_checkpointing
        checkpointing = ckpt_setting == "true"
        plan = planner.plan(verb, config.batch_size, config.max_length, checkpointing, memory)
        if verb in ("train", "shifcon") and ckpt_setting == "auto" and plan.fits is False:
            on = planner.plan(verb, config.batch_size, config.max_length, True, memory)
            plan = on if on.fits else plan
        plans[verb] = plan
    return MemoryPlan(config.model, placement, shape, memory, plans)


def format_plan(plan: MemoryPlan) -> str:
    """The plan as a table for people (``lingualift plan`` without ``json=true``)."""
    rows: list[tuple[str, ...]] = []
    header = ("", *plan.verbs)
    parts: Sequence[tuple[str, str]] = (
        ("weights", "weights_bytes"),
        ("LoRA", "lora_bytes"),
        ("gradients", "gradients_bytes"),
        ("optimizer", "optimizer_bytes"),
        ("activations", "activations_bytes"),
        ("  no checkpointing", "activations_full_bytes"),
        ("  checkpointing", "activations_checkpointed_bytes"),
        ("KV cache / sequence", "kv_cache_per_sequence_bytes"),
        ("CUDA overhead", "overhead_bytes"),
    )
    for label, key in parts:
        values = [getattr(v, key) for v in plan.verbs.values()]
        if all(not value for value in values):
            continue
        rows.append((label, *(gigabytes(v) if v else "-" for v in values)))
    rows.append(("total", *(gigabytes(v.total_bytes) for v in plan.verbs.values())))
    if plan.device_memory:
        rows.append(("fits", *("yes" if v.fits else "NO" for v in plan.verbs.values())))
    serve = plan.verbs.get("serve")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        f"{plan.shape.name} ({plan.shape.total_params / 1e9:.2f}B parameters): "
        f"{plan.placement.describe()}"
        + (f"; device memory {gigabytes(plan.device_memory)}" if plan.device_memory else ""),
    ]
    first = next(iter(plan.verbs.values()))
    lines.append(f"batch {first.batch_size} x {first.max_length} tokens")
    for row in (header, *rows):
        lines.append(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    checkpointed = [v.verb for v in plan.verbs.values() if v.gradient_checkpointing]
    if checkpointed:
        lines.append(f"gradient checkpointing on for {', '.join(checkpointed)}")
    if serve is not None and serve.concurrent_sequences is not None:
        lines.append(
            f"serve: {serve.concurrent_sequences} concurrent sequences of {serve.max_length} "
            "tokens fit in the KV cache"
        )
    return "\n".join(lines)
