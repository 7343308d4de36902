"""Bad input and what it reaches, end to end on a live server: every case is a 400 (or 413) in
OpenAI's shape, lands in the traffic log with what was known, and the server keeps serving.
Also: what the server shows without the key (/health, /openapi.json, /docs) and start-up
settings that are one sentence."""

from __future__ import annotations

import json

import httpx
import pytest

from lingualift.cli import main
from lingualift.data.traffic import read_segments
from lingualift.testing import save_tiny_causal_lm

from ..adapters.conftest import TINY, add_version, make_store
from .conftest import live_server, serve_config, wait_for

COMPLETIONS, CHAT = "/v1/completions", "/v1/chat/completions"
KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


def body(**fields) -> bytes:
    return json.dumps({"model": "sw", "prompt": "hi", "max_tokens": 2, **fields}).encode()


# (name, route, raw body, status, param, code, the model the log row names)
CASES = [
    ("empty prompt", COMPLETIONS, body(prompt=""), 400, "prompt", None, "sw"),
    ("empty prompt in a list", COMPLETIONS, body(prompt=["hi", ""]), 400, "prompt", None, "sw"),
    ("no messages", CHAT, b'{"model": "sw", "messages": []}', 400, "messages", None, "sw"),
    (
        "200k nested brackets",
        COMPLETIONS,
        b'{"model": "sw", "prompt": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
        400,
        None,
        "invalid_json",
        None,
    ),
    (
        "65 levels of nesting",
        COMPLETIONS,
        b'{"model": "sw", "prompt": "hi", "metadata": ' + b"[" * 65 + b"]" * 65 + b"}",
        400,
        None,
        "invalid_json",
        "sw",
    ),
    (
        "lone surrogate",
        COMPLETIONS,
        b'{"model": "sw", "prompt": "a\\ud800b"}',
        400,
        "prompt",
        "invalid_json",
        "sw",
    ),
    (
        "lone surrogate in a message",
        CHAT,
        b'{"model": "sw", "messages": [{"role": "user", "content": "\\udc00"}]}',
        400,
        "messages.0.content",
        "invalid_json",
        "sw",
    ),
    (
        "lone surrogate in a key",
        COMPLETIONS,
        b'{"model": "sw", "prompt": "hi", "\\ud800": 1}',
        400,
        None,
        "invalid_json",
        "sw",
    ),
    ("max_tokens as a string", COMPLETIONS, body(max_tokens="10"), 400, "max_tokens", None, "sw"),
    ("echo as a number", COMPLETIONS, body(echo=1), 400, "echo", None, "sw"),
    (
        "temperature as a string",
        CHAT,
        b'{"model": "sw", "messages": [{"role": "user", "content": "hi"}], "temperature": "0.5"}',
        400,
        "temperature",
        None,
        "sw",
    ),
    ("model as a number", COMPLETIONS, b'{"model": 7, "prompt": "hi"}', 400, "model", None, None),
    (
        "not UTF-8",
        COMPLETIONS,
        b'{"model": "sw", "prompt": "\xff\xfe"}',
        400,
        None,
        "invalid_json",
        None,
    ),
    (
        "Latin-1",
        COMPLETIONS,
        '{"model": "sw", "prompt": "café"}'.encode("latin-1"),
        400,
        None,
        "invalid_json",
        None,
    ),
    ("not JSON", COMPLETIONS, b"{not json", 400, None, "invalid_json", None),
    ("a JSON array", COMPLETIONS, b"[1, 2]", 400, None, "invalid_json", None),
    (
        "NaN",
        COMPLETIONS,
        b'{"model": "sw", "prompt": "hi", "temperature": NaN}',
        400,
        None,
        "invalid_json",
        "sw",
    ),
    (
        "a 5000-digit number",
        COMPLETIONS,
        b'{"model": "sw", "prompt": "hi", "seed": ' + b"9" * 5000 + b"}",
        400,
        None,
        "invalid_json",
        None,
    ),
    (
        "an unknown field",
        COMPLETIONS,
        body(guided_json={}),
        400,
        "guided_json",
        "unknown_parameter",
        "sw",
    ),
    (
        "a huge body",
        COMPLETIONS,
        body(prompt="x" * 1_100_000),
        413,
        None,
        "request_too_large",
        None,
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A live server with an API key (and the default 1 MiB body limit); segments close every
    0.1 s."""
    root = tmp_path_factory.mktemp("bad-input-server")
    model = save_tiny_causal_lm(root / "model", "llama", **TINY)
    store = make_store(root / "store")
    config = serve_config(model, store, root, api_key=KEY, log_max_seconds=0.1)
    with live_server(config) as (parts, url):
        yield parts, url, root / "traffic"


def logged_rows(log_dir) -> list[dict]:
    """Every row so far, the open segment's included (retried when the segment is renamed
    between listing and reading it)."""
    while True:
        try:
            return list(read_segments(log_dir, include_partial=True))
        except FileNotFoundError:
            continue


def still_serving(url: str) -> None:
    answer = httpx.post(f"{url}{COMPLETIONS}", content=body(), headers=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["text"] is not None


@pytest.mark.parametrize(
    ("name", "route", "raw", "status", "param", "code", "model"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_is_an_openai_error_logged_and_the_server_keeps_serving(
    server, name, route, raw, status, param, code, model
):
    _, url, log_dir = server
    before = len(logged_rows(log_dir))
    response = httpx.post(f"{url}{route}", content=raw, headers=AUTH, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["message"].endswith(".")
    assert (error["param"], error["code"]) == (param, code), error

    def new_row():
        rows = logged_rows(log_dir)[before:]
        return next((r for r in rows if r["status"] == status), None)

    row = wait_for(new_row, what="the refused request's traffic-log row")
    assert row["model"] == model
    assert row["adapter"] is None and row["completion_tokens"] is None
    if name in ("lone surrogate", "lone surrogate in a message"):
        assert row["text"] is None  # never written: it is not text
    elif model == "sw" and route == COMPLETIONS and param != "prompt":
        assert row["text"] == "hi"
    still_serving(url)


@pytest.mark.parametrize("temperature", [1e-162, 1e-300, 5e-324, 1e-6])
def test_a_vanishing_temperature_is_greedy_not_a_500(server, temperature):
    """Found by the fuzzer: logits / 1e-162 overflow, and sampling from NaN was a 500."""
    _, url, _ = server
    greedy = httpx.post(f"{url}{COMPLETIONS}", content=body(temperature=0), headers=AUTH)
    tiny = httpx.post(f"{url}{COMPLETIONS}", content=body(temperature=temperature), headers=AUTH)
    assert tiny.status_code == 200, tiny.text
    assert tiny.json()["choices"][0]["text"] == greedy.json()["choices"][0]["text"]


def test_every_refused_request_has_exactly_one_row(server):
    parts, url, _ = server
    before = parts.traffic.written
    for _, route, raw, *_ in CASES[:5]:
        httpx.post(f"{url}{route}", content=raw, headers=AUTH, timeout=60)
    wait_for(lambda: parts.traffic.written - before == 5, what="five rows")


def test_the_schema_needs_the_key_and_there_are_no_interactive_docs(server):
    _, url, _ = server
    assert httpx.get(f"{url}/openapi.json").status_code == 401
    schema = httpx.get(f"{url}/openapi.json", headers=AUTH).json()
    assert set(schema["paths"]) >= {COMPLETIONS, CHAT, "/v1/models", "/health"}
    for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        response = httpx.get(f"{url}{page}", headers=AUTH)
        assert response.status_code == 404 and "error" in response.json()


def test_health_shows_store_relative_names_only(tmp_path):
    """A refused version's message names files inside the store; /health cuts them to the
    store-relative path, and an absolute model path to its name."""
    model = save_tiny_causal_lm(tmp_path / "model", "llama", **TINY)
    store = make_store(tmp_path / "store")
    broken = add_version(store, "sw", 3)  # sw/v2, then damaged
    (broken.path / "adapter_model.safetensors").write_bytes(b"not safetensors")
    config = serve_config(model, store, tmp_path, model_name=None)
    with live_server(config) as (parts, url):
        wait_for(lambda: parts.registry.failures, what="the refusal")
        health = httpx.get(f"{url}/health").json()
    text = json.dumps(health)
    assert str(tmp_path) not in text and str(tmp_path.resolve()) not in text
    assert health["model"] == ".../model"
    assert "sw" in health["refused"] and health["adapters"]["fr"] == "fr/v1"


@pytest.mark.parametrize("where", ["traffic.log", "traffic.log/segments"])
def test_log_dir_naming_a_file_is_one_sentence_before_anything_loads(tmp_path, capsys, where):
    a_file = tmp_path / "traffic.log"
    a_file.write_text("")
    argv = ["serve", "model=/nonexistent/model", f"log_dir={tmp_path / where}", "port=0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err and "log_traffic=false" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["traffic.log"]  # nothing made
