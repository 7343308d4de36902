"""The dashboard's one action, rollback: behind an API key, carried out by the store, logged.

:class:`Actions` exists only when the dashboard was started with
``allow_actions=true`` and a key; without it the page shows no action and the
action's route refuses. A rollback is :meth:`AdapterStore.rollback
<lingualift.adapters.store.AdapterStore.rollback>` (the store's own rule and lock;
its history records the rollback like ``lingualift adapters rollback`` does, and
a server hot-reloads it), and every attempt, refused or done, is appended to the
actions log (a JSON line: time, action, language, versions, client, outcome,
the file replaced atomically) and to the ``lingualift.dashboard`` logger.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import json
import logging
from pathlib import Path

from lingualift.adapters.store import AdapterStore
from lingualift.atomic import atomic_write_text, path_lock
from lingualift.errors import LingualiftError

logger = logging.getLogger("lingualift.dashboard")


@dataclasses.dataclass
class ActionRecord:
    """One action asked for on the dashboard, and what came of it."""

    time: str
    action: str
    lang: str
    ok: bool
    message: str
    """What happened, in one sentence (or why it was refused)."""
    client: str | None = None
    """The address the request came from."""
    before: int | None = None
    """The current version before the action."""
    after: int | None = None
    """The current version after it."""


class Actions:
    """Rollback behind a key (see the module docstring).

    Args:
        store: the adapter store the action changes.
        api_key: the key a request must carry.
        log_path: the actions log (JSON Lines).
    """

    def __init__(self, store: AdapterStore, api_key: str, log_path: str | Path) -> None:
        if not api_key:
            raise LingualiftError("Dashboard actions need an API key; set api_key=<secret>.")
        self.store = store
        self._key = api_key.encode()
        self.log_path = Path(log_path)

    def authorized(self, key: str | None) -> bool:
        """True when ``key`` is the dashboard's key (compared in constant time)."""
        return key is not None and hmac.compare_digest(key.strip().encode(), self._key)

    def rollback(self, lang: str, client: str | None = None) -> ActionRecord:
        """Roll ``lang`` back to its previous current version; the record says how it went."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        before = None
        try:
            before = self.store.current_version(lang)
            version = self.store.rollback(lang)
        except LingualiftError as exc:
            record = ActionRecord(now, "rollback", lang, False, str(exc), client, before, before)
        else:
            message = f"{lang} rolled back from v{before} to v{version.version}"
            record = ActionRecord(now, "rollback", lang, True, message, client, before,
                                  version.version)  # fmt: skip
        self._log(record)
        return record

    def _log(self, record: ActionRecord) -> None:
        level = logging.WARNING if record.ok else logging.ERROR
        logger.log(level, "dashboard action from %s: %s", record.client or "?", record.message)
        line = json.dumps(dataclasses.asdict(record), ensure_ascii=False)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with path_lock(self.log_path):
            old = self.log_path.read_text("utf-8") if self.log_path.is_file() else ""
            if old and not old.endswith("\n"):
                old += "\n"
            atomic_write_text(self.log_path, old + line + "\n")

    def recent(self, n: int = 10) -> list[ActionRecord]:
        """The last ``n`` actions, newest first (lines that are not records are skipped)."""
        if not self.log_path.is_file():
            return []
        found = []
        for line in reversed(self.log_path.read_text("utf-8").splitlines()):
            try:
                found.append(ActionRecord(**json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                continue
            if len(found) >= n:
                break
        return found
