import json

import pytest

from lingualift.adapters.store import AdapterStore, check_base_model
from lingualift.errors import LingualiftError


def fake_adapter(folder, tag="x"):
    """The two files of a PEFT adapter folder (contents are not parsed by the store)."""
    (folder / "adapter_config.json").write_text(json.dumps({"r": 4, "tag": tag}))
    (folder / "adapter_model.safetensors").write_bytes(b"weights-" + tag.encode())


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
    assert (store.path("sw") / "adapter_model.safetensors").read_bytes() == b"weights-good"
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
