"""Where lingualift keeps its caches and stores."""

from __future__ import annotations

import os
from pathlib import Path


def lingualift_home() -> Path:
    """The cache root: ``$LINGUALIFT_HOME``, else ``~/.cache/lingualift``."""
    root = os.environ.get("LINGUALIFT_HOME")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "lingualift"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(*parts: str) -> Path:
    """A sub-folder of the cache root, created on demand."""
    path = lingualift_home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
