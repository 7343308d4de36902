"""The memory planner: what each verb needs on a device, from the model's config alone.

Nothing is loaded: :func:`model_shape` builds the model on PyTorch's meta device
(:func:`lingualift.models.load_config_only`) and reads its shapes, or uses a config
committed under ``lingualift/planning/configs/`` for the users' big models (Llama-3.1-8B,
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
``tests/planning/test_planning.py`` and ``benchmarks/plan_accuracy.py`` (docs/scale.md).
"""

from lingualift.planning.check import (
    FitDecision,
    check_fits,
    check_training_args,
    gigabytes,
    parse_bytes,
    planning_capabilities,
    prompt_tokens_bound,
)
from lingualift.planning.estimate import (
    CE_COPIES,
    CUDA_OVERHEAD_BYTES,
    EVAL_CE_COPIES,
    NF4_BYTES_PER_WEIGHT,
    USABLE_FRACTION,
    VERBS,
    MemoryPlanner,
    VerbPlan,
)
from lingualift.planning.report import MemoryPlan, PlanConfig, format_plan, plan_memory
from lingualift.planning.shape import (
    BUNDLED_CONFIGS,
    PLAN_CONFIGS,
    LinearShape,
    ModelShape,
    bundled_config,
    model_shape,
)

__all__ = [
    "BUNDLED_CONFIGS",
    "CE_COPIES",
    "CUDA_OVERHEAD_BYTES",
    "EVAL_CE_COPIES",
    "NF4_BYTES_PER_WEIGHT",
    "PLAN_CONFIGS",
    "USABLE_FRACTION",
    "VERBS",
    "FitDecision",
    "LinearShape",
    "MemoryPlan",
    "MemoryPlanner",
    "ModelShape",
    "PlanConfig",
    "VerbPlan",
    "bundled_config",
    "check_fits",
    "check_training_args",
    "format_plan",
    "gigabytes",
    "model_shape",
    "parse_bytes",
    "plan_memory",
    "planning_capabilities",
    "prompt_tokens_bound",
]
