import json

import pytest

from lingualift.adapters.store import AdapterStore, check_base_model
from lingualift.errors import LingualiftError


def fake_adapter(folder, tag="x"):
    """The two files of a PEFT adapter folder (a real, tiny safetensors file)."""
    import torch
    from safetensors.torch import save_file

    (folder / "adapter_config.json").write_text(json.dumps({"r": 4, "tag": tag}))
    save_file({"w": torch.zeros(4)}, str(folder / "adapter_model.safetensors"), {"tag": tag})


def tag_of(folder):
    from safetensors import safe_open

    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as handle:
        return handle.metadata()["tag"]


def test_versions_current_pointer_promote_and_rollback(tmp_path):
    store = AdapterStore(tmp_path / "adapters")
    v1 = store.save("swa", writer=lambda d: fake_adapter(d, "1"), card={"metrics": {"steps": 1}})
    assert (v1.lang, v1.version, v1.current) == ("sw", 1, True)
    assert v1.path == tmp_path / "adapters" / "sw" / "v1"
    card = json.loads((v1.path / "card.json").read_text())
    assert card["lang"] == "sw" and card["version"] == 1 and card["created"]
    v2 = store.save("sw", writer=lambda d: fake_adapter(d, "2"))
    v3 = store.save("sw", writer=lambda d: fake_adapter(d, "3"), promote=False)
    assert store.path("sw") == v2.path  # v3 was not promoted
    assert store.path("Swahili", "v3") == v3.path
    assert [v.version for v in store.list("sw") if v.current] == [2]
    store.promote("sw", 3)
    assert store.current_version("sw") == 3
    assert store.rollback("sw").version == 2
    assert store.rollback("sw").version == 1
    with pytest.raises(LingualiftError, match="no earlier current version"):
        store.rollback("sw")
    assert store.languages() == ["sw"]


