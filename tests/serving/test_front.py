"""The routing front: language identification rewrites ``model``, the upstream answers."""

from __future__ import annotations

import re
import time

import httpx
import openai
import pytest
from fastapi import FastAPI, Request

from lingualift.data.traffic import ROW_FIELDS, read_segments
from lingualift.langid import LanguageIdentifier
from lingualift.serving.front import RoutingFront, create_front_app
from lingualift.serving.metrics import ServingMetrics
from lingualift.serving.server import ServerThread, bind_socket
from lingualift.serving.traffic import TrafficLog
from lingualift.serving.vllm_sync import VllmAdapterSync

from ..adapters.conftest import add_version
from .conftest import (
    ENGLISH,
    FRENCH,
    SWAHILI,
    live_server,
    openai_client,
    serve_config,
    wait_for,
)
from .fake_vllm import FakeVllm


def front_server(upstream: str, traffic=None, api_key=None, **options) -> ServerThread:
    front = RoutingFront(
        upstream,
        base_model="tiny",
        identifier=LanguageIdentifier(),
        traffic=traffic,
        api_key=api_key,
        **options,
    )
    return ServerThread(create_front_app(front))


def test_the_front_routes_by_language_and_forwards_unchanged(model_dir, store, tmp_path):
    config = serve_config(model_dir, store, tmp_path, log_traffic=False)
    traffic = TrafficLog(tmp_path / "front-log")
    with live_server(config) as (parts, upstream), front_server(upstream, traffic) as front:
        assert route_table(front.app) == route_table(parts.app)  # one route table, two apps
        client = openai_client(front.url)
        assert [m.id for m in client.models.list().data] == ["tiny", "fr", "sw", "auto"]
        cases = [(FRENCH, "fr", "fr/v1"), (SWAHILI, "sw", "sw/v1"), (ENGLISH, "tiny", "base")]
        for text, routed, adapter in cases:
            raw = client.completions.with_raw_response.create(
                model="auto", prompt=text, max_tokens=4, temperature=0
            )
            assert raw.headers["x-lingualift-route"] == routed
            assert raw.headers["x-lingualift-adapter"] == adapter
            answer = raw.parse()
            assert answer.model == routed  # the upstream saw the rewritten model
            direct = openai_client(upstream).completions.create(
                model=routed, prompt=text, max_tokens=4, temperature=0
            )
            assert answer.choices[0].text == direct.choices[0].text
        # Streams pass through byte for byte; named languages pass through as they are.
        chunks = list(
            client.chat.completions.create(
                model="sw",
                messages=[{"role": "user", "content": FRENCH}],
                max_tokens=3,
                stream=True,
            )
        )
        assert chunks[0].lingualift["adapter"] == "sw/v1" and chunks[-1].choices[0].finish_reason
        with pytest.raises(openai.NotFoundError):
            client.completions.create(model="zz-nope", prompt="hi", max_tokens=2)
    rows = list(read_segments(tmp_path / "front-log"))
    assert [(r["model"], r["lang"], r["adapter"], r["status"]) for r in rows] == [
        ("auto", "fr", "fr/v1", 200),
        ("auto", "sw", "sw/v1", 200),
        ("auto", "en", None, 200),
        ("sw", "sw", "sw/v1", 200),
        ("zz-nope", None, None, 404),
    ]
    assert rows[0]["completion_tokens"] is not None and rows[0]["lang_detected"] is True


def test_an_unreachable_upstream_is_a_502_in_openai_shape():
    with bind_socket("127.0.0.1", 0) as sock:  # a port nobody listens on
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with front_server(dead, api_key="k") as front:
        headers = {"Authorization": "Bearer k"}
        body = {"model": "auto", "prompt": "habari"}
        response = httpx.post(f"{front.url}/v1/completions", json=body, headers=headers)
        assert response.status_code == 502 and response.json()["error"]["type"] == "server_error"
        assert httpx.post(f"{front.url}/v1/completions", json=body).status_code == 401
        assert httpx.get(f"{front.url}/health").json()["upstream"] == dead


def fake_vllm():
    """What the front needs from vLLM: /v1/models with LoRA ids, and no lingualift header."""
    app = FastAPI()
    seen: list = []

    @app.get("/v1/models")
    async def models():
        ids = ["tiny", "sw", "fr"]
        return {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]}

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        seen.append(body["model"])
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        choice = {"index": 0, "text": "ok", "finish_reason": "length", "logprobs": None}
        return {
            "id": "x",
            "object": "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
            "usage": usage,
        }

    return app, seen


