"""What ``lingualift plan`` runs: its settings, the plan of every verb, and the table people read."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from lingualift.errors import LingualiftError, require
from lingualift.placement import DeviceCapabilities, ModelSettings, Placement
from lingualift.planning.check import gigabytes, parse_bytes, planning_capabilities
from lingualift.planning.estimate import VERBS, MemoryPlanner, VerbPlan
from lingualift.planning.shape import ModelShape, model_shape
from lingualift.training import LoraSettings


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
