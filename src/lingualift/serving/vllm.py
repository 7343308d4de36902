"""Hand-off to vLLM: the ``vllm serve`` command for the same base model and adapters.

vLLM's multi-LoRA server batches many adapters with dedicated kernels and
continuous batching, which is what a large deployment wants. The store's
version folders are plain PEFT adapters (``adapter_config.json`` with ``r``,
``lora_alpha``, ``target_modules``; ``adapter_model.safetensors``), which is
what vLLM loads, so nothing is converted. The command names:

- the base model as a **local folder** when it is one: for the embedded model,
  the dequantized cache the adapters were trained on (``google/gemma-3-270m``
  on the hub has other weights);
- ``--enable-lora`` and one ``--lora-modules`` flag followed by one
  ``<lang>=<path>`` per current adapter (vLLM's parser keeps only the last
  ``--lora-modules`` flag when it is repeated; a path holding ``=`` or ``,``
  is written in vLLM's JSON form);
- ``--max-lora-rank``: the largest ``r`` among the adapters, rounded up to a
  value vLLM accepts, and ``--max-loras``: every adapter, so one batch can mix
  all languages (vLLM's default is 1);
- ``--served-model-name``: the same base model id as our server, so clients
  and the routing front (:mod:`lingualift.serving.front`) need no change.

ShifCon cannot apply there: vLLM runs its own model code without PyTorch
forward hooks on the decoder layers, so requests it serves get their adapter
but no representation shift.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lingualift.adapters.store import AdapterStore, check_base_model
from lingualift.errors import LingualiftError

VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for ``--max-lora-rank``."""
SHIFCON_NOTE = (
    "ShifCon hooks cannot run inside vLLM (no forward hooks on its layers): requests it serves "
    "get their adapter but no representation shift; serve with engine=lingualift to keep ShifCon."
)


@dataclasses.dataclass
class VllmPlan:
    """The command, and what went into it."""

    command: list[str]
    base_model: str
    """What vLLM loads: a local folder, or a hub id."""
    adapters: dict[str, Path]
    """Language -> PEFT folder of its current version."""
    max_lora_rank: int | None
    notes: list[str] = dataclasses.field(default_factory=list)


def vllm_max_lora_rank(ranks: Iterable[int]) -> int:
    """The smallest value vLLM accepts that holds every rank."""
    largest = max(ranks, default=VLLM_LORA_RANKS[0])
    for allowed in VLLM_LORA_RANKS:
        if largest <= allowed:
            return allowed
    raise LingualiftError(
        f"An adapter has rank {largest}; vLLM serves ranks up to {VLLM_LORA_RANKS[-1]}, so retrain "
        "it with a smaller r."
    )


def adapter_rank(folder: Path) -> int:
    """The largest LoRA rank of an adapter (``r`` and any per-module ``rank_pattern``)."""
    config = json.loads((folder / "adapter_config.json").read_text("utf-8"))
    ranks = [int(config.get("r") or 0), *map(int, (config.get("rank_pattern") or {}).values())]
    return max(ranks)


def vllm_adapter_problems(folder: Path) -> list[str]:
    """What would stop vLLM from loading a PEFT folder (empty when it is fine)."""
    problems = []
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        return [f"{folder} has no adapter_config.json"]
    if not (folder / "adapter_model.safetensors").is_file():
        problems.append(f"{folder} has no adapter_model.safetensors")
    config: dict[str, Any] = json.loads(config_path.read_text("utf-8"))
    if config.get("peft_type") not in (None, "LORA"):
        problems.append(f"{folder} is a {config.get('peft_type')} adapter; vLLM serves LoRA")
    for key in ("r", "lora_alpha", "target_modules"):
        if not config.get(key):
            problems.append(f"{folder}/adapter_config.json has no {key}")
    if config.get("use_dora"):
        problems.append(f"{folder} is a DoRA adapter, which vLLM does not serve")
    if config.get("bias", "none") != "none":
        problems.append(f"{folder} trains biases (bias={config['bias']!r}), which vLLM ignores")
    return problems


def _base_signature(base: str) -> dict[str, Any] | None:
    """Shape facts of a local model folder, read from its config.json (None for a hub id)."""
    path = Path(base) / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text("utf-8"))
    text = config.get("text_config") or config
    return {
        "model_type": text.get("model_type", config.get("model_type")),
        "num_layers": text.get("num_hidden_layers"),
        "hidden_size": text.get("hidden_size"),
        "vocab_size": text.get("vocab_size"),
    }


def _lora_module(lang: str, path: Path, base_name: str) -> str:
    if "=" in str(path) or "," in str(path):
        return json.dumps({"name": lang, "path": str(path), "base_model_name": base_name})
    return f"{lang}={path}"


def vllm_plan(
    model: str,
    store: AdapterStore,
    *,
    langs: Sequence[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    served_model_name: str | None = None,
    extra_args: Sequence[str] = (),
) -> VllmPlan:
    """The ``vllm serve`` command for ``model`` with each language's current adapter."""
    from lingualift.models import resolve_model_path

    base = resolve_model_path(model)
    if Path(base).is_dir():
        base = str(Path(base).resolve())
    served = served_model_name or model
    signature = _base_signature(base)
    codes = (
        list(langs)
        if langs
        else [lang for lang in store.languages() if store.current_version(lang) is not None]
    )
    adapters: dict[str, Path] = {}
    ranks = []
    for lang in codes:
        version = store.get(lang)
        store.check_weights(version.lang, version.version)
        problems = vllm_adapter_problems(version.path)
        if problems:
            raise LingualiftError(f"vLLM cannot serve {version.name}: {problems[0]}.")
        if signature is not None:
            check_base_model(version.card, signature, version.name)
        adapters[version.lang] = version.path.resolve()
        ranks.append(adapter_rank(version.path))
    command = ["vllm", "serve", base, "--host", host, "--port", str(port)]
    command += ["--served-model-name", served]
    notes = [SHIFCON_NOTE]
    rank = None
    if adapters:
        rank = vllm_max_lora_rank(ranks)
        command += ["--enable-lora", "--max-loras", str(len(adapters))]
        command += ["--max-lora-rank", str(rank), "--lora-modules"]
        command += [_lora_module(lang, path, served) for lang, path in adapters.items()]
    else:
        notes.append(f"no current adapter in {store.root}: vLLM will serve the base model only")
    command += list(extra_args)
    return VllmPlan(command, base, adapters, rank, notes)
