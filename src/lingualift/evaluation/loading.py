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
    for path in adapters:
        if not (Path(path) / "adapter_config.json").is_file():
            raise LingualiftError(
                f"{path} is not a PEFT adapter folder (no adapter_config.json); "
                "pass the folder a training run saved."
            )
        try:
            model = PeftModel.from_pretrained(model, path)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise LingualiftError(
                f"Adapter {path} does not fit this base model ({first_line(exc, 160)}); "
                "use the base model it was trained on."
            ) from None
        if merge:
            model = model.merge_and_unload()
    model.eval()
    return model


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
    base: str,
    adapters: str | Sequence[str] | None = None,
    shifcon: str | None = None,
    dtype: str = "float32",
    device: str | None = None,
    merge_adapters: bool = True,
) -> tuple[Any, Any, Any]:
    """``(model, tokenizer, shifcon or None)`` ready for evaluation."""
    from lingualift.models import load_causal_lm

    model, tokenizer = load_causal_lm(base, dtype=dtype, device=device)
    model = apply_adapters(model, split_paths(adapters), merge=merge_adapters)
    sc = load_shifcon(shifcon)
    if sc is not None:
        sc.vectors.check_model(model)
    return model, tokenizer, sc
