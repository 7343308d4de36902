"""Chat templates for every model: the tokenizer's own, a built-in one, a file, or the default.

A chat request (the server's ``/v1/chat/completions``, ``lingualift generate
chat=true``) becomes one prompt through a Jinja chat template, as in
transformers' ``apply_chat_template``. Base models often ship without one (the
embedded Gemma 3 270M has none), so, like vLLM's ``--chat-template``, a
template can be chosen by name or file (:func:`resolve_chat_template`), and a
tokenizer without one gets the documented default, :data:`DEFAULT_TEMPLATE`
(``plain``): a transcript a base model continues naturally::

    You are brief.            (a system turn, when there is one)

    User: Habari?
    Assistant:

Its turns end at a new line starting ``User:``, so :attr:`ChatTemplate.stop`
holds that line start: the answer ends there, as a chat model's ends at its
end-of-turn token. Every template writes its own special tokens (the default
writes the beginning-of-sequence token exactly where the tokenizer would
add one), so a rendered prompt is encoded with ``add_special_tokens=False``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lingualift.errors import LingualiftError

logger = logging.getLogger(__name__)

PLAIN_TEMPLATE = (
    # 'bos' is what this tokenizer adds to plain text (set by resolve_chat_template); a server
    # that renders the template without it (vLLM) gets the tokenizer's BOS token.
    "{% if bos is defined %}{{ bos }}{% elif bos_token %}{{ bos_token }}{% endif %}"
    "{% for m in messages %}"
    "{% if m['role'] in ('system', 'developer') %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}Assistant: {{ m['content'] }}\n"
    "{% else %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
"""The default: a plain transcript with role labels, for models trained on plain text."""

CHATML_TEMPLATE = (
    "{% for m in messages %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""ChatML (vLLM's ``template_chatml.jinja``), for adapters trained on ChatML-formatted chats."""


@dataclasses.dataclass(frozen=True)
class BuiltinTemplate:
    """A template shipped with lingualift, chosen by name."""

    source: str
    """The Jinja source."""
    stop: tuple[str, ...]
    """Text that ends an assistant turn (generation stops there)."""
    description: str
    """One line for the docs and error messages."""


BUILTIN_TEMPLATES: Mapping[str, BuiltinTemplate] = {
    "plain": BuiltinTemplate(
        PLAIN_TEMPLATE, ("\nUser:",), "a plain 'User: ... / Assistant:' transcript"
    ),
    "chatml": BuiltinTemplate(
        CHATML_TEMPLATE, ("<|im_end|>",), "ChatML's <|im_start|>role ... <|im_end|> turns"
    ),
}
DEFAULT_TEMPLATE = "plain"
"""The template of a tokenizer that has none (unless ``chat_template=`` names another)."""


