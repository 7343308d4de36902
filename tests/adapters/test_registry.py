"""The adapter registry: fit checks on every path, versions side by side, mixed batches."""

from __future__ import annotations

import logging

import pytest
import torch
from peft import PeftModel

from lingualift.adapters import AdapterStore
from lingualift.adapters.registry import AdapterRegistry
from lingualift.errors import LingualiftError
from lingualift.testing import tiny_causal_lm

from .conftest import TINY, add_version, make_store


@pytest.fixture
def store(tmp_path):
    """sw/v1 and fr/v1, random adapters on the tiny model."""
    return make_store(tmp_path / "store")


def registry_for(store, events=None, **kwargs):
    model, _ = tiny_causal_lm("llama", **TINY)
    on_event = (
        (lambda kind, lang, detail: events.append((kind, lang))) if events is not None else None
    )
    return AdapterRegistry(model, store, on_event=on_event, **kwargs)


def logits_with(model, name, ids):
    """Logits of ``ids`` through PEFT adapter ``name`` of ``model``."""
    model.set_adapter(name)
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits


def logits_alone(store, lang, version, ids):
    """Logits of ``ids`` with one stored version applied the plain PEFT way."""
    model, _ = tiny_causal_lm("llama", **TINY)
    model = PeftModel.from_pretrained(model, str(store.path(lang, version))).eval()
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits


def test_a_promoted_version_loads_beside_the_one_in_use_which_goes_when_released(store):
    add_version(store, "sw", 3, promote=False)  # sw/v2
    events: list = []
    registry = registry_for(store, events)
    assert registry.snapshot() == {"fr": "fr/v1", "sw": "sw/v1"}
    held = registry.acquire("sw")  # a request running on v1
    store.promote("sw", 2)
    assert registry.poll()
    assert registry.snapshot()["sw"] == "sw/v2"
    assert registry.loaded_names() == ["fr@v1", "sw@v1", "sw@v2"]
    assert not registry.collect()  # v1 is still in use
    ids = [1, 40, 50, 60, 70]
    torch.testing.assert_close(
        logits_with(registry.model, "sw@v2", ids), logits_alone(store, "sw", 2, ids)
    )
    torch.testing.assert_close(
        logits_with(registry.model, "sw@v1", ids), logits_alone(store, "sw", 1, ids)
    )
    registry.release(held)
    assert registry.collect()
    assert registry.loaded_names() == ["fr@v1", "sw@v2"]
    store.rollback("sw")
    assert registry.poll() and registry.snapshot()["sw"] == "sw/v1"
    registry.collect()
    assert registry.loaded_names() == ["fr@v1", "sw@v1"]
    torch.testing.assert_close(
        logits_with(registry.model, "sw@v1", ids), logits_alone(store, "sw", 1, ids)
    )
    assert not registry.poll()  # nothing changed since
    assert [e for e in events if e[1] == "sw"] == [
        ("loaded", "sw"),
        ("loaded", "sw"),
        ("deleted", "sw"),
        ("loaded", "sw"),
        ("deleted", "sw"),
    ]


def test_versions_that_cannot_load_are_refused_and_the_old_one_keeps_serving(store, tmp_path):
    events: list = []
    registry = registry_for(store, events)
    # Another base model, said by its card.
    add_version(store, "sw", 4, hidden_size=48)  # sw/v2, saved as current
    assert not registry.poll()
    assert "trained on a different base model" in registry.failures["sw"]
    # Damaged weights (promoted while whole, truncated after).
    add_version(store, "sw", 5, promote=False)  # sw/v3
    store.promote("sw", 3)
    weights = store.root / "sw" / "v3" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert not registry.poll()
    assert "damaged" in registry.failures["sw"]
    # No card, shapes of another model: refused before PEFT touches the model.
    add_version(store, "sw", 6, promote=False, hidden_size=48)  # sw/v4
    (store.root / "sw" / "v4" / "card.json").unlink()
    store.promote("sw", 4)
    assert not registry.poll()
    assert "does not fit this base model" in registry.failures["sw"]
    assert registry.snapshot()["sw"] == "sw/v1"
    assert registry.loaded_names() == ["fr@v1", "sw@v1"]
    ids = [1, 40, 50, 60]
    torch.testing.assert_close(
        logits_with(registry.model, "sw@v1", ids), logits_alone(store, "sw", 1, ids)
    )
    assert events.count(("failed", "sw")) == 3
    # A good version after the bad ones loads, and clears the failure.
    add_version(store, "sw", 7)  # sw/v5
    assert registry.poll() and registry.snapshot()["sw"] == "sw/v5"
    assert "sw" not in registry.failures


def test_a_first_adapter_turns_a_base_only_model_into_a_peft_model(tmp_path):
    store = AdapterStore(tmp_path / "empty-store")
    registry = registry_for(store)
    assert registry.snapshot() == {} and not hasattr(registry.model, "peft_config")
    add_version(store, "fr", 2)
    assert registry.poll()
    ids = [1, 40, 50]
    torch.testing.assert_close(
        logits_with(registry.model, "fr@v1", ids), logits_alone(store, "fr", 1, ids)
    )


