"""Hot reload: promote and rollback apply without a restart; running requests keep their version."""

from __future__ import annotations

import threading

import torch

from lingualift.models import decoder_layers, load_causal_lm
from lingualift.serving.reload import AdapterRegistry

from .conftest import (
    SWAHILI,
    add_version,
    greedy_reference,
    live_server,
    openai_client,
    serve_config,
    wait_for,
)


def registry_for(model_dir, store, events=None, **kwargs):
    model, _ = load_causal_lm(str(model_dir))
    on_event = (
        (lambda kind, lang, detail: events.append((kind, lang))) if events is not None else None
    )
    return AdapterRegistry(model, store, on_event=on_event, **kwargs)


def logits_with(model, name, ids):
    """Logits of ``ids`` through PEFT adapter ``name`` of ``model``."""
    model.set_adapter(name)
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits


def logits_alone(model_dir, store, lang, version, ids):
    from peft import PeftModel

    model, _ = load_causal_lm(str(model_dir))
    model = PeftModel.from_pretrained(model, str(store.path(lang, version))).eval()
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits


def test_a_promoted_version_loads_beside_the_one_in_use_which_goes_when_released(model_dir, store):
    add_version(store, "sw", 3, promote=False)  # sw/v2
    events: list = []
    registry = registry_for(model_dir, store, events)
    assert registry.snapshot() == {"fr": "fr/v1", "sw": "sw/v1"}
    held = registry.acquire("sw")  # a request running on v1
    store.promote("sw", 2)
    assert registry.poll()
    assert registry.snapshot()["sw"] == "sw/v2"
    assert registry.loaded_names() == ["fr@v1", "sw@v1", "sw@v2"]
    assert not registry.collect()  # v1 is still in use
    ids = [1, 40, 50, 60, 70]
    torch.testing.assert_close(
        logits_with(registry.model, "sw@v2", ids), logits_alone(model_dir, store, "sw", 2, ids)
    )
    torch.testing.assert_close(
        logits_with(registry.model, "sw@v1", ids), logits_alone(model_dir, store, "sw", 1, ids)
    )
    registry.release(held)
    assert registry.collect()
    assert registry.loaded_names() == ["fr@v1", "sw@v2"]
    store.rollback("sw")
    assert registry.poll() and registry.snapshot()["sw"] == "sw/v1"
    registry.collect()
    assert registry.loaded_names() == ["fr@v1", "sw@v1"]
    torch.testing.assert_close(
        logits_with(registry.model, "sw@v1", ids), logits_alone(model_dir, store, "sw", 1, ids)
    )
    assert not registry.poll()  # nothing changed since
    assert [e for e in events if e[1] == "sw"] == [
        ("loaded", "sw"),
        ("loaded", "sw"),
        ("deleted", "sw"),
        ("loaded", "sw"),
        ("deleted", "sw"),
    ]


def test_versions_that_cannot_load_are_refused_and_the_old_one_keeps_serving(
    model_dir, store, tmp_path
):
    events: list = []
    registry = registry_for(model_dir, store, events)
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
        logits_with(registry.model, "sw@v1", ids), logits_alone(model_dir, store, "sw", 1, ids)
    )
    assert events.count(("failed", "sw")) == 3
    # A good version after the bad ones loads, and clears the failure.
    add_version(store, "sw", 7)  # sw/v5
    assert registry.poll() and registry.snapshot()["sw"] == "sw/v5"
    assert "sw" not in registry.failures


def test_a_first_adapter_turns_a_base_only_model_into_a_peft_model(model_dir, tmp_path):
    from lingualift.adapters import AdapterStore

    store = AdapterStore(tmp_path / "empty-store")
    registry = registry_for(model_dir, store)
    assert registry.snapshot() == {} and not hasattr(registry.model, "peft_config")
    add_version(store, "fr", 2)
    assert registry.poll()
    ids = [1, 40, 50]
    torch.testing.assert_close(
        logits_with(registry.model, "fr@v1", ids), logits_alone(model_dir, store, "fr", 1, ids)
    )


class StepGate:
    """A pre-hook on the first decoder layer that lets one forward pass through per permit."""

    def __init__(self, model, permits: int) -> None:
        self.permits = threading.Semaphore(permits)
        self.handle = decoder_layers(model)[0].register_forward_pre_hook(self._wait)

    def _wait(self, module, args):
        assert self.permits.acquire(timeout=30), "the test never let the step run"

    def open(self) -> None:
        self.permits.release(100_000)
        self.handle.remove()


