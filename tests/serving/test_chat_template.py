"""Chat on every model: the server and ``lingualift generate`` with and without a template."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from lingualift.chat import ChatTemplate, resolve_chat_template
from lingualift.cli import main
from lingualift.testing import save_tiny_causal_lm

from ..adapters.conftest import TINY
from .conftest import live_server, make_store, serve_config

HEADER = "x-lingualift-chat-template"
MESSAGES = [{"role": "user", "content": "Habari ya asubuhi"}]


@pytest.fixture(scope="module")
def bare_model(tmp_path_factory):
    """The tiny Llama saved without a chat template (as a base model often is), and a store."""
    root = tmp_path_factory.mktemp("bare")
    path = save_tiny_causal_lm(root / "model", "llama", **TINY)
    config = json.loads((path / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    (path / "chat_template.jinja").unlink(missing_ok=True)
    return path, make_store(root / "store"), root


def chat(url, **extra):
    body = {"model": "sw", "messages": MESSAGES, "max_tokens": 12, "temperature": 0, **extra}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)


def test_without_a_template_the_default_renders_says_so_once_and_in_a_header(bare_model, caplog):
    path, store, root = bare_model
    caplog.set_level(logging.WARNING, "lingualift.jobs.serve")
    with live_server(serve_config(path, store, root / "a")) as (parts, url):
        answers = [chat(url), chat(url)]
        completion = httpx.post(
            f"{url}/v1/completions", json={"model": "sw", "prompt": "hi", "max_tokens": 2}
        )
        tokenizer = parts.engine.tokenizer
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers[HEADER].startswith("plain (default")
        assert answer.json()["choices"][0]["message"]["role"] == "assistant"
    assert HEADER not in completion.headers  # completions use no template
    rendered = "User: Habari ya asubuhi\nAssistant:"
    assert answers[0].json()["usage"]["prompt_tokens"] == len(tokenizer(rendered).input_ids)
    said = [r.message for r in caplog.records if "no chat template" in r.message]
    assert len(said) == 1 and "'plain'" in said[0]


def test_the_template_s_turn_end_ends_the_answer(bare_model):
    """The default's turns end at '\\nUser:'; here a template whose turn end is text the tiny
    model does write shows that the server stops there, as at a stop string."""
    path, store, root = bare_model
    with live_server(serve_config(path, store, root / "b")) as (parts, url):
        free = chat(url, max_tokens=16, ignore_eos=True).json()["choices"][0]["message"]
        text = free["content"]
        turn_end = text[4:6]
        assert len(turn_end) == 2 and turn_end not in text[:5]
        service = parts.app.state.service
        default = service.chat_template
        service.chat_template = ChatTemplate(
            default.source, "plain", True, (turn_end,), default.variables
        )
        cut = chat(url, max_tokens=16, ignore_eos=True).json()["choices"][0]
    assert cut["finish_reason"] == "stop"
    assert cut["message"]["content"] == text[: text.index(turn_end)]


def test_chat_template_chooses_another_and_a_model_s_own_wins_by_default(bare_model, model_dir):
    path, store, root = bare_model
    config = serve_config(path, store, root / "c", chat_template="chatml")
    with live_server(config) as (parts, url):
        answer = chat(url)
        rendered = "<|im_start|>user\nHabari ya asubuhi<|im_end|>\n<|im_start|>assistant\n"
        tokenizer = parts.engine.tokenizer
    assert answer.status_code == 200 and HEADER not in answer.headers
    assert answer.json()["usage"]["prompt_tokens"] == len(tokenizer(rendered).input_ids)
    with live_server(serve_config(model_dir, store, root / "d")) as (parts, url):
        assert parts.app.state.service.chat_template.name == "tokenizer"
        assert HEADER not in chat(url).headers


def test_a_wrong_chat_template_is_one_sentence_and_exit_2(bare_model, capsys):
    path, store, _ = bare_model
    argv = [f"model={path}", f"store={store.root}", "port=0", "chat_template=nope.jinja"]
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert "neither a file nor a built-in template" in err and err.count("\n") == 1


def test_generate_chats_with_a_model_without_a_template(bare_model, capsys):
    path, store, _ = bare_model
    argv = [f"model={path}", f"store={store.root}", "lang=sw", "max_new_tokens=4", "--chat"]
    assert main(["generate", "Habari?", *argv]) == 0
    out, err = capsys.readouterr()
    assert "default 'plain' template" in err
    assert json.loads(out.splitlines()[0])["adapter"] == "sw/v1"
    assert main(["generate", "Habari?", *argv, "--chat-template", "chatml"]) == 0
    assert "default" not in capsys.readouterr().err


def test_generate_and_the_server_render_the_same_prompt(bare_model):
    """One module renders chats for both (the default included)."""
    from transformers import AutoTokenizer

    from lingualift.generation import chat_prompts

    tokenizer = AutoTokenizer.from_pretrained(bare_model[0])
    template = resolve_chat_template(tokenizer)
    assert chat_prompts(tokenizer, ["Habari?"]) == [
        template.render(tokenizer, [{"role": "user", "content": "Habari?"}])
    ]