def test_in_front_of_vllm_the_log_names_the_adapter_id_it_routed_to(tmp_path):
    app, seen = fake_vllm()
    traffic = TrafficLog(tmp_path / "log")
    with ServerThread(app) as upstream, front_server(upstream.url, traffic) as front:
        client = openai_client(front.url)
        for text in (SWAHILI, ENGLISH):
            client.completions.create(model="auto", prompt=text, max_tokens=2)
        assert "auto" in [m.id for m in client.models.list().data]
    assert seen == ["sw", "tiny"]
    rows = list(read_segments(tmp_path / "log"))
    assert [(r["lang"], r["adapter"], r["completion_tokens"]) for r in rows] == [
        ("sw", "sw", 2),
        ("en", None, 2),
    ]


def route_table(app) -> set[tuple[str, str]]:
    """(path, method) of every route an app answers, as its OpenAPI schema lists them."""
    return {(path, method) for path, ops in app.openapi()["paths"].items() for method in ops}


def test_the_front_answers_the_servers_route_table_with_its_own_metrics(tmp_path):
    app, _ = fake_vllm()
    with ServerThread(app) as upstream, front_server(upstream.url) as front:
        client = openai_client(front.url)
        assert client.models.retrieve("auto").id == "auto"
        assert client.models.retrieve("sw").id == "sw"  # as the upstream lists it
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("zz")
        client.completions.create(model="auto", prompt=SWAHILI, max_tokens=2)
        metrics = httpx.get(f"{front.url}/metrics").text
    assert 'lingualift_requests_total{route="/v1/completions",status="200"} 1.0' in metrics
    assert 'lingualift_requests_by_language_total{lang="sw"} 1.0' in metrics
    assert 'lingualift_requests_by_adapter_total{adapter="sw"} 1.0' in metrics
    assert route_table(front.app) == {
        ("/health", "get"),
        ("/metrics", "get"),
        ("/v1/models", "get"),
        ("/v1/models/{model_id}", "get"),
        ("/v1/completions", "post"),
        ("/v1/chat/completions", "post"),
    }


# -- in front of vLLM, with live adapter updates (a fake vLLM: tests/serving/fake_vllm.py) ----


def synced_front(upstream: str, store, traffic=None, **options) -> ServerThread:
    """A front that keeps ``upstream``'s adapters in step with ``store``, wired as
    ``build_front`` wires it (sync events counted in the front's metrics)."""
    metrics = ServingMetrics()
    sync = VllmAdapterSync(
        upstream, store, retry_min_s=0.05, on_event=metrics.on_reload_event, **options
    )
    return front_server(upstream, traffic, sync=sync, refresh_s=0.05, metrics=metrics)


def health(front) -> dict:
    return httpx.get(f"{front.url}/health").json()


