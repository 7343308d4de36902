"""Load what an evaluation runs: a base model, optional PEFT adapters, optional ShifCon.

Used by ``lingualift eval`` and by the lm-evaluation-harness bridge, so that a
base model, a model with adapters and a model with ShifCon are loaded the
same way and their results are comparable.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lingualift.errors import LingualiftError, first_line
from lingualift.placement import ModelSettings, as_model_settings


def split_paths(value: str | Sequence[str] | None) -> list[str]:
    """Adapter paths from a list or a string joined by ``+`` or ``;``.

    (Not ``,``: lm-eval's ``--model_args`` already splits on commas.)
    """
    if not value:
        return []
    if isinstance(value, str):
        return [p.strip() for p in re.split(r"[+;]", value) if p.strip()]
    return [str(p) for p in value]


def apply_adapters(model: Any, adapters: Sequence[str], merge: bool = True) -> Any:
    """Load PEFT adapter folders onto ``model`` in order.

    With ``merge`` each adapter is folded into the weights before the next
    (``merge_and_unload``): stacked adapters compose, and inference runs at the
    base model's speed. Without it a single adapter stays a ``PeftModel``.
    """
    if not adapters:
        return model
    from peft import PeftModel

    if not merge and len(adapters) > 1:
        raise LingualiftError("Several adapters need merge=true; they are composed by merging.")
    quantized = getattr(model, "is_loaded_in_4bit", False) or getattr(
        model, "is_loaded_in_8bit", False
    )
    if quantized and merge:
        # Folding LoRA into 4-/8-bit weights re-quantizes them (rounding errors); one adapter
        # stays a PeftModel on the quantized base instead.
        if len(adapters) > 1:
            raise LingualiftError(
                "Several adapters are composed by merging, which a quantized base cannot take "
                "exactly; evaluate them with quantization=none, or one adapter at a time."
            )
        merge = False
    for path in adapters:
        check_adapter_folder(path, model)
        try:
            model = PeftModel.from_pretrained(model, path)
        except Exception as exc:  # PEFT, torch and safetensors raise many types here
            raise LingualiftError(
                f"Adapter {path} does not fit this base model ({first_line(exc, 160)}); "
                "use the base model it was trained on."
            ) from None
        if merge:
            model = model.merge_and_unload()
    model.eval()
    return model


def check_adapter_folder(path: str | Path, model: Any) -> None:
    """A loadable PEFT folder whose weights are whole and whose card (if any) names this base."""
    import json

    from lingualift.adapters.registry import refuse_pickled_adapter
    from lingualift.adapters.store import (
        CARD_NAME,
        base_model_signature,
        check_base_model,
        weights_problem,
    )

    folder = Path(path)
    if not (folder / "adapter_config.json").is_file():
        raise LingualiftError(
            f"{folder} is not a PEFT adapter folder (no adapter_config.json); "
            "pass the folder a training run saved."
        )
    refuse_pickled_adapter(folder)
    weights = folder / "adapter_model.safetensors"
    problem = weights_problem(weights) if weights.is_file() else None
    if problem:
        raise LingualiftError(f"{weights} is damaged ({problem}); retrain or re-save the adapter.")
    card_path = folder / CARD_NAME
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise LingualiftError(f"{card_path} is corrupt; re-save the adapter.") from None
        check_base_model(card, base_model_signature(model), str(folder))


def load_shifcon(path: str | None) -> Any:
    if not path:
        return None
    from lingualift.shifcon import ShifCon

    return ShifCon.load(path)


def shifcon_apply(shifcon: Any, model: Any):
    """An ``apply(langs)`` callable for the scorers, or ``None`` without ShifCon."""
    if shifcon is None:
        return None

    def apply(langs: Sequence[str | None] | str):
        codes = [langs] if isinstance(langs, str) else list(langs)
        if any(c is None for c in codes):
            return contextlib.nullcontext()
        return shifcon.apply(model, codes[0] if len(set(codes)) == 1 else codes)

    return apply


def load_for_eval(
    base: str | ModelSettings,
    adapters: str | Sequence[str] | None = None,
    shifcon: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    merge_adapters: bool = True,
) -> tuple[Any, Any, Any]:
    """``(model, tokenizer, shifcon or None)`` ready for evaluation.

    ``base`` is a model spec (with ``dtype``/``device`` beside it, auto when left out) or
    :class:`~lingualift.placement.ModelSettings` (quantization and the rest included).
    """
    from lingualift.models import load_causal_lm, load_config_only

    settings = as_model_settings(base, dtype=dtype, device=device)
    paths = split_paths(adapters)
    skeleton = load_config_only(settings)
    for path in paths:  # damaged or foreign adapters fail before the weights load
        check_adapter_folder(path, skeleton)
    model, tokenizer = load_causal_lm(settings)
    model = apply_adapters(model, paths, merge=merge_adapters)
    sc = load_shifcon(shifcon)
    if sc is not None:
        sc.vectors.check_model(model)
    return model, tokenizer, sc
