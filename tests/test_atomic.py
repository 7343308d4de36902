import pytest

from lingualift.atomic import atomic_dir, atomic_path, atomic_write_text


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
