"""Chat templates: the tokenizer's own, built-ins, files, and the default for models without."""

from __future__ import annotations

import json

import pytest
from tokenizers import processors

from lingualift.chat import (
    BUILTIN_TEMPLATES,
    DEFAULT_TEMPLATE,
    check_chat_template,
    resolve_chat_template,
)
from lingualift.errors import LingualiftError
from lingualift.testing import CHAT_TEMPLATE, byte_tokenizer

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Habari?"},
    {"role": "assistant", "content": "Nzuri."},
    {"role": "user", "content": "Na wewe?"},
]


def without_template(adds_bos: bool = False):
    """The byte tokenizer with no chat template; with ``adds_bos``, shaped like Gemma's (a
    beginning-of-sequence token before plain text)."""
    tokenizer = byte_tokenizer()
    tokenizer.chat_template = None
    if adds_bos:
        tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single="<bos> $A", special_tokens=[("<bos>", 1)]
        )
    return tokenizer


def test_the_tokenizers_own_template_comes_first():
    template = resolve_chat_template(byte_tokenizer())
    assert (template.name, template.is_default, template.stop) == ("tokenizer", False, ())
    assert template.source == CHAT_TEMPLATE


def test_a_model_without_a_template_gets_the_plain_default():
    tokenizer = without_template()
    template = resolve_chat_template(tokenizer)
    assert template.is_default and template.name == DEFAULT_TEMPLATE == "plain"
    assert template.render(tokenizer, CHAT) == (
        "Be brief.\n\nUser: Habari?\nAssistant: Nzuri.\nUser: Na wewe?\nAssistant:"
    )
    assert template.stop == ("\nUser:",)
    assert "default" in template.describe()


@pytest.mark.parametrize("adds_bos", [True, False])
def test_the_default_writes_exactly_the_special_tokens_plain_text_gets(adds_bos):
    """A rendered chat is encoded without special tokens, so the template must write the BOS
    token where the tokenizer adds one (Gemma, Llama) and none where it does not (Qwen)."""
    tokenizer = without_template(adds_bos)
    prompt = resolve_chat_template(tokenizer).user_prompts(tokenizer, ["Habari?"])[0]
    assert prompt.startswith("<bos>") == adds_bos
    plain_text = prompt.removeprefix("<bos>")
    as_chat = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert as_chat == tokenizer(plain_text)["input_ids"]


def test_a_builtin_name_a_file_a_json_file_or_the_text_itself(tmp_path):
    tokenizer = byte_tokenizer()
    chatml = resolve_chat_template(tokenizer, "chatml")
    assert not chatml.is_default and chatml.stop == ("<|im_end|>",)
    assert chatml.user_prompts(tokenizer, ["hi"]) == [
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    ]
    jinja = tmp_path / "turns.jinja"
    jinja.write_text("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{% endfor %}>")
    from_file = resolve_chat_template(tokenizer, str(jinja))
    assert from_file.name == "turns.jinja"
    assert from_file.render(tokenizer, CHAT[1:2]) == "[user] Habari?>"
    as_json = tmp_path / "chat_template.json"
    as_json.write_text(json.dumps({"chat_template": jinja.read_text()}))
    assert resolve_chat_template(tokenizer, str(as_json)).source == jinja.read_text()
    inline = resolve_chat_template(tokenizer, "{{ messages[-1]['content'] }}!")
    assert inline.name == "inline" and inline.render(tokenizer, CHAT) == "Na wewe?!"


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("chatgpt", "neither a file nor a built-in template (plain, chatml)"),
        ("{% for m in messages %}", "is not a valid Jinja template (line 1"),
    ],
)
def test_a_wrong_template_is_one_sentence_before_any_model_loads(spec, says):
    with pytest.raises(LingualiftError, match=r"chat_template") as caught:
        check_chat_template(spec)
    assert says in str(caught.value) and "\n" not in str(caught.value)
    check_chat_template(None)
    for name in BUILTIN_TEMPLATES:
        check_chat_template(name)


def test_a_json_file_without_a_template_is_refused(tmp_path):
    bad = tmp_path / "chat_template.json"
    bad.write_text('{"template": "x"}')
    with pytest.raises(LingualiftError, match="not a chat_template.json"):
        resolve_chat_template(byte_tokenizer(), str(bad))
