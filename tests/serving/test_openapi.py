"""The published API surface: request bodies and error answers in /openapi.json (server and
routing front alike), the key on the schema, vLLM's root/parent in /v1/models."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from lingualift.serving import protocol as oa

from .conftest import serve_config

KEY = "k"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server_app(tmp_path_factory):
    """The server's app, never started (the schema and /v1/models need no engine thread)."""
    from lingualift.jobs.serve import build_server
    from lingualift.testing import save_tiny_causal_lm

    from ..adapters.conftest import TINY, make_store

    root = tmp_path_factory.mktemp("openapi")
    model = save_tiny_causal_lm(root / "model", "llama", **TINY)
    parts = build_server(serve_config(model, make_store(root / "store"), root, api_key=KEY))
    yield parts.app
    parts.traffic.close()


@pytest.fixture(scope="module")
def front_app():
    from lingualift.langid import LanguageIdentifier
    from lingualift.serving.front import RoutingFront, create_front_app

    front = RoutingFront(
        "http://127.0.0.1:9", base_model="tiny", identifier=LanguageIdentifier(), api_key=KEY
    )
    return create_front_app(front)


def get(app, path: str, headers=None) -> httpx.Response:
    async def call():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(call())


def body_schema(spec, path):
    return spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


@pytest.mark.parametrize("which", ["server_app", "front_app"])
def test_both_apps_publish_the_typed_request_bodies_behind_the_key(request, which):
    app = request.getfixturevalue(which)
    assert get(app, "/openapi.json").status_code == 401
    spec = get(app, "/openapi.json", AUTH).json()
    completions = body_schema(spec, "/v1/completions")
    chat = body_schema(spec, "/v1/chat/completions")
    published = oa.openapi_request_body(oa.CompletionRequest)["content"]["application/json"]
    # FastAPI drops the null defaults; every property is there, typed as the request model.
    assert set(completions["properties"]) == set(published["schema"]["properties"])
    assert set(completions["required"]) == {"model", "prompt"}
    assert set(chat["required"]) == {"model", "messages"}
    assert completions["additionalProperties"] is False  # unknown parameters are refused
    assert completions["properties"]["max_tokens"]["anyOf"][0]["type"] == "integer"
    assert "$ref" not in str(completions) and "$ref" not in str(chat)  # inlined
    message = chat["properties"]["messages"]["items"]
    assert "developer" in message["properties"]["role"]["enum"]
    answers = spec["paths"]["/v1/completions"]["post"]["responses"]
    assert {"200", "400", "401", "404", "413", "429", "503"} <= set(answers)
    error = answers["400"]["content"]["application/json"]["schema"]
    assert error["properties"]["error"]["required"] == ["message", "type", "param", "code"]
    assert "/openapi.json" not in spec["paths"]  # served, not listed as an operation
    for page in ("/docs", "/redoc"):
        assert get(app, page, AUTH).status_code == 404


def test_the_schema_is_what_a_client_generator_reads(server_app):
    """Every property the request models declare appears with its description."""
    spec = get(server_app, "/openapi.json", AUTH).json()
    properties = body_schema(spec, "/v1/completions")["properties"]
    assert set(oa.CompletionRequest.model_fields) == set(properties)
    assert properties["echo"]["description"].startswith("Return the prompt")


def test_models_carry_vllm_root_and_parent(server_app):
    models = get(server_app, "/v1/models", AUTH).json()["data"]
    by_id = {m["id"]: m for m in models}
    assert (by_id["sw"]["root"], by_id["sw"]["parent"]) == ("sw/v1", "tiny")
    assert (by_id["tiny"]["root"], by_id["tiny"]["parent"]) == ("tiny", None)
    assert (by_id["auto"]["root"], by_id["auto"]["parent"]) == ("tiny", None)
    assert get(server_app, "/v1/models/fr", AUTH).json()["root"] == "fr/v1"
