"""Per-verb memory of a model shape: weights, LoRA, gradients, optimizer, activations, KV cache.

See :mod:`lingualift.planning` for what each part counts and how it was checked.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from lingualift.errors import require
from lingualift.placement import Placement
from lingualift.planning.shape import LinearShape, ModelShape
from lingualift.training import LoraSettings

VERBS = ("train", "eval", "serve", "shifcon")
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

    def eval(self, batch_size: int, max_length: int, full_logits: bool = True) -> VerbPlan:
        """Scoring ``batch_size`` sequences of ``max_length`` tokens.

        ``full_logits``: the loss over every position (perplexity); without it only a few
        positions' logits are kept (answer letters, hidden states) and one block's transient
        is the peak.
        """
        activations = self.inference_activations(batch_size * max_length, full_logits=full_logits)
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
        full_logits: bool = True,
    ) -> VerbPlan:
        require(verb in VERBS, f"Unknown verb {verb!r} to plan; use {', '.join(VERBS)}.")
        if verb in ("train", "shifcon"):
            plan = self.train(batch_size, max_length, checkpointing, verb=verb)
        elif verb == "eval":
            plan = self.eval(batch_size, max_length, full_logits)
        else:
            plan = self.serve(batch_size, max_length, device_memory)
        if device_memory:
            plan.fits = plan.total_bytes <= device_memory * USABLE_FRACTION
        return plan
