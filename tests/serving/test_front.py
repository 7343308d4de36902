"""The routing front: language identification rewrites ``model``, the upstream answers."""

from __future__ import annotations

import httpx
import openai
import pytest
from fastapi import FastAPI, Request

from lingualift.data.traffic import read_segments
from lingualift.langid import LanguageIdentifier
from lingualift.serving.front import RoutingFront, create_front_app
from lingualift.serving.server import ServerThread, bind_socket
from lingualift.serving.traffic import TrafficLog

from .conftest import ENGLISH, FRENCH, SWAHILI, live_server, openai_client, serve_config


def front_server(upstream: str, traffic=None, api_key=None) -> ServerThread:
    front = RoutingFront(
        upstream,
        base_model="tiny",
        identifier=LanguageIdentifier(),
        traffic=traffic,
        api_key=api_key,
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
