"""Hot reload in a live server: promote and rollback apply without a restart; running requests
keep their version (the registry itself: tests/adapters/test_registry.py)."""

from __future__ import annotations

import threading

import httpx

from lingualift.models import decoder_layers

from ..adapters.conftest import add_version
from .conftest import (
    SWAHILI,
    greedy_reference,
    live_server,
    openai_client,
    serve_config,
    wait_for,
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
        health = httpx.get(f"{url}/health").json()
        assert "trained on a different base model" in health["refused"]["sw"]
        assert health["adapters"]["sw"] == "sw/v1"
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
