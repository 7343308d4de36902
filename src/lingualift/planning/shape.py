"""A model's shape for the planner, read from its config alone (meta device, no weights).

The configs of the users' big models ship in ``configs/`` (the public config.json values),
so planning them works offline.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lingualift.placement import ModelSettings, as_model_settings

PLAN_CONFIGS = Path(__file__).parent / "configs"
"""Committed config.json files of the users' big models (shapes only, no weights)."""
BUNDLED_CONFIGS = {
    "meta-llama/Llama-3.1-8B": ("llama-3.1-8b", "Llama-3.1-8B"),
    "meta-llama/Llama-3.1-8B-Instruct": ("llama-3.1-8b", "Llama-3.1-8B-Instruct"),
    "Qwen/Qwen2.5-7B": ("qwen2.5-7b", "Qwen2.5-7B"),
    "Qwen/Qwen2.5-7B-Instruct": ("qwen2.5-7b", "Qwen2.5-7B-Instruct"),
    "microsoft/Phi-4-mini-instruct": ("phi-4-mini", "Phi-4-mini"),
}
"""Hub ids whose public config.json ships with lingualift (shapes only, no weights)."""


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
