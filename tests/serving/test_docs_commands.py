"""Every command line, request and client example of docs/serving.md and the recipes runs.

Commands run as written through ``lingualift.cli.main`` in a home where
``embedded:gemma-3-270m`` is a tiny model of the real one's tokenizer shape (no
chat template), with only the port moved to a free one; each server is stopped
once it answers ``/health``. The curl requests and the ``openai`` client
example run against such a server, so the quick start's chat requests prove
that chat works on a model without a template.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading

import httpx
import pytest

from lingualift.cli import main
from lingualift.jobs.serve import ServeConfig

from ..shifcon.conftest import random_vectors
from .conftest import EMBEDDED, embedded_home, live_server, use_embedded_home, wait_for
from .docs_examples import REPO, client_examples, curl_requests, serve_commands

COMMANDS = serve_commands()
DOC_PORT = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """The embedded-shaped home, and a working folder holding what the commands name
    (``recipes/``, a ShifCon folder at ``runs/shifcon``)."""
    root = tmp_path_factory.mktemp("docs-commands")
    with embedded_home(root) as store:
        work = root / "work"
        work.mkdir()
        (work / "recipes").symlink_to(REPO / "recipes")
        from lingualift.models import load_causal_lm
        from lingualift.shifcon import ShifCon

        model, _ = load_causal_lm(EMBEDDED)
        vectors = random_vectors(model, base_model=EMBEDDED)
        ShifCon(vectors, 1, 3).save(work / "runs" / "shifcon")
        yield work, store, root


@pytest.fixture(autouse=True)
def in_embedded_home(home, monkeypatch):
    use_embedded_home(monkeypatch, home[2])


def test_the_docs_and_recipes_show_the_commands_this_test_runs(home):
    where = [w for w, _ in COMMANDS]
    assert any("docs/serving.md" in w for w in where) and any("recipes/" in w for w in where)
    engines = {_engine(words) for _, words in COMMANDS} - {"lingualift"}
    assert engines == {"vllm", "route"}


class HealthProbe:
    """Stands in for ``run_app``: serves the app with uvicorn on the command's own socket, until
    ``/health`` answers, and notes what the server showed."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def __call__(self, app, sock, log_level="info") -> None:
        import uvicorn

        from lingualift.serving.server import socket_url

        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        url = socket_url(sock)
        try:
            health = wait_for(lambda: _get(f"{url}/health"), timeout=60, what="/health")
            models = httpx.get(f"{url}/v1/models", timeout=30)
            chat = httpx.post(
                f"{url}/v1/chat/completions",
                json={"model": "sw", "messages": [{"role": "user", "content": "Habari?"}]},
                headers={"Authorization": "Bearer change-me"},  # the key the docs use, if any
                timeout=60,
            )
            self.seen.append({"health": health, "models_status": models.status_code, "chat": chat})
        finally:
            server.should_exit = True
            thread.join(30)


def _engine(words: list[str]) -> str:
    """The engine a command line names (``--engine X`` or ``engine=X``), else the own server."""
    if "--engine" in words:
        return words[words.index("--engine") + 1]
    named = [w.split("=", 1)[1] for w in words if w.startswith("engine=")]
    return named[-1] if named else "lingualift"


def _get(url: str):
    try:
        response = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