def copy_without_card(folder, target):
    target.mkdir()
    for f in folder.iterdir():
        if f.name != "card.json":
            (target / f.name).write_bytes(f.read_bytes())
    return target


def test_pinned_folders_get_the_same_fit_checks_and_strict_raises_the_first_refusal(
    store, tmp_path
):
    # A card-less copy of an adapter for another shape: refused from the safetensors header,
    # before PEFT injects layers, so the good folder beside it stays the only adapter.
    add_version(store, "hi", 4, hidden_size=48)
    wrong = copy_without_card(store.path("hi"), tmp_path / "wrong")
    good = copy_without_card(store.path("sw"), tmp_path / "good")
    events: list = []
    registry = registry_for(None, events, folders={"sw": good, "hi": wrong})
    assert registry.snapshot() == {"sw": str(good)}
    assert registry.loaded_names() == ["sw@folder"]
    assert "does not fit this base model" in registry.failures["hi"]
    assert events == [("loaded", "sw"), ("failed", "hi")]
    ids = [1, 40, 50, 60]
    torch.testing.assert_close(
        logits_with(registry.model, "sw@folder", ids), logits_alone(store, "sw", 1, ids)
    )
    with pytest.raises(LingualiftError, match=r"^Adapter .*wrong does not fit this base model"):
        registry_for(None, folders={"hi": wrong}, strict=True)
    with pytest.raises(LingualiftError, match="trained on a different base model"):
        registry_for(store, langs=["hi"], strict=True)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "adapter_config.json").write_text("{}")
    with pytest.raises(LingualiftError, match="not a PEFT adapter folder"):
        registry_for(None, folders={"sw": tmp_path / "half"}, strict=True)


def test_a_mixed_batch_runs_stacked_lora_and_equals_pefts_adapter_names(store):
    registry = registry_for(store)
    sw, fr = registry.current("sw"), registry.current("fr")
    ids = torch.randint(3, 100, (4, 6), generator=torch.Generator().manual_seed(0))
    rows = [sw, None, fr, sw]
    with torch.inference_mode():
        expected = registry.model(ids, adapter_names=["sw@v1", "__base__", "fr@v1", "sw@v1"])
        with registry.batch(rows) as extra:
            assert extra == {}  # stacked: no per-adapter loop through PEFT's adapter_names
            got = registry.model(ids, **extra)
        with registry.batch([fr, fr]) as extra:  # one adapter for every row: PEFT's own path
            alone = registry.model(ids[:2], **extra)
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(alone.logits[0], logits_alone(store, "fr", 1, ids[0].tolist())[0])
    assert not torch.allclose(got.logits[0], got.logits[2])  # the adapters differ


def test_adapter_kinds_that_cannot_be_stacked_batch_through_pefts_adapter_names(tmp_path, caplog):
    from peft import LoraConfig, get_peft_model

    store = AdapterStore(tmp_path / "dora")
    for lang, seed in (("sw", 1), ("fr", 2)):
        torch.manual_seed(seed)
        config = LoraConfig(
            r=4, target_modules="all-linear", init_lora_weights=False, use_dora=True
        )
        store.save(lang, get_peft_model(tiny_causal_lm("llama", **TINY)[0], config))
    registry = registry_for(store)
    with caplog.at_level(logging.WARNING, logger="lingualift.adapters.registry"):
        for _ in range(2):  # the reason is logged once per set of adapters, not per batch
            with registry.batch([registry.current("sw"), registry.current("fr")]) as extra:
                assert extra == {"adapter_names": ["sw@v1", "fr@v1"]}
    fallbacks = [r for r in caplog.records if "PEFT's per-adapter path" in r.getMessage()]
    assert len(fallbacks) == 1 and "LoRA variant (DoraLinearVariant" in fallbacks[0].getMessage()


def test_pickled_only_adapter_folders_are_refused_in_one_sentence(store, tmp_path):
    import shutil

    version = store.path("sw")
    pickled = tmp_path / "pickled"
    shutil.copytree(version, pickled)
    (pickled / "adapter_model.safetensors").unlink()
    (pickled / "adapter_model.bin").write_bytes(b"not loaded: a pickle can run code")
    with pytest.raises(LingualiftError, match="only pickled adapter weights .adapter_model.bin"):
        registry_for(None, folders={"sw": pickled}, strict=True)
    # A store version holding only a pickle is refused the same way (the old one keeps serving).
    registry = registry_for(store)
    v2 = store.save("sw", source=version, promote=True)
    (v2.path / "adapter_model.safetensors").unlink()  # swapped for a pickle once promoted
    (v2.path / "adapter_model.bin").write_bytes(b"not loaded")
    registry.poll()
    assert "only pickled adapter weights" in registry.failures["sw"]
    assert registry.snapshot()["sw"] == "sw/v1"
