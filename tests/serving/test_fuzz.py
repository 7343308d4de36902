"""Fuzzing the API with schemathesis, from the server's own schema and from OpenAI's.

Bounded (a fixed number of cases per operation and mode, a fixed seed; about 350 cases in
under a minute; ``LINGUALIFT_FUZZ_SCALE=10`` hunts longer with a random seed) against a
live tiny-model server behind an API key. Every answer must be below 500 and
OpenAI-shaped: errors as ``{"error": {message, type, param, code}}``, completions
and chunks valid under OpenAI's own response schemas (from the published spec in
``data/``). Generated ``model`` fields are mostly random strings (404s), so a
third of the cases name a served model to reach the engine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")  # the test extra

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from jsonschema import Draft202012Validator  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from lingualift.testing import save_tiny_causal_lm  # noqa: E402

from ..adapters.conftest import TINY, make_store  # noqa: E402
from .conftest import live_server, serve_config  # noqa: E402

OPENAI_SPEC = json.loads(
    (Path(__file__).parent / "data" / "openai_completions_openapi.json").read_text()
)
SCALE = int(os.environ.get("LINGUALIFT_FUZZ_SCALE", "1"))
"""Multiplies every case count; above 1 the seed is random too (a longer hunt, by hand)."""
KEY = "fuzz-key"
HEADERS = {"Authorization": f"Bearer {KEY}"}
SERVED = ["sw", "fr", "auto", "tiny"]
GENERATION = {
    "/v1/completions": "CreateCompletionResponse",
    "/completions": "CreateCompletionResponse",
    "/v1/chat/completions": "CreateChatCompletionResponse",
    "/chat/completions": "CreateChatCompletionResponse",
}
STREAM = {
    "CreateCompletionResponse": "CreateCompletionResponse",
    "CreateChatCompletionResponse": "CreateChatCompletionStreamResponse",
}


def openai_validator(name: str) -> Draft202012Validator:
    """A validator for one of OpenAI's component schemas (its refs resolved in the spec)."""
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": OPENAI_SPEC["components"]}
    )


VALIDATORS = {name: openai_validator(name) for name in {*GENERATION.values(), *STREAM.values()}}
ERROR = openai_validator("ErrorResponse")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A tiny-model server with a key; answers are short so hundreds of cases take seconds."""
    root = tmp_path_factory.mktemp("fuzz")
    model = save_tiny_causal_lm(root / "model", "llama", **TINY)
    store = make_store(root / "store")
    limits = dict(max_tokens_limit=16, default_max_tokens=4, max_queue=256)
    with live_server(serve_config(model, store, root, api_key=KEY, **limits)) as (parts, url):
        yield parts, url


def openai_shaped(path: str, response) -> None:
    """The answer is what an OpenAI client expects: an error body for 4xx, a completion (or
    its server-sent chunks) valid under OpenAI's response schema for 200."""
    if response.status_code >= 400:
        error = response.json()
        ERROR.validate(error)
        assert set(error["error"]) == {"message", "type", "param", "code"}
        return
    if path not in GENERATION or response.status_code != 200:
        return
    name = GENERATION[path]
    content_type = response.headers.get("content-type") or [""]  # schemathesis: lists
    if content_type[0].startswith("text/event-stream"):
        events = [line for line in response.text.splitlines() if line]
        assert events[-1] == "data: [DONE]", events[-3:]
        for event in events[:-1]:
            chunk = json.loads(event.removeprefix("data: "))
            if chunk.get("choices") == [] and "usage" in chunk:
                continue  # the usage chunk: OpenAI's schema wants choices, it has none
            VALIDATORS[STREAM[name]].validate(chunk)
    else:
        VALIDATORS[name].validate(response.json())


def fuzz(operation, url: str, mode, checks, examples: int, found: list) -> None:
    """Run ``examples`` cases of ``operation`` in ``mode``; failures are collected in
    ``found`` (the test reports them all at once)."""

    def aim(case, model):
        if model is not None and isinstance(case.body, dict):
            case.body["model"] = model
        return case

    strategy = operation.as_strategy(generation_mode=mode)
    if mode == schemathesis.GenerationMode.POSITIVE:  # a negative case may be wrong in model
        models = st.one_of(st.none(), st.none(), st.sampled_from(SERVED))
        strategy = st.builds(aim, strategy, models)

    @settings(
        max_examples=examples * SCALE,
        deadline=None,
        derandomize=SCALE == 1,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def one_case(case):
        response = case.call(base_url=url, headers=HEADERS, timeout=60)
        try:
            case.validate_response(response, checks=checks, headers=HEADERS)
            openai_shaped(operation.path, response)
        except Exception as exc:
            found.append(
                f"{operation.method.upper()} {operation.path} {mode.value}: "
                f"{response.status_code} {response.text[:300]!r}: {str(exc)[:300]}"
            )

    one_case()


def test_fuzz_from_the_servers_own_schema(server):
    parts, url = server
    import httpx

    spec = httpx.get(f"{url}/openapi.json", headers=HEADERS).json()
    schema = schemathesis.openapi.from_dict(spec)
    own_checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    found: list[str] = []
    for path, method in (("/v1/completions", "POST"), ("/v1/chat/completions", "POST")):
        operation = schema[path][method]
        fuzz(operation, url, schemathesis.GenerationMode.POSITIVE, own_checks, 60, found)
        fuzz(
            operation,
            url,
            schemathesis.GenerationMode.NEGATIVE,
            [*own_checks, negative_data_rejection],
            40,
            found,
        )
    for path in ("/v1/models", "/v1/models/{model_id}", "/health"):
        fuzz(schema[path]["GET"], url, schemathesis.GenerationMode.POSITIVE, own_checks, 10, found)
    assert not found, "\n".join(found)
    assert parts.engine.alive


def test_fuzz_from_openais_published_schema(server):
    parts, url = server
    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(OPENAI_SPEC)))
    # OpenAI's spec documents only 200 and 429, so status codes are not compared; bodies are.
    checks = [not_a_server_error, response_schema_conformance]
    found: list[str] = []
    for path in ("/completions", "/chat/completions"):
        fuzz(
            schema[path]["POST"],
            f"{url}/v1",
            schemathesis.GenerationMode.POSITIVE,
            checks,
            60,
            found,
        )
    assert not found, "\n".join(found)
    assert parts.engine.alive
