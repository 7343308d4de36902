"""Export ShifCon to lm-evaluation-harness's ``steered`` model (``lm_eval/models/hf_steered.py``).

The ``steered`` model loads a ``.pt`` file mapping hookpoints (module names
under ``model.base_model``) to ``{"steering_vector", "steering_coefficient",
"action", "bias", "head_index"}`` and, for ``action="add"``, adds
``coefficient * vector`` to the *output* of that module at every position.
The input of decoder layer ``i`` is the output of layer ``i - 1`` (or of the
embedding module for ``i = 0``), so one language's file holds two entries:

- output of layer ``a - 1``: ``v_en[a] - v_l[a]``  (shift toward),
- output of layer ``b - 1``: ``v_l[b] - v_en[b]``  (shift back).

lm-eval applies a file to every row, so there is one file per language. The
base must be the weights the vectors were measured on; for the embedded model
(the dequantized Q4_K_M GGUF, not ``google/gemma-3-270m``'s weights) write them
as a plain folder first, and ``steered.json`` names them portably
(:mod:`lingualift.portable`)::

    lingualift export-base out_dir=exported/gemma-3-270m
    lm_eval --model steered \\
        --model_args pretrained=exported/gemma-3-270m,steer_path=runs/shifcon/steered/sw.pt \\
        --tasks global_mmlu_full_sw
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_dir, check_replaceable
from lingualift.errors import LingualiftError
from lingualift.languages import normalize_language
from lingualift.models import decoder_layers, load_config_only
from lingualift.portable import BaseIdentity, base_identity
from lingualift.shifcon.core import ShifCon


def hookpoints(model: Any, a: int, b: int) -> tuple[str, str]:
    """Names (as lm-eval resolves them) of the modules whose outputs feed layers ``a`` and ``b``."""
    root = model.base_model
    names = {id(module): name for name, module in root.named_modules()}
    layers = decoder_layers(model)

    def feeding(index: int) -> str:
        module = layers[index - 1] if index > 0 else model.get_input_embeddings()
        name = names.get(id(module))
        if not name:
            raise LingualiftError(
                f"Could not name the module feeding decoder layer {index} under "
                f"{type(root).__name__}; this architecture cannot be exported to lm-eval."
            )
        return name

    return feeding(a), feeding(b)


def steer_config(shifcon: ShifCon, lang: str, model: Any) -> dict[str, dict[str, Any]]:
    """The ``steered`` file content for one language."""
    code = normalize_language(lang)
    if code == shifcon.dominant:
        raise LingualiftError(
            f"{code!r} is the dominant language, which is never shifted; export other languages."
        )
    deltas = shifcon.deltas(code)
    assert deltas is not None
    toward, back = deltas
    point_a, point_b = hookpoints(model, shifcon.a, shifcon.b)

    def entry(vector: Any) -> dict[str, Any]:
        return {
            "steering_vector": vector.float().clone(),
            "steering_coefficient": 1.0,
            "action": "add",
            "bias": None,
            "head_index": None,
        }

    return {point_a: entry(toward), point_b: entry(back)}


MANIFEST = "steered.json"


def steered_usage(identity: BaseIdentity) -> str:
    """The lm-eval command for one language's file, on the weights the vectors were made on."""
    if identity.weights:  # the embedded model: a plain folder of its weights, written once
        return (
            "lingualift export-base out_dir=<dir>; lm_eval --model steered "
            "--model_args pretrained=<dir>,steer_path=<lang>.pt --tasks <task>"
        )
    return (
        f"lm_eval --model steered --model_args {identity.pretrained_args},steer_path=<lang>.pt "
        "--tasks <task>"
    )


def export_steered(
    shifcon: ShifCon,
    out: str | Path,
    langs: Sequence[str] | None = None,
    model: Any = None,
    overwrite: bool = False,
    source: str | Path | None = None,
) -> list[Path]:
    """Write ``<out>/<lang>.pt`` (one per language) plus ``steered.json``; atomically.

    An earlier export in ``out`` is replaced; any other non-empty folder only with
    ``overwrite``. ``source`` (the ShifCon folder read) may not be ``out`` or lie
    inside it: the export would replace its own input.
    """
    import torch

    out = Path(out)
    if source is not None:
        src, dst = Path(source).resolve(), out.resolve()
        if src == dst or dst in src.parents:
            raise LingualiftError(
                f"The export folder {out} holds the ShifCon folder it reads; "
                "write the export elsewhere, e.g. out_dir=<shifcon folder>/steered."
            )
    check_replaceable(out, MANIFEST, overwrite, what="steered export")
    model = model if model is not None else load_config_only(shifcon.base_model)
    shifcon.vectors.check_model(model)
    codes = [normalize_language(x) for x in langs] if langs else None
    codes = codes or [x for x in shifcon.languages if x != shifcon.dominant]
    configs = {code: steer_config(shifcon, code, model) for code in codes}
    with atomic_dir(out, overwrite=True) as tmp:
        for code, config in configs.items():
            torch.save(config, tmp / f"{code}.pt")
        identity = base_identity(shifcon.base_model)
        manifest = {
            "base_model": identity.name_or_path,
            "revision": identity.revision,
            "base_spec": shifcon.base_model,
            "base_weights": identity.weights,
            "a": shifcon.a,
            "b": shifcon.b,
            "dominant": shifcon.dominant,
            "hookpoints": list(next(iter(configs.values()))),
            "files": {code: f"{code}.pt" for code in configs},
            "usage": steered_usage(identity),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return [out / f"{code}.pt" for code in configs]
