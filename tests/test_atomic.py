import pytest

from lingualift.atomic import atomic_dir, atomic_path, atomic_write_text, exclusive


def test_atomic_file_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_keeps_previous_version_on_crash(tmp_path):
    target = tmp_path / "adapter"
    with atomic_dir(target) as tmp:
        (tmp / "weights").write_text("v1")
    with pytest.raises(RuntimeError), atomic_dir(target, overwrite=True) as tmp:
        (tmp / "weights").write_text("v2-partial")
        raise RuntimeError("crash mid-save")
    assert (target / "weights").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "weights").write_text("v2")
    assert (target / "weights").read_text() == "v2"


def test_atomic_dir_refuses_to_clobber_without_overwrite(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(FileExistsError), atomic_dir(tmp_path / "x"):
        pass


def test_outputs_get_the_usual_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "w").write_text("x")
    finally:
        os.umask(mask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temp_leftovers_of_dead_processes_are_cleaned_on_the_next_write(tmp_path):
    pid = dead_pid()
    stale_dir = tmp_path / f".v5.{pid}-abcd1234.tmp"
    stale_dir.mkdir()
    (stale_dir / "weights").write_bytes(b"x" * 100)
    stale_file = tmp_path / f".sel.parquet.{pid}-00ff00ff.tmp"
    stale_file.write_text("half")
    mine = tmp_path / f".other.{__import__('os').getpid()}-12345678.tmp"
    mine.mkdir()  # a live process's (ours) temp folder stays
    atomic_write_text(tmp_path / "out.txt", "x")
    assert not stale_dir.exists() and not stale_file.exists()
    assert mine.exists()


def test_an_interrupted_swap_is_recovered(tmp_path):
    from lingualift.atomic import recover_swap

    target = tmp_path / "out"
    # A crash after moving the old folder aside and before the new one landed.
    old = tmp_path / f".out.old-{dead_pid()}"
    old.mkdir()
    (old / "kept").write_text("previous output")
    recover_swap(target)
    assert (target / "kept").read_text() == "previous output" and not old.exists()
    # A crash after the new folder landed and before the old one was removed.
    old.mkdir()
    recover_swap(target)
    assert not old.exists() and (target / "kept").is_file()
    # atomic_dir recovers before it writes.
    target.rename(old)
    with pytest.raises(RuntimeError), atomic_dir(target, overwrite=True):
        raise RuntimeError("crash")
    assert (target / "kept").read_text() == "previous output"


def test_owner_only_files_written_inside_an_atomic_dir_become_readable(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "adapter") as tmp:
            weights = tmp / "adapter_model.safetensors"
            weights.write_bytes(b"x")
            weights.chmod(0o600)  # what some libraries' temp-then-rename saves leave
    finally:
        os.umask(mask)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_mode & 0o777 == 0o644


def test_a_foreign_non_empty_folder_is_not_replaced_without_overwrite(tmp_path):
    from lingualift.atomic import check_replaceable
    from lingualift.errors import LingualiftError

    folder = tmp_path / "mine"
    folder.mkdir()
    check_replaceable(folder, "stage.json", overwrite=False)  # empty: fine
    (folder / "notes.txt").write_text("user data")
    with pytest.raises(LingualiftError, match="did not write.*overwrite=true"):
        check_replaceable(folder, "stage.json", overwrite=False)
    check_replaceable(folder, "stage.json", overwrite=True)
    (folder / "stage.json").write_text("{}")
    check_replaceable(folder, "stage.json", overwrite=False)  # ours: fine


def test_exclusive_leaves_no_lock_file_and_removes_the_folders_it_made_only_if_empty(tmp_path):
    target = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError), exclusive(target):
        assert (tmp_path / "a" / "b" / ".out.lock").is_file()
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []
    with exclusive(target):
        target.mkdir()
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["out"]


def test_exclusive_still_excludes_when_the_holder_removes_the_lock_file_and_its_folder(
    tmp_path, monkeypatch
):
    import threading

    from lingualift import atomic

    target = tmp_path / "new" / "out"
    tried, first_gone = threading.Event(), threading.Event()
    second_locks, inside, events = [], threading.Lock(), []
    real_path_lock = atomic.path_lock

    class PausingLock:
        """The second's lock: after its first failed try it waits until the first is gone."""

        def __init__(self, lock):
            self.lock, self.lock_file = lock, lock.lock_file

        def acquire(self):
            def pause_once():
                if not tried.is_set():
                    tried.set()
                    first_gone.wait(10)
                return False

            self.lock.acquire(cancel_check=pause_once)

        def release(self):
            self.lock.release()

    def path_lock(target, timeout=-1):
        lock = real_path_lock(target, timeout)
        if threading.current_thread() is threading.main_thread():
            return lock
        second_locks.append(lock)
        return PausingLock(lock)

    monkeypatch.setattr(atomic, "path_lock", path_lock)

    def second():
        with exclusive(target):
            assert inside.acquire(blocking=False), "two holders at once"
            events.append("second")
            inside.release()

    with pytest.raises(RuntimeError), exclusive(target):
        inside.acquire()
        thread = threading.Thread(target=second)
        thread.start()
        assert tried.wait(10)  # the second waits for the lock
        events.append("first")
        inside.release()
        raise RuntimeError  # the first fails: it removes the lock file and new/, then releases
    first_gone.set()
    thread.join(10)
    assert events == ["first", "second"] and list(tmp_path.iterdir()) == []
    assert len(second_locks) == 2  # the second found new/ gone, made it again, then locked
