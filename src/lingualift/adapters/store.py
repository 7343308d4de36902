"""The adapter store: versioned PEFT adapters per language, with a card and a current pointer.

Layout (every folder a plain PEFT adapter, loadable by PEFT, vLLM and
lm-evaluation-harness unchanged; ``card.json`` is an extra file they ignore)::

    <root>/<lang>/v1/adapter_config.json
    <root>/<lang>/v1/adapter_model.safetensors
    <root>/<lang>/v1/card.json
    <root>/<lang>/v2/...
    <root>/<lang>/history.jsonl  # one line per save / promote / rollback / gate decision
    <root>/<lang>/current        # text: "v2" (a copy of what the history says)

Versions are written into a temp folder and renamed into place, under a lock
per language, so a crash mid-save leaves the previous versions and the current
pointer untouched, and two writers never get the same version number.

The history is the single source of truth for which version is current: each
entry that moves the pointer records the version that is current after it, and
the history file is replaced atomically in one step. The ``current`` file is
rewritten after it for tools that read it; a crash between the two leaves the
history right, and the history wins. So a rollback always returns to a version
that really was current.

A history line cut off at the end of the file (a power loss on a file system that
persisted the rename before the data, or a copy that stopped short) is the one
damage a reader repairs: when the rest of the history and the ``current`` file
agree on the current version, the torn line is ignored with a warning and the next
write drops it; when they disagree, the torn line may have held the last pointer
move, so the store refuses until ``adapters promote`` records which version is
current. Any other unreadable line, and a byte that is not UTF-8, is refused by
file and line. A version folder, or a file in it, that links out of the store is
refused: the store only serves what it holds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lingualift.adapters.portable import stamp_adapter
from lingualift.atomic import atomic_dir, atomic_write_text, path_lock
from lingualift.errors import LingualiftError, first_line
from lingualift.languages import normalize_language
from lingualift.models import model_signature
from lingualift.paths import lingualift_home
from lingualift.portable import base_identity
from lingualift.textio import decode

CARD_NAME = "card.json"
CARD_FORMAT = "lingualift-adapter-card/1"
PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")
_VERSION = re.compile(r"^v(\d+)$")
HISTORY_NAME = "history.jsonl"
POINTER_NAME = "current"

logger = logging.getLogger(__name__)


def default_store_root() -> Path:
    """``$LINGUALIFT_HOME/adapters``."""
    return lingualift_home() / "adapters"


def base_model_signature(model: Any, spec: str | None = None) -> dict[str, Any]:
    """What identifies a base model in a card: its spec, its portable name (and, for the
    embedded model, the revision and exact weights), and the shapes an adapter depends on."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    portable: dict[str, Any] = {"name_or_path": getattr(base.config, "_name_or_path", None)}
    if spec:
        identity = base_identity(spec)
        portable = {
            "name_or_path": identity.name_or_path,
            "revision": identity.revision,
            "weights": identity.weights,
        }
    return {
        "spec": spec,
        **portable,
        "architecture": type(base).__name__,
        **model_signature(base),
    }


_SHAPE_KEYS = ("model_type", "hidden_size", "num_layers", "vocab_size")


def check_base_model(card: dict[str, Any], signature: dict[str, Any], where: str) -> None:
    """Raise a clear error when an adapter was trained on a different base model."""
    trained = card.get("base_model") or {}
    if not isinstance(trained, dict):  # a card that names the base model only by its spec
        return
    diffs = [
        f"{key} {trained.get(key)} vs {signature.get(key)}"
        for key in _SHAPE_KEYS
        if trained.get(key) is not None and trained.get(key) != signature.get(key)
    ]
    if diffs:
        raise LingualiftError(
            f"Adapter {where} was trained on a different base model "
            f"({trained.get('spec') or trained.get('name_or_path')}: {'; '.join(diffs)}); "
            "load it with that base model or train a new adapter for this one."
        )


