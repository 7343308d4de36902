"""Atomic file and folder writes: a temp path next to the target, then a rename.

An interrupted run therefore never leaves a half-written adapter, selection or
cache entry behind: readers see either the old version or the new one.

What a crash can leave, and who cleans it:

- a temp file or folder (``.<name>.<pid>-<random>.tmp``): removed by the next
  atomic write into the same folder once process ``<pid>`` is gone;
- a replaced folder moved aside (``.<name>.old-<pid>``) when the crash fell
  between the two renames of :func:`atomic_dir`: the next :func:`atomic_dir`
  on the same target puts it back (or, if the new folder is already in place,
  removes it), so the previous output is never lost under a hidden name.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock

from lingualift.errors import LingualiftError

_TEMP = re.compile(r"^\..+\.(\d+)-[0-9a-f]+\.tmp$")
_OLD = re.compile(r"^\.(.+)\.old-(\d+)$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_stale(folder: str | os.PathLike[str]) -> None:
    """Remove temp files and folders that dead processes left in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        match = _TEMP.match(entry.name)
        if match and not _alive(int(match.group(1))):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def normalize_permissions(path: str | os.PathLike[str]) -> None:
    """Give a file, or a folder and everything in it, the modes a plain write would.

    ``mkstemp``/``mkdtemp`` and some libraries' own temp files create owner-only
    (0600) files; a serving process running as another user could not read them.
    """
    path = Path(path)
    mask = _umask()
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    for item in paths:
        if item.is_symlink():
            continue
        if item.is_dir():
            item.chmod(0o777 & ~mask)
        else:
            executable = item.stat().st_mode & 0o111
            item.chmod((0o777 if executable else 0o666) & ~mask)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp file path; on success it is renamed onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target.parent)
    tmp_path = _temp_name(target)
    try:
        yield tmp_path
        normalize_permissions(tmp_path)
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``target`` atomically (UTF-8)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def recover_swap(target: str | os.PathLike[str]) -> None:
    """Finish a folder swap that a crash interrupted (see the module docstring)."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        match = _OLD.match(entry.name)
        if not match or match.group(1) != target.name or _alive(int(match.group(2))):
            continue
        if target.exists():
            shutil.rmtree(entry, ignore_errors=True)  # the new folder landed: finish the swap
        else:
            os.replace(entry, target)  # it did not: put the previous one back


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder; on success it replaces ``target`` in one rename.

    With ``overwrite`` an existing ``target`` is moved aside first and removed
    only after the new folder is in place, so a crash leaves one of the two
    (and :func:`recover_swap` restores the right one on the next call).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target.parent)
    recover_swap(target)
    tmp = _temp_name(target)
    tmp.mkdir()
    try:
        yield tmp
        normalize_permissions(tmp)
        old = None
        if target.exists():
            if not overwrite:
                raise FileExistsError(f"{target} already exists")
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_replaceable(
    target: str | os.PathLike[str], marker: str, overwrite: bool, what: str = "output"
) -> None:
    """Refuse to replace a non-empty folder that lingualift did not write.

    A folder holding ``marker`` (a file lingualift writes into every such output)
    is ours to replace; anything else that is not empty is replaced only with
    ``overwrite``, so a mistyped output path never deletes a user's files.
    """
    target = Path(target)
    if not target.exists():
        return
    if not target.is_dir():
        raise LingualiftError(f"{target} is a file; give a folder path for the {what}.")
    if overwrite or (target / marker).is_file() or not any(target.iterdir()):
        return
    raise LingualiftError(
        f"{target} already holds files that lingualift did not write; choose an empty or new "
        f"folder for the {what}, or pass overwrite=true to replace it."
    )


def check_file_target(target: str | os.PathLike[str], what: str = "output") -> Path:
    """Refuse, before any work, an output file path that cannot be written.

    An existing folder (the rename would fail with ``IsADirectoryError`` only after the
    work) or a path under an existing file. Returns the path.
    """
    target = Path(target)
    if target.is_dir():
        raise LingualiftError(
            f"{target} is a folder; give a file path for the {what}, e.g. {target / 'out.jsonl'}."
        )
    _refuse_under_a_file(target, what)
    return target


def check_folder_target(target: str | os.PathLike[str], what: str = "output") -> Path:
    """Refuse, before any work, an output folder path that is a file or lies under one."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise LingualiftError(f"{target} is a file; give a folder for the {what}.")
    _refuse_under_a_file(target, what)
    return target


def _refuse_under_a_file(target: Path, what: str) -> None:
    blocking = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise LingualiftError(
            f"{blocking} is a file, so the {what} {target} cannot be written under it; "
            "choose another path."
        )


def path_lock(target: str | os.PathLike[str], timeout: float = -1) -> FileLock:
    """An inter-process lock guarding work that produces ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(target.parent / f".{target.name}.lock"), timeout=timeout)


@contextlib.contextmanager
def exclusive(target: str | os.PathLike[str], timeout: float = -1) -> Iterator[None]:
    """Hold :func:`path_lock` of ``target`` for the block and leave no trace of it.

    On the way out, success or failure, the lock file is removed while still held,
    and so are the folders that had to be created for it if nothing landed in them.
    Removing a held lock file keeps mutual exclusion with filelock (pinned): a waiter
    that then gets the lock on the removed file sees its link count at 0 and starts
    over on a fresh file, which a newcomer may create meanwhile but only one can hold.
    """
    target = Path(target)
    created: set[Path] = set()
    while True:
        created |= {f for f in (target.parent, *target.parent.parents) if not f.exists()}
        lock = path_lock(target, timeout)  # makes the folders
        try:
            lock.acquire()
            break
        except FileNotFoundError:
            if target.parent.is_dir():
                raise
            # The holder we waited for failed and removed the folder it had made: make it again.
    try:
        yield
    finally:
        try:
            Path(lock.lock_file).unlink(missing_ok=True)
            for folder in sorted(created, key=lambda f: len(f.parts), reverse=True):
                try:
                    folder.rmdir()  # only while empty: an output that landed keeps it
                except OSError:
                    break
        finally:
            lock.release()