def test_promote_and_rollback_reach_vllm_and_the_front_routes_and_logs_each_version(
    store, tmp_path
):
    fake = FakeVllm(loras={lang: str(store.path(lang, 1).resolve()) for lang in ("fr", "sw")})
    traffic = TrafficLog(tmp_path / "log")
    with ServerThread(fake.app) as upstream, synced_front(upstream.url, store, traffic) as front:
        wait_for(lambda: health(front)["adapters"] == {"fr": "fr/v1", "sw": "sw/v1"}, what="sync")
        client = openai_client(front.url)

        def ask(model, text=SWAHILI):
            raw = client.completions.with_raw_response.create(
                model=model, prompt=text, max_tokens=2
            )
            return raw.headers["x-lingualift-adapter"], raw.headers["x-lingualift-route"]

        assert ask("auto") == ("sw/v1", "sw")  # vLLM's start-up name for sw/v1
        add_version(store, "sw", 3)  # promoted: sw/v2
        wait_for(lambda: health(front)["adapters"]["sw"] == "sw/v2", what="the promotion")
        assert ask("auto") == ("sw/v2", "sw@v2")
        assert ask("sw") == ("sw/v2", "sw@v2")  # a named language goes to its current version
        assert ask("auto", ENGLISH) == ("base", "tiny")
        assert ask("fr", FRENCH) == ("fr/v1", "fr")
        models = client.models.list().data
        assert [m.id for m in models] == ["tiny", "fr", "sw", "auto"]  # sw@v2 listed as sw
        assert models[2].lingualift == {"adapter": "sw/v2", "vllm_name": "sw@v2"}
        store.rollback("sw")
        wait_for(lambda: health(front)["adapters"]["sw"] == "sw/v1", what="the rollback")
        assert ask("auto") == ("sw/v1", "sw@v1")
        wait_for(lambda: set(fake.loras) == {"fr", "sw@v1"}, what="sw@v2 unloaded")
    assert fake.served() == ["sw", "sw@v2", "sw@v2", "tiny", "fr", "sw@v1"]
    assert fake.lora_calls() == [
        ("load", {"lora_name": "sw@v2", "lora_path": str((store.root / "sw/v2").resolve())}),
        ("unload", {"lora_name": "sw"}),
        ("load", {"lora_name": "sw@v1", "lora_path": str((store.root / "sw/v1").resolve())}),
        ("unload", {"lora_name": "sw@v2"}),
    ]
    rows = list(read_segments(tmp_path / "log"))
    assert all(tuple(row) == ROW_FIELDS for row in rows)  # the one schema, in its order
    assert [(r["model"], r["lang"], r["adapter"], r["status"]) for r in rows] == [
        ("auto", "sw", "sw/v1", 200),
        ("auto", "sw", "sw/v2", 200),
        ("sw", "sw", "sw/v2", 200),
        ("auto", "en", None, 200),
        ("fr", "fr", "fr/v1", 200),
        ("auto", "sw", "sw/v1", 200),
    ]
    assert rows[0]["lang_detected"] is True and rows[2]["lang_detected"] is False
    assert rows[0]["completion_tokens"] == 2 and rows[0]["text"] == SWAHILI


def test_a_request_in_flight_keeps_its_version_until_it_ends(store, tmp_path):
    import threading

    fake = FakeVllm(loras={lang: str(store.path(lang, 1).resolve()) for lang in ("fr", "sw")})
    with ServerThread(fake.app) as upstream, synced_front(upstream.url, store) as front:
        wait_for(lambda: health(front)["adapters"].get("sw") == "sw/v1", what="sync")
        client = openai_client(front.url)
        answers = []
        held = threading.Thread(
            target=lambda: answers.append(
                client.completions.create(model="sw", prompt="HOLD " + SWAHILI, max_tokens=2)
            )
        )
        held.start()
        wait_for(lambda: fake.holding == 1, what="the request to reach vLLM")
        add_version(store, "sw", 3)
        wait_for(lambda: "sw@v2" in fake.loras, what="sw@v2 loaded")
        new = client.completions.create(model="auto", prompt=SWAHILI, max_tokens=2)
        assert new.model == "sw@v2"
        time.sleep(0.3)  # several sync passes: the old version is still in use
        assert "sw" in fake.loras and ("unload", {"lora_name": "sw"}) not in fake.lora_calls()
        fake.release.set()
        held.join(10)
        assert answers[0].model == "sw"  # finished on the version it started with
        wait_for(lambda: "sw" not in fake.loras, what="sw unloaded once drained")


def test_a_failing_load_keeps_the_old_version_serving_through_the_front(store, tmp_path):
    fake = FakeVllm(loras={"sw": str(store.path("sw", 1).resolve())})
    fake.fail_loads = 10_000
    traffic = TrafficLog(tmp_path / "log")
    with (
        ServerThread(fake.app) as upstream,
        synced_front(upstream.url, store, traffic, langs=["sw"]) as front,
    ):
        wait_for(lambda: health(front)["adapters"].get("sw") == "sw/v1", what="sync")
        add_version(store, "sw", 3)
        wait_for(lambda: "sw" in health(front)["refused"], what="the failed load")
        assert "CUDA out of memory" in health(front)["refused"]["sw"]
        answer = openai_client(front.url).completions.create(
            model="auto", prompt=SWAHILI, max_tokens=2
        )
        assert answer.model == "sw" and health(front)["adapters"] == {"sw": "sw/v1"}
        metrics = httpx.get(f"{front.url}/metrics").text
    loads = [c for c in fake.lora_calls() if c[0] == "load"]
    assert 1 <= len(loads) < 20  # retried with backoff, not at every 0.05 s pass
    failures = re.search(r'lingualift_adapter_reload_failures_total\{lang="sw"\} (\d+)', metrics)
    assert failures and 1 <= int(failures.group(1)) <= len(loads)  # each failure counted
    (row,) = read_segments(tmp_path / "log")
    assert (row["adapter"], row["status"]) == ("sw/v1", 200)