@dataclasses.dataclass
class AdapterVersion:
    """One stored adapter version."""

    lang: str
    version: int
    path: Path
    current: bool
    card: dict[str, Any]
    problem: str | None = None
    """Why the version cannot be loaded (missing or damaged files), None when it is whole."""

    @property
    def name(self) -> str:
        return f"{self.lang}/v{self.version}"

    def summary(self) -> dict[str, Any]:
        metrics = self.card.get("metrics") or {}
        return {
            "lang": self.lang,
            "version": self.version,
            "current": self.current,
            "problem": self.problem,
            "created": self.card.get("created"),
            "base_model": (self.card.get("base_model") or {}).get("spec"),
            "steps": metrics.get("steps"),
            "eval_loss": metrics.get("eval_loss"),
            "path": str(self.path),
        }


class AdapterStore:
    """Versioned LoRA adapters, one series per language (see the module docstring)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else default_store_root()

    def __repr__(self) -> str:
        return f"AdapterStore({str(self.root)!r})"

    # -- reading ---------------------------------------------------------------------------

    def languages(self) -> list[str]:
        """Languages with at least one stored version."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.versions(p.name))

    def versions(self, lang: str) -> list[int]:
        """Stored version numbers of ``lang``, ascending."""
        folder = self.root / lang
        if not folder.is_dir():
            return []
        found = (_VERSION.match(p.name) for p in folder.iterdir() if p.is_dir())
        return sorted(int(m.group(1)) for m in found if m)

    def current_version(self, lang: str) -> int | None:
        """The current version (None when nothing is promoted); the history decides."""
        code = normalize_language(lang)
        return self._current(code, self._read_history(code, repair=False))

    def _current(self, code: str, entries: list[dict[str, Any]]) -> int | None:
        currents = _currents(entries)
        return currents[-1] if currents else self._pointer(code)

    def _pointer(self, code: str) -> int | None:
        """The version the ``current`` file names (None without one)."""
        pointer = self.root / code / POINTER_NAME
        if not pointer.is_file():
            return None
        match = _VERSION.match(decode(pointer.read_bytes(), pointer).strip())
        if not match:
            raise LingualiftError(
                f"{pointer} is corrupt; repair it with 'lingualift adapters promote {code} <version>'."
            )
        return int(match.group(1))

    def path(self, lang: str, version: int | str | None = None) -> Path:
        """Folder of a PEFT adapter (the current version by default), checked to be loadable."""
        code = normalize_language(lang)
        number = self._resolve(code, version)
        folder = self.root / code / f"v{number}"
        self._check_inside(folder)
        missing = [name for name in PEFT_FILES if not (folder / name).is_file()]
        if not folder.is_dir() or missing:
            raise LingualiftError(
                f"Adapter folder {folder} is missing or incomplete "
                f"(no {', '.join(missing) or 'folder'}); promote another version or retrain it."
            )
        try:
            json.loads((folder / "adapter_config.json").read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise LingualiftError(
                f"{folder / 'adapter_config.json'} is corrupt; promote another version or retrain."
            ) from None
        return folder

    def _check_inside(self, folder: Path) -> None:
        """Refuse a version folder, or a file in it, that links out of the store."""
        root = self.root.resolve()
        for item in (folder, *(folder / name for name in (*PEFT_FILES, CARD_NAME))):
            if (item.exists() or item.is_symlink()) and not item.resolve().is_relative_to(root):
                raise LingualiftError(
                    f"{item} links to {item.resolve()}, outside the store {self.root}; "
                    "replace the link with a copy of the adapter, or remove it."
                )

    def check_weights(self, lang: str, version: int | str | None = None) -> Path:
        """:meth:`path`, and the weights file must be whole (its header and size agree)."""
        folder = self.path(lang, version)
        problem = weights_problem(folder / PEFT_FILES[1])
        if problem:
            raise LingualiftError(
                f"{folder / PEFT_FILES[1]} is damaged ({problem}); promote another version "
                "or retrain it."
            )
        return folder

    def card(self, lang: str, version: int | str | None = None) -> dict[str, Any]:
        """The card of a version ({} for a PEFT folder copied in without one)."""
        folder = self.path(lang, version)
        card_path = folder / CARD_NAME
        if not card_path.is_file():
            return {}
        try:
            return json.loads(card_path.read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise LingualiftError(
                f"{card_path} is corrupt; retrain or re-save this version."
            ) from None

    def get(self, lang: str, version: int | str | None = None) -> AdapterVersion:
        code = normalize_language(lang)
        number = self._resolve(code, version)
        path = self.path(code, number)
        return AdapterVersion(
            code, number, path, number == self.current_version(code), self.card(code, number)
        )

    def list(self, lang: str | None = None) -> list[AdapterVersion]:
        """Every stored version (of one language, or all), oldest first."""
        langs = [normalize_language(lang)] if lang else self.languages()
        out = []
        for code in langs:
            current = self.current_version(code)
            for number in self.versions(code):
                folder = self.root / code / f"v{number}"
                try:
                    self.check_weights(code, number)
                    problem = None
                except LingualiftError as exc:
                    problem = str(exc)
                try:
                    self._check_inside(folder)  # never read a card from outside the store
                    card = json.loads((folder / CARD_NAME).read_text("utf-8"))
                except (LingualiftError, OSError, json.JSONDecodeError, UnicodeDecodeError):
                    card = {}
                out.append(AdapterVersion(code, number, folder, number == current, card, problem))
        return out

    def find_run(self, lang: str, fingerprint: str) -> AdapterVersion | None:
        """The version a training run with this fingerprint stored (None if it stored none)."""
        for version in reversed(self.list(lang)):
            if (version.card.get("run") or {}).get("fingerprint") == fingerprint:
                return version if version.problem is None else None
        return None

    def _resolve(self, code: str, version: int | str | None) -> int:
        versions = self.versions(code)
        if not versions:
            have = ", ".join(self.languages()) or "none"
            raise LingualiftError(
                f"No adapter for language {code!r} in {self.root} (languages with adapters: {have}); "
                f"train one with 'lingualift train lang={code} data=...'."
            )
        if version is None:
            current = self.current_version(code)
            if current is None:
                raise LingualiftError(
                    f"No current adapter for {code!r}; run 'lingualift adapters promote {code} "
                    f"v{versions[-1]}'."
                )
            return current
        number = _parse_version(version)
        if number not in versions:
            raise LingualiftError(
                f"{code} has no version v{number} (it has "
                f"{', '.join(f'v{v}' for v in versions)}); pick one of those."
            )
        return number

    # -- writing ---------------------------------------------------------------------------

    def save(
        self,
        lang: str,
        model: Any = None,
        *,
        source: str | Path | None = None,
        card: dict[str, Any] | None = None,
        promote: bool = True,
        writer: Callable[[Path], None] | None = None,
    ) -> AdapterVersion:
        """Store a new version of ``lang``'s adapter, atomically, and return it.

        Give a PEFT ``model`` (its adapter weights are saved with
        ``save_pretrained``), a ``source`` folder that already holds a PEFT
        adapter, or a ``writer(folder)`` that writes one. ``card`` is completed
        with the language, version and creation time and saved as card.json.
        """
        code = normalize_language(lang)
        if sum(x is not None for x in (model, source, writer)) != 1:
            raise ValueError("give exactly one of model, source or writer")
        if source is not None and not all((Path(source) / f).is_file() for f in PEFT_FILES):
            raise LingualiftError(
                f"{source} is not a PEFT adapter folder (needs {', '.join(PEFT_FILES)})."
            )
        with path_lock(self.root / code):
            number = max(self.versions(code), default=0) + 1
            target = self.root / code / f"v{number}"
            full_card = {
                "format": CARD_FORMAT,
                "lang": code,
                "version": number,
                "created": _now(),
                **(card or {}),
            }
            with atomic_dir(target) as tmp:
                if model is not None:
                    model.save_pretrained(str(tmp))
                elif source is not None:
                    for item in Path(source).iterdir():
                        if item.is_file() and item.name != CARD_NAME:
                            shutil.copy2(item, tmp / item.name)
                else:
                    assert writer is not None
                    writer(tmp)
                _flatten_adapter_folder(tmp)
                missing = [f for f in PEFT_FILES if not (tmp / f).is_file()]
                if missing:
                    raise LingualiftError(
                        f"The adapter to store wrote no {', '.join(missing)}; "
                        "save a LoRA (PEFT) model."
                    )
                base = full_card.get("base_model")
                spec = base.get("spec") if isinstance(base, dict) else base
                if spec:  # name the base portably, not by a path on this machine
                    stamp_adapter(tmp, base_identity(spec), code)
                (tmp / CARD_NAME).write_text(
                    json.dumps(full_card, indent=2, ensure_ascii=False, default=str), "utf-8"
                )
            if promote:
                self._set_current(code, number, "save")
        return self.get(code, number)

    def promote(
        self, lang: str, version: int | str, evidence: dict[str, Any] | None = None
    ) -> AdapterVersion:
        """Make ``version`` the current adapter of ``lang`` (``evidence`` goes into the history)."""
        code = normalize_language(lang)
        number = self._resolve(code, version)
        self.check_weights(code, number)  # refuse to point at a broken version
        with path_lock(self.root / code):
            self._set_current(code, number, "promote", evidence)
        return self.get(code, number)

    def rollback(self, lang: str) -> AdapterVersion:
        """Point ``current`` back at the version that was current before the last change."""
        code = normalize_language(lang)
        with path_lock(self.root / code):
            current = self._resolve(code, None)
            stack = _currents(self.history(code))[:-1]
            previous = None
            for candidate in reversed(stack):
                if candidate == current:
                    continue
                try:
                    self.check_weights(code, candidate)
                except LingualiftError:
                    continue  # deleted or damaged since: skip it
                previous = candidate
                break
            if previous is None:
                raise LingualiftError(
                    f"{code} has no earlier current version to roll back to; "
                    "use 'lingualift adapters promote' to pick one."
                )
            self._set_current(code, previous, "rollback", {"from": current})
        return self.get(code, previous)

    def record(self, lang: str, entry: dict[str, Any]) -> None:
        """Append a decision that does not move the pointer (e.g. a gate keeping the current)."""
        code = normalize_language(lang)
        if entry.get("action") in _POINTER_ACTIONS:
            raise ValueError("use promote() or rollback() to move the current pointer")
        with path_lock(self.root / code):
            entries = self._read_history(code, repair=False)
            current = self._current(code, entries)
            self._write_history(code, [*entries, {"time": _now(), **entry, "current": current}])

    def history(self, lang: str) -> list[dict[str, Any]]:
        """Every change of the current pointer and every recorded decision, oldest first."""
        return self._read_history(normalize_language(lang), repair=False)

    def _read_history(self, code: str, repair: bool) -> list[dict[str, Any]]:
        """The history's entries; a torn last line is dropped as the module docstring says.

        ``repair`` is for writers, which rewrite the file without the torn line: they
        drop it even when the ``current`` file disagrees, since the write they are
        about to make (a promote) is what settles which version is current.
        """
        path = self.root / code / HISTORY_NAME
        if not path.is_file():
            return []
        data = path.read_bytes()
        lines = decode(data, path).splitlines()
        entries = []
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry = None
            if isinstance(entry, dict):
                entries.append(entry)
                continue
            if line_no < len(lines) or data.endswith(b"\n"):
                raise LingualiftError(
                    f"{path}:{line_no}: not a history entry (a JSON object); restore or remove "
                    f"that line, then check the current version with 'lingualift adapters list "
                    f"{code}'."
                )
            self._torn(path, line_no, code, entries, repair)
        return entries

    def _torn(
        self, path: Path, line_no: int, code: str, entries: list[dict[str, Any]], repair: bool
    ) -> None:
        """Decide about a history cut off in its last line (see the module docstring)."""
        currents, pointer = _currents(entries), self._pointer(code)
        before = currents[-1] if currents else pointer
        if repair or pointer is None or pointer == before:
            logger.warning(
                "%s:%d is cut off (an interrupted write); ignoring it (the rest of the history "
                "makes %s current)", path, line_no, f"v{before}" if before else "no version",
            )  # fmt: skip
            return
        raise LingualiftError(
            f"{path}:{line_no} is cut off, and the history before it makes "
            f"{f'v{before}' if before else 'no version'} current while "
            f"{path.with_name(POINTER_NAME)} says v{pointer}; record which one is current with "
            f"'lingualift adapters promote {code} v{pointer}' (or another version)."
        )

    def _write_history(self, code: str, entries: list[dict[str, Any]]) -> None:
        """Replace the history in one atomic step (which drops a torn last line for good)."""
        lines = [json.dumps(e, ensure_ascii=False, default=str) for e in entries]
        atomic_write_text(self.root / code / HISTORY_NAME, "\n".join(lines) + "\n")

    def _set_current(
        self, code: str, number: int, action: str, evidence: dict[str, Any] | None = None
    ) -> None:
        entries = self._read_history(code, repair=True)
        entry = {
            "action": action,
            "version": number,
            "current": number,
            "previous": self._current(code, entries),
            "time": _now(),
            **(evidence or {}),
        }
        self._write_history(code, [*entries, entry])  # the commit point
        atomic_write_text(self.root / code / POINTER_NAME, f"v{number}\n")


def _currents(entries: list[dict[str, Any]]) -> list[int]:
    """The undo stack of current versions: pointer moves push, rollbacks pop."""
    stack: list[int] = []
    for entry in entries:
        action = entry.get("action")
        if action not in _POINTER_ACTIONS:
            continue
        if action == "rollback" and stack:
            stack.pop()
        current = entry.get("current", entry.get("version"))
        if current is not None and (not stack or stack[-1] != current):
            stack.append(int(current))
    return stack


_POINTER_ACTIONS = ("save", "promote", "rollback")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def weights_problem(path: Path) -> str | None:
    """What is wrong with a safetensors file (None when its header and size agree)."""
    import struct

    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                return "shorter than a safetensors header"
            (length,) = struct.unpack("<Q", head)
            if length > size - 8:
                return "truncated header"
            header = json.loads(handle.read(length))
    except OSError as exc:
        return first_line(exc)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "unreadable header"
    ends = [
        int(info["data_offsets"][1])
        for name, info in header.items()
        if name != "__metadata__" and isinstance(info, dict) and "data_offsets" in info
    ]
    if size < 8 + length + max(ends, default=0):
        return f"truncated: {size} bytes, the header promises {8 + length + max(ends, default=0)}"
    return None


def _parse_version(version: int | str) -> int:
    if isinstance(version, int):
        return version
    match = re.fullmatch(r"v?(\d+)", str(version).strip())
    if not match:
        raise LingualiftError(f"Bad version {version!r}; write it as 3 or v3.")
    return int(match.group(1))


def _flatten_adapter_folder(folder: Path) -> None:
    """PEFT saves a non-default adapter name into a sub-folder; keep one flat PEFT folder."""
    if all((folder / f).is_file() for f in PEFT_FILES):
        return
    subfolders = [p for p in folder.iterdir() if p.is_dir() and (p / PEFT_FILES[0]).is_file()]
    if len(subfolders) == 1:
        for item in subfolders[0].iterdir():
            shutil.move(str(item), folder / item.name)
        subfolders[0].rmdir()