def test_crash_mid_save_leaves_previous_version_intact(tmp_path):
    store = AdapterStore(tmp_path)
    store.save("sw", writer=lambda d: fake_adapter(d, "good"))
    before = sorted(p.name for p in (tmp_path / "sw").iterdir())

    def crashing_writer(folder):
        fake_adapter(folder, "half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        store.save("sw", writer=crashing_writer)
    assert sorted(p.name for p in (tmp_path / "sw").iterdir()) == before
    assert store.versions("sw") == [1] and store.current_version("sw") == 1
    assert tag_of(store.path("sw")) == "good"
    # The next save still gets the next number.
    assert store.save("sw", writer=lambda d: fake_adapter(d, "next")).version == 2


def test_bad_requests_are_one_clear_sentence(tmp_path):
    store = AdapterStore(tmp_path)
    with pytest.raises(LingualiftError, match=r"No adapter for language 'yo'.*lingualift train"):
        store.path("yo")
    store.save("sw", writer=lambda d: fake_adapter(d))
    with pytest.raises(LingualiftError, match="has no version v7"):
        store.path("sw", 7)
    (store.path("sw") / "adapter_model.safetensors").unlink()
    with pytest.raises(LingualiftError, match="missing or incomplete .*adapter_model.safetensors"):
        store.path("sw")
    v2 = store.save("sw", writer=lambda d: fake_adapter(d))
    (v2.path / "adapter_config.json").write_text("{not json")
    with pytest.raises(LingualiftError, match="adapter_config.json is corrupt"):
        store.path("sw")
    with pytest.raises(LingualiftError, match="Unknown language 'zz'"):
        store.path("zz")
    with pytest.raises(LingualiftError, match="not a PEFT adapter folder"):
        store.save("sw", source=tmp_path / "nowhere")


def test_base_model_check_names_the_difference():
    card = {
        "base_model": {
            "spec": "embedded:gemma-3-270m",
            "model_type": "gemma3_text",
            "hidden_size": 640,
            "num_layers": 18,
            "vocab_size": 262144,
        }
    }
    same = dict(card["base_model"], spec="/some/path")
    check_base_model(card, same, "sw/v1")
    other = dict(card["base_model"], model_type="llama", hidden_size=64)
    with pytest.raises(
        LingualiftError,
        match=r"sw/v1 was trained on a different base model .*hidden_size 640 vs 64",
    ):
        check_base_model(card, other, "sw/v1")


def test_the_history_decides_what_is_current_so_rollback_returns_to_a_real_current(
    tmp_path, monkeypatch
):
    import lingualift.adapters.store as store_module

    store = AdapterStore(tmp_path)
    for tag in ("1", "2", "3", "4"):
        store.save("sw", writer=lambda d, t=tag: fake_adapter(d, t))
    real_write = store_module.atomic_write_text

    def crash_on_history(path, text):
        if str(path).endswith("history.jsonl"):
            raise KeyboardInterrupt  # killed before the commit point
        real_write(path, text)

    monkeypatch.setattr(store_module, "atomic_write_text", crash_on_history)
    with pytest.raises(KeyboardInterrupt):
        store.save("sw", writer=lambda d: fake_adapter(d, "5"))
    monkeypatch.setattr(store_module, "atomic_write_text", real_write)
    assert store.versions("sw") == [1, 2, 3, 4, 5] and store.current_version("sw") == 4
    store.save("sw", writer=lambda d: fake_adapter(d, "6"))
    assert store.rollback("sw").version == 4  # v5 was never current

    # Killed between the history write and the pointer file: the history wins.
    def crash_on_pointer(path, text):
        if str(path).endswith("current"):
            raise KeyboardInterrupt
        real_write(path, text)

    monkeypatch.setattr(store_module, "atomic_write_text", crash_on_pointer)
    with pytest.raises(KeyboardInterrupt):
        store.promote("sw", 2)
    monkeypatch.setattr(store_module, "atomic_write_text", real_write)
    assert (tmp_path / "sw" / "current").read_text().strip() == "v4"
    assert store.current_version("sw") == 2
    assert store.rollback("sw").version == 4


def test_damaged_versions_are_refused_by_promote_and_marked_in_the_list(tmp_path):
    store = AdapterStore(tmp_path)
    store.save("sw", writer=lambda d: fake_adapter(d, "1"))
    v2 = store.save("sw", writer=lambda d: fake_adapter(d, "2"), promote=False)
    weights = v2.path / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-5])  # truncated
    with pytest.raises(LingualiftError, match="damaged .*truncated"):
        store.promote("sw", 2)
    assert store.current_version("sw") == 1
    v3 = store.save("sw", writer=lambda d: fake_adapter(d, "3"))
    (v3.path / "adapter_config.json").unlink()
    rows = {v.version: v for v in store.list("sw")}
    assert rows[1].problem is None and "truncated" in rows[2].problem
    assert rows[3].current and "adapter_config.json" in rows[3].problem


def test_decisions_are_recorded_without_moving_the_pointer(tmp_path):
    store = AdapterStore(tmp_path)
    store.save("sw", writer=lambda d: fake_adapter(d, "1"))
    store.save("sw", writer=lambda d: fake_adapter(d, "2"), promote=False)
    store.record("sw", {"action": "keep", "candidate": 2, "reason": "old set got worse"})
    assert store.current_version("sw") == 1
    assert store.history("sw")[-1]["action"] == "keep"
    store.promote("sw", 2, evidence={"gate": {"new_gain": 0.1}})
    assert store.history("sw")[-1]["gate"] == {"new_gain": 0.1}
    assert store.rollback("sw").version == 1


def test_stored_files_are_readable_by_other_users(tmp_path):
    import os

    from peft import get_peft_model

    from lingualift.testing import tiny_causal_lm
    from lingualift.training import LoraSettings

    model, _ = tiny_causal_lm("llama", hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1)
    peft_model = get_peft_model(model, LoraSettings(r=2).peft_config())
    mask = os.umask(0o022)
    try:
        version = AdapterStore(tmp_path).save("sw", peft_model)
    finally:
        os.umask(mask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in version.path.iterdir() if p.is_file()}
    assert modes and set(modes.values()) == {0o644}, modes


def three_versions_v3_current(root):
    """sw v1 saved (current), v2 and v3 saved aside, then v3 promoted."""
    store = AdapterStore(root)
    for tag in ("1", "2", "3"):
        store.save("sw", writer=lambda d, t=tag: fake_adapter(d, t), promote=tag == "1")
    store.promote("sw", 3)
    return store, root / "sw" / "history.jsonl"


