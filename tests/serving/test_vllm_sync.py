"""Promote and rollback reach a running vLLM (a fake one) through its runtime LoRA endpoints."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

from lingualift.serving.server import ServerThread, bind_socket
from lingualift.serving.vllm import RUNTIME_LORA_ENV
from lingualift.serving.vllm_sync import VllmAdapterSync

from ..adapters.conftest import add_version
from .fake_vllm import FakeVllm


def started_like_the_command(store) -> FakeVllm:
    """vLLM as ``vllm serve ... --lora-modules fr=<store>/fr/v1 sw=<store>/sw/v1`` left it."""
    loras = {lang: str(store.path(lang, 1).resolve()) for lang in ("fr", "sw")}
    return FakeVllm(loras=loras)


def make_sync(url, store, events=None, **options) -> VllmAdapterSync:
    on_event = (lambda *event: events.append(event)) if events is not None else None
    return VllmAdapterSync(url, store, retry_min_s=0.05, on_event=on_event, **options)


def test_promote_and_rollback_load_a_name_per_version_and_unload_the_old_one(store):
    fake = started_like_the_command(store)
    events: list = []

    async def scenario(url):
        sync = make_sync(url, store, events)
        assert await sync.sync()  # adopts what the start-up command loaded: nothing to load
        assert sync.snapshot() == {"fr": "fr/v1", "sw": "sw/v1"}
        assert sync.current("sw").name == "sw" and fake.lora_calls() == []
        add_version(store, "sw", 3)  # saved and promoted: sw/v2 is current
        assert await sync.sync()
        v2 = str((store.root / "sw" / "v2").resolve())
        assert fake.lora_calls() == [
            ("load", {"lora_name": "sw@v2", "lora_path": v2}),
            ("unload", {"lora_name": "sw"}),  # nobody was using it
        ]
        assert (
            sync.snapshot() == {"fr": "fr/v1", "sw": "sw/v2"} and sync.current("sw").name == "sw@v2"
        )
        assert not await sync.sync()  # nothing changed: no call
        assert len(fake.lora_calls()) == 2
        store.rollback("sw")
        assert await sync.sync()
        v1 = str((store.root / "sw" / "v1").resolve())
        assert fake.lora_calls()[2:] == [
            ("load", {"lora_name": "sw@v1", "lora_path": v1}),
            ("unload", {"lora_name": "sw@v2"}),
        ]
        assert fake.loras == {"fr": str(store.path("fr").resolve()), "sw@v1": v1}
        await sync.aclose()

    with ServerThread(fake.app) as upstream:
        asyncio.run(scenario(upstream.url))
    assert [e[:2] for e in events] == [
        ("loaded", "fr"), ("loaded", "sw"),  # at start
        ("loaded", "sw"), ("deleted", "sw"),  # promote
        ("loaded", "sw"), ("deleted", "sw"),  # rollback
    ]  # fmt: skip


def test_a_replaced_version_stays_loaded_while_a_request_holds_it(store):
    fake = started_like_the_command(store)

    async def scenario(url):
        sync = make_sync(url, store)
        await sync.sync()
        held = sync.acquire("sw")  # a request the front sent to sw/v1, still running
        add_version(store, "sw", 3)
        await sync.sync()
        assert sync.current("sw").label == "sw/v2" and held.label == "sw/v1"
        await sync.sync()
        assert ("unload", {"lora_name": "sw"}) not in fake.lora_calls()  # still in use
        store.rollback("sw")  # back to sw/v1, which vLLM still holds: no load
        await sync.sync()
        assert sync.current("sw") is held and fake.lora_calls()[-1] == (
            "unload",
            {"lora_name": "sw@v2"},
        )
        add_version(store, "sw", 4)  # sw/v3
        await sync.sync()
        assert sync.current("sw").name == "sw@v3" and "sw" in fake.loras  # held still
        sync.release(held)
        await sync.sync()
        assert fake.lora_calls()[-1] == ("unload", {"lora_name": "sw"})
        loads = [body["lora_name"] for route, body in fake.lora_calls() if route == "load"]
        assert loads == ["sw@v2", "sw@v3"]
        await sync.aclose()

    with ServerThread(fake.app) as upstream:
        asyncio.run(scenario(upstream.url))


def test_a_failed_load_keeps_the_old_version_serving_and_is_retried_with_backoff(store, caplog):
    fake = started_like_the_command(store)
    fake.fail_loads = 2
    events: list = []

    async def scenario(url):
        sync = make_sync(url, store, events)
        await sync.sync()
        add_version(store, "sw", 3)
        tried = []
        deadline = time.monotonic() + 10
        while sync.current("sw").label != "sw/v2" and time.monotonic() < deadline:
            await sync.sync()
            loads = sum(1 for call in fake.lora_calls() if call[0] == "load")
            if not tried or loads != tried[-1][1]:
                tried.append((time.monotonic(), loads))
            if sync.current("sw").label == "sw/v1":
                assert "sw" in fake.loras  # the old one keeps serving meanwhile
            await asyncio.sleep(0.01)
        assert sync.current("sw").label == "sw/v2" and sync.failures == {}
        # three attempts, 0.05 s then 0.1 s apart (backoff doubling), not one per pass
        assert [loads for _, loads in tried] == [1, 2, 3]
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(tried)]
        assert gaps[0] >= 0.045 and gaps[1] >= 0.095
        await sync.aclose()

    with (
        caplog.at_level(logging.INFO, "lingualift.serving.vllm_sync"),
        ServerThread(fake.app) as up,
    ):
        asyncio.run(scenario(up.url))
    failed = [e for e in events if e[0] == "failed"]
    assert len(failed) == 2 and "CUDA out of memory" in failed[0][2]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and "sw/v1 keeps serving" in errors[0] and "next try in" in errors[0]
    assert any("vLLM serves sw/v2 as sw@v2 (was sw/v1)" in r.getMessage() for r in caplog.records)


def test_a_version_vllm_cannot_serve_is_refused_once_without_asking_it(store):
    import json

    fake = started_like_the_command(store)
    events: list = []
    version = add_version(store, "sw", 3, promote=False)
    config = json.loads((version.path / "adapter_config.json").read_text())
    (version.path / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))

    async def scenario(url):
        sync = make_sync(url, store, events, max_lora_rank=8)
        await sync.sync()
        store.promote("sw", 2)
        for _ in range(3):
            await sync.sync()
        assert sync.current("sw").label == "sw/v1" and "DoRA" in sync.failures["sw"]
        await sync.aclose()

    with ServerThread(fake.app) as upstream:
        asyncio.run(scenario(upstream.url))
    assert fake.lora_calls() == []
    assert [e[:2] for e in events if e[0] == "failed"] == [("failed", "sw")]


def test_without_the_runtime_routes_the_failure_names_the_environment_variable(store):
    fake = FakeVllm(loras={"sw": str(store.path("sw").resolve())}, runtime_lora=False)

    async def scenario(url):
        sync = make_sync(url, store, langs=["sw"])
        await sync.sync()
        add_version(store, "sw", 3)
        await sync.sync()
        assert sync.current("sw").label == "sw/v1"
        assert RUNTIME_LORA_ENV in sync.failures["sw"] and "HTTP 404" in sync.failures["sw"]
        await sync.aclose()

    with ServerThread(fake.app) as upstream:
        asyncio.run(scenario(upstream.url))


def test_an_unreachable_vllm_is_waited_for_and_a_restart_is_noticed(store, caplog):
    with bind_socket("127.0.0.1", 0) as sock:  # a port nobody listens on
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def unreachable():
        sync = make_sync(dead, store)
        for _ in range(3):
            assert not await sync.sync()
        assert sync.snapshot() == {}
        await sync.aclose()

    with caplog.at_level(logging.WARNING, "lingualift.serving.vllm_sync"):
        asyncio.run(unreachable())
    assert len([r for r in caplog.records if "does not answer" in r.getMessage()]) == 1

    # vLLM restarted from its command after sw/v2 was loaded: the sync loads sw/v2 again.
    add_version(store, "sw", 3)
    fake = started_like_the_command(store)  # sw is v1 there, v2 is current in the store
    assert fake.loras["sw"].endswith("v1")

    async def restarted(url):
        sync = make_sync(url, store)
        await sync.sync()
        assert sync.snapshot()["sw"] == "sw/v2"
        fake.loras.clear()  # vLLM restarted with nothing
        fake.loras["fr"] = str(store.path("fr").resolve())
        fake.loras["sw"] = str((store.root / "sw" / "v1").resolve())
        await sync.sync()
        assert sync.current("sw").name == "sw@v2" and "sw@v2" in fake.loras
        await sync.aclose()

    with ServerThread(fake.app) as upstream:
        asyncio.run(restarted(upstream.url))
    loads = [body["lora_name"] for route, body in fake.lora_calls() if route == "load"]
    assert loads == ["sw@v2", "sw@v2"]
