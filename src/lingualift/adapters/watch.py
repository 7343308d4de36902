"""Which languages of an adapter store may have a new current version since the last look.

A promote, a rollback or a save rewrites a language's ``history.jsonl`` (the
commit point) and then its ``current`` file (see :mod:`lingualift.adapters.store`).
Reading the history on every poll would parse a growing file many times a
second, so pollers compare a cheap stamp instead: the mtime, size and inode of
both files. An atomic rewrite (temp file, then rename) always changes the inode,
so even two writes within the file system's mtime resolution are noticed.

Both things that follow the store while serving poll with a :class:`StoreWatch`:
the server's adapter registry (:mod:`lingualift.adapters.registry`) and the vLLM
sync (:mod:`lingualift.serving.vllm_sync`). Only a language whose stamp changed
needs :meth:`~lingualift.adapters.store.AdapterStore.current_version` read again.
"""

from __future__ import annotations

from collections.abc import Iterable

from lingualift.adapters.store import HISTORY_NAME, POINTER_NAME, AdapterStore

Stamp = tuple[int, ...]


class StoreWatch:
    """Remembers each language's stamp; :meth:`changed` names the languages whose stamp moved."""

    def __init__(self, store: AdapterStore) -> None:
        self.store = store
        self._stamps: dict[str, Stamp] = {}

    def stamp(self, lang: str) -> Stamp:
        """mtime, size and inode of ``<lang>/history.jsonl`` and ``<lang>/current`` (-1s for a
        missing file)."""
        stamp: list[int] = []
        for name in (HISTORY_NAME, POINTER_NAME):
            try:
                stat = (self.store.root / lang / name).stat()
                stamp += [stat.st_mtime_ns, stat.st_size, stat.st_ino]
            except OSError:
                stamp += [-1, -1, -1]
        return tuple(stamp)

    def changed(self, langs: Iterable[str]) -> list[str]:
        """Those of ``langs`` whose files changed since the previous call (every one the first
        time); their new stamps are remembered, so each change is reported once."""
        out = []
        for lang in langs:
            stamp = self.stamp(lang)
            if self._stamps.get(lang) != stamp:
                self._stamps[lang] = stamp
                out.append(lang)
        return out

    def forget(self, lang: str) -> None:
        """Report ``lang`` as changed at the next call (e.g. after a read that failed)."""
        self._stamps.pop(lang, None)