@pytest.mark.parametrize(("where", "words"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_every_documented_command_runs(home, monkeypatch, where, words):
    work = home[0]
    monkeypatch.chdir(work)
    from lingualift.serving import server as server_module

    asked_ports = []
    bind = server_module.bind_socket

    def bind_a_free_port(host, port):
        asked_ports.append(port)
        return bind(host, 0)

    probe = HealthProbe()
    monkeypatch.setattr(server_module, "bind_socket", bind_a_free_port)
    monkeypatch.setattr(server_module, "run_app", probe)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(words)
    engine = _engine(words)
    if engine == "vllm" and ("--run" in words or "run=true" in words):
        # vLLM cannot run here: one sentence and exit 2, before any port or model is touched.
        assert code == 2 and "needs vLLM installed" in err.getvalue(), err.getvalue()
        assert asked_ports == []
        return
    assert code == 0, f"{where}\n{err.getvalue()}"
    if engine == "vllm":
        # The command sets vLLM's switch for runtime LoRA updates (live promotions).
        assert out.getvalue().startswith("VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve "), (
            out.getvalue()
        )
        assert "--lora-modules" in out.getvalue()
        return
    [seen] = probe.seen
    assert seen["health"]["status"] == "ok"
    if engine == "route":  # no upstream runs here: the front says so in OpenAI's shape
        assert seen["health"]["upstream"] == "http://127.0.0.1:8000"
        assert asked_ports == [8080]
        assert seen["models_status"] == 502
        return
    langs = [w.split("=", 1)[1] for w in words if w.startswith("langs=")]
    served = sorted(langs[0].split(",")) if langs else ["fr", "sw"]  # langs= picks the store's
    assert sorted(seen["health"]["adapters"]) == served
    assert "serving" in out.getvalue()
    # api_key=change-me guards everything but /health.
    assert seen["models_status"] == (401 if "api_key=change-me" in words else 200)
    # Chat works on the embedded model, which has no template: the default, or the one named.
    chat = seen["chat"]
    assert chat.status_code == 200, chat.text
    named = any(w.startswith(("chat_template=", "--chat-template")) for w in words)
    assert (chat.headers.get("x-lingualift-chat-template", "").startswith("plain")) != named


@pytest.fixture(scope="module")
def embedded_server(home):
    """A server of the embedded-shaped model with every default (no chat template)."""
    with live_server(ServeConfig(batch_wait_ms=5)) as (parts, url):
        yield parts, url


@pytest.mark.parametrize("request_", curl_requests(), ids=lambda r: f"{r.method} {r.path}")
def test_every_documented_request_is_answered(embedded_server, request_):
    _, url = embedded_server
    response = httpx.request(
        request_.method,
        f"{url}{request_.path}",
        headers=request_.headers,
        content=request_.body,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    if request_.stream:
        events = [line for line in response.text.splitlines() if line]
        assert events[-1] == "data: [DONE]"
        first = json.loads(events[0].removeprefix("data: "))
        assert first["object"] == "chat.completion.chunk"
        assert first["choices"][0]["delta"]["role"] == "assistant"
    if request_.path.startswith("/v1/chat"):  # the model has no template: the default says so
        assert response.headers["x-lingualift-chat-template"].startswith("plain")
    if request_.path == "/health":
        assert "/" not in json.dumps(response.json()["model"])


def test_the_documented_client_example_runs(embedded_server):
    _, url = embedded_server
    [example] = client_examples()
    assert DOC_PORT in example
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example.replace(DOC_PORT, url), "docs/serving.md", "exec"), {})
    printed = out.getvalue().splitlines()
    assert any("'adapter': 'fr/v1'" in line for line in printed), printed  # auto -> French
    assert "sw/v1" in printed


@pytest.mark.integration
def test_the_documented_requests_on_the_real_embedded_model(tmp_path):
    """The real Gemma 3 270M (no chat template) with random sw/fr adapters: every curl request
    of the docs is answered, chat through the default template, which writes Gemma's <bos>."""
    from lingualift.chat import resolve_chat_template

    from .conftest import random_store

    store = random_store(tmp_path / "store", EMBEDDED)
    config = ServeConfig(store=str(store.root), log_dir=str(tmp_path / "traffic"))
    with live_server(config) as (parts, url):
        tokenizer = parts.engine.tokenizer
        assert not getattr(tokenizer, "chat_template", None)
        template = resolve_chat_template(tokenizer)
        assert template.is_default and template.variables == {"bos": "<bos>"}
        for request_ in curl_requests():
            response = httpx.request(
                request_.method,
                f"{url}{request_.path}",
                headers=request_.headers,
                content=request_.body,
                timeout=600,
            )
            assert response.status_code == 200, (request_.line, response.text)
            if request_.path.startswith("/v1/chat"):
                assert response.headers["x-lingualift-chat-template"].startswith("plain")