@dataclasses.dataclass(frozen=True)
class ChatTemplate:
    """A chat template ready to render conversations (build it with :func:`resolve_chat_template`)."""

    source: str
    """The Jinja source."""
    name: str
    """Where it came from: 'tokenizer' (the model's own), a built-in name, a file's name, or
    'inline'."""
    is_default: bool = False
    """True when the tokenizer has no template and :data:`DEFAULT_TEMPLATE` stands in."""
    stop: tuple[str, ...] = ()
    """Text that ends an assistant turn, added to a request's stop strings."""
    variables: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Extra names the template reads (the default's ``bos``)."""

    def render(self, tokenizer: Any, messages: Sequence[Mapping[str, Any]]) -> str:
        """``messages`` as one prompt, ending where the assistant's turn begins.

        Raises whatever Jinja raises for turns a template refuses (``raise_exception``).
        """
        return tokenizer.apply_chat_template(
            [dict(m) for m in messages],
            chat_template=self.source,
            tokenize=False,
            add_generation_prompt=True,
            **self.variables,
        )

    def user_prompts(self, tokenizer: Any, prompts: Sequence[str]) -> list[str]:
        """Each prompt as a single user turn."""
        return [self.render(tokenizer, [{"role": "user", "content": p}]) for p in prompts]

    def describe(self) -> str:
        """A short label for logs and the response header."""
        if self.is_default:
            return f"{self.name} (default: the model has no chat template)"
        return self.name


def resolve_chat_template(tokenizer: Any, spec: str | None = None) -> ChatTemplate:
    """The template for ``tokenizer``: ``spec`` (a built-in name, a Jinja file, a JSON file
    holding ``chat_template``, or the template text itself) or, without one, the tokenizer's
    own, else the default (:data:`DEFAULT_TEMPLATE`).

    A template that does not parse, or a ``spec`` that is none of these, is one sentence.
    """
    if spec is None or not spec.strip():
        own = getattr(tokenizer, "chat_template", None)
        if isinstance(own, str) and own.strip():
            return ChatTemplate(_checked(own, "the tokenizer's chat template"), "tokenizer")
        return _builtin(tokenizer, DEFAULT_TEMPLATE, is_default=True)
    source, name = _source(spec)
    if name in BUILTIN_TEMPLATES:
        return _builtin(tokenizer, name, is_default=False)
    return ChatTemplate(source, name)


def check_chat_template(spec: str | None) -> None:
    """Raise the one-sentence error :func:`resolve_chat_template` would, before a model loads
    (everything but what depends on the tokenizer)."""
    if spec is not None and spec.strip():
        _source(spec)


def _source(spec: str) -> tuple[str, str]:
    """The Jinja source ``spec`` names, and a name for it (checked: it parses)."""
    spec = spec.strip()
    if spec in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[spec].source, spec
    if "{{" in spec or "{%" in spec:
        return _checked(spec, "chat_template"), "inline"
    path = Path(spec).expanduser()
    if not path.is_file():
        names = ", ".join(BUILTIN_TEMPLATES)
        raise LingualiftError(
            f"chat_template={spec!r} is neither a file nor a built-in template ({names}); give "
            "a Jinja file, a tokenizer's chat_template.json, or one of those names."
        )
    return _checked(_read_template(path), str(path)), path.name


def _builtin(tokenizer: Any, name: str, *, is_default: bool) -> ChatTemplate:
    builtin = BUILTIN_TEMPLATES[name]
    variables = {"bos": _added_bos(tokenizer)} if "bos is defined" in builtin.source else {}
    return ChatTemplate(builtin.source, name, is_default, builtin.stop, variables)


def _added_bos(tokenizer: Any) -> str:
    """The beginning-of-sequence token when the tokenizer adds one to plain text, else ''.

    A template writes the special tokens itself (prompts are encoded without them), so the
    default must write exactly what encoding a completion prompt would add: Gemma and Llama
    add ``<bos>``, Qwen adds nothing.
    """
    bos, bos_id = getattr(tokenizer, "bos_token", None), getattr(tokenizer, "bos_token_id", None)
    if not bos or bos_id is None:
        return ""
    try:
        with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    except Exception:  # a tokenizer that cannot encode here: write no BOS rather than guess
        return ""
    return bos if with_special and with_special[0] == bos_id else ""


def _read_template(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LingualiftError(
            f"Cannot read the chat template {path} ({exc}); give a UTF-8 Jinja file."
        ) from None
    if path.suffix == ".json":  # a tokenizer's chat_template.json: {"chat_template": "..."}
        try:
            text = json.loads(text)["chat_template"]
        except (ValueError, KeyError, TypeError):
            raise LingualiftError(
                f"{path} is not a chat_template.json (an object with a 'chat_template' string); "
                "give that or a Jinja file."
            ) from None
        if not isinstance(text, str):
            raise LingualiftError(f"{path}: 'chat_template' must be a string of Jinja.")
    return text


def _checked(source: str, where: str) -> str:
    """``source`` if Jinja can parse it (a syntax error is one sentence now, not on every
    request)."""
    import jinja2

    try:
        jinja2.Environment().parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise LingualiftError(
            f"{where} is not a valid Jinja template (line {exc.lineno}: {exc.message}); fix it "
            "or choose another with chat_template=."
        ) from None
    return source


__all__ = [
    "BUILTIN_TEMPLATES",
    "DEFAULT_TEMPLATE",
    "BuiltinTemplate",
    "ChatTemplate",
    "check_chat_template",
    "resolve_chat_template",
]