def test_a_torn_history_line_that_moved_the_pointer_is_refused_until_a_promote_settles_it(
    tmp_path,
):
    store, history = three_versions_v3_current(tmp_path)
    whole = history.read_bytes()
    history.write_bytes(whole[:-20])  # the promote of v3 cut off mid-line
    # Before: the torn line was skipped and v1 became current while `current` said v3.
    with pytest.raises(LingualiftError, match=r"history.jsonl:2 is cut off.*makes v1 current "
                       r"while .*current says v3.*adapters promote sw v3"):  # fmt: skip
        store.current_version("sw")
    with pytest.raises(LingualiftError, match="is cut off"):
        store.rollback("sw")
    with pytest.raises(LingualiftError, match="is cut off"):
        store.record("sw", {"action": "keep"})
    assert store.promote("sw", 3).current
    assert history.read_bytes().endswith(b"\n") and len(store.history("sw")) == 2
    assert store.history("sw")[-1]["previous"] == 1
    assert store.rollback("sw").version == 1


def test_a_torn_history_line_the_current_file_agrees_with_is_ignored_with_a_warning(
    tmp_path, caplog
):
    store, history = three_versions_v3_current(tmp_path)
    store.record("sw", {"action": "keep", "candidate": 2})
    whole = history.read_bytes()
    history.write_bytes(whole[: whole.rindex(b"candidate")])  # the gate's line cut off
    with caplog.at_level("WARNING"):
        assert store.current_version("sw") == 3
    assert "history.jsonl:3 is cut off" in caplog.text and "makes v3 current" in caplog.text
    assert [e["action"] for e in store.history("sw")] == ["save", "promote"]
    store.record("sw", {"action": "keep", "candidate": 2})  # the next write drops the torn line
    assert [e["action"] for e in store.history("sw")] == ["save", "promote", "keep"]
    assert history.read_bytes().endswith(b"\n")


def test_an_unreadable_history_line_or_byte_is_named_by_line(tmp_path):
    store, history = three_versions_v3_current(tmp_path)
    lines = history.read_bytes().splitlines(keepends=True)
    history.write_bytes(lines[0] + b'{"action": "promote", "version": 2\n' + lines[1])
    with pytest.raises(LingualiftError, match=r"history.jsonl:2: not a history entry"):
        store.current_version("sw")
    history.write_bytes(lines[0] + b'{"action": "promote", "caf\xe9": 2}\n' + lines[1])
    with pytest.raises(LingualiftError, match=r"history.jsonl:2: byte \d+ .* is not UTF-8"):
        store.list("sw")
    history.write_bytes(lines[0] + b"[1, 2]\n")  # whole, but not an entry
    with pytest.raises(LingualiftError, match=r"history.jsonl:2: not a history entry"):
        store.history("sw")


def test_a_version_that_links_out_of_the_store_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    fake_adapter(outside, "outside")
    store = AdapterStore(tmp_path / "store")
    store.save("sw", writer=lambda d: fake_adapter(d, "1"))
    (tmp_path / "store" / "sw" / "v2").symlink_to(outside, target_is_directory=True)
    assert store.versions("sw") == [1, 2]
    with pytest.raises(LingualiftError, match=r"v2 links to .*elsewhere, outside the store"):
        store.promote("sw", 2)
    with pytest.raises(LingualiftError, match="outside the store"):
        store.get("sw", 2)
    rows = {v.version: v for v in store.list("sw")}
    assert rows[1].problem is None and "outside the store" in rows[2].problem
    assert rows[2].card == {}  # nothing read from outside
    # A file inside a real version folder that links out is refused the same way.
    v3 = store.save("sw", writer=lambda d: fake_adapter(d, "3"), promote=False)
    (v3.path / "adapter_model.safetensors").unlink()
    (v3.path / "adapter_model.safetensors").symlink_to(outside / "adapter_model.safetensors")
    with pytest.raises(LingualiftError, match="adapter_model.safetensors links to"):
        store.path("sw", 3)
    # A link that stays inside the store is only a second name for a stored version.
    (tmp_path / "store" / "sw" / "v4").symlink_to("v1", target_is_directory=True)
    assert tag_of(store.path("sw", 4)) == "1"
    assert store.current_version("sw") == 1