def test_promote_during_a_request_it_finishes_on_its_version_the_next_gets_the_new(
    model_dir, store, tmp_path
):
    add_version(store, "sw", 3, promote=False)  # sw/v2
    config = serve_config(model_dir, store, tmp_path, reload_interval_s=0)  # poll every step
    with live_server(config) as (parts, url):
        client = openai_client(url)
        gate = StepGate(parts.engine.model, permits=3)  # prefill and two steps, then wait
        chunks: list = []

        def stream_a():
            with client.completions.with_streaming_response.create(
                model="sw",
                prompt=SWAHILI,
                max_tokens=40,
                temperature=0,
                stream=True,
                extra_body={"ignore_eos": True},
            ) as response:
                chunks.append(response.headers["x-lingualift-adapter"])
                chunks.extend(response.parse())

        a = threading.Thread(target=stream_a)
        a.start()
        wait_for(lambda: len(chunks) > 1, what="request A's first tokens")
        store.promote("sw", 2)
        gate.permits.release()  # one more step: after it the worker polls and loads v2
        wait_for(lambda: parts.registry.snapshot()["sw"] == "sw/v2", what="v2 to load")
        assert parts.registry.loaded_names() == ["fr@v1", "sw@v1", "sw@v2"]  # A holds v1
        gate.open()
        a.join(30)
        b = client.completions.with_raw_response.create(
            model="sw",
            prompt=SWAHILI,
            max_tokens=20,
            temperature=0,
            extra_body={"ignore_eos": True},
        )

        assert chunks[0] == "sw/v1"
        a_text = "".join(c.choices[0].text for c in chunks[1:])
        assert {c.lingualift["adapter"] for c in chunks[1:]} == {"sw/v1"}
        ids = parts.engine.encode(SWAHILI)
        assert a_text == greedy_reference(model_dir, store, "sw", ids, 40, version=1)
        assert b.headers["x-lingualift-adapter"] == "sw/v2"
        b_body = b.parse()
        assert b_body.lingualift["adapter"] == "sw/v2"
        assert b_body.choices[0].text == greedy_reference(
            model_dir, store, "sw", ids, 20, version=2
        )
        assert parts.registry.loaded_names() == ["fr@v1", "sw@v2"]  # v1 went once A let go
        loads = parts.metrics.registry.get_sample_value(
            "lingualift_adapter_reloads_total", {"lang": "sw"}
        )
        assert loads == 2  # at start, and on promote


def test_a_refused_version_is_reported_while_the_old_one_keeps_serving(model_dir, store, tmp_path):
    with live_server(serve_config(model_dir, store, tmp_path)) as (parts, url):
        add_version(store, "sw", 4, hidden_size=48)  # current now, but for another base model
        failures = lambda: parts.metrics.registry.get_sample_value(  # noqa: E731
            "lingualift_adapter_reload_failures_total", {"lang": "sw"}
        )
        wait_for(failures, what="the refusal")
        answer = openai_client(url).completions.create(model="sw", prompt="jambo", max_tokens=3)
        assert answer.lingualift["adapter"] == "sw/v1"
        health = parts.app.state.service.health().body
        assert b"trained on a different base model" in health and b'"sw":"sw/v1"' in health
        # A new language in the store is served without a restart.
        add_version(store, "hi", 5)
        wait_for(lambda: "hi" in parts.registry.snapshot(), what="hi to load")
        answer = openai_client(url).completions.create(model="hi", prompt="namaste", max_tokens=3)
        assert answer.lingualift["adapter"] == "hi/v1"
        assert failures() == 1  # reported once, not on every poll


def test_a_base_only_server_picks_up_its_first_adapter(model_dir, tmp_path):
    from lingualift.adapters import AdapterStore

    store = AdapterStore(tmp_path / "empty-store")
    config = serve_config(model_dir, store, tmp_path, allow_empty_store=True)
    with live_server(config) as (parts, url):
        client = openai_client(url)
        assert [m.id for m in client.models.list().data] == ["tiny", "auto"]
        answer = client.completions.create(model="auto", prompt=SWAHILI, max_tokens=3)
        assert (
            answer.lingualift["adapter"] is None and answer.lingualift["fallback"] == "no_adapter"
        )
        add_version(store, "sw", 1)
        wait_for(lambda: parts.registry.snapshot().get("sw"), what="the first adapter")
        answer = client.completions.create(
            model="auto",
            prompt=SWAHILI,
            max_tokens=6,
            temperature=0,
            extra_body={"ignore_eos": True},
        )
        assert answer.lingualift["adapter"] == "sw/v1"
        ids = parts.engine.encode(SWAHILI)
        assert answer.choices[0].text == greedy_reference(model_dir, store, "sw", ids, 6)
