"""What a request body is made of: prompts, chat messages, response formats, stream options.

The field types are strict like the bodies (:mod:`~.requests`); a part that
no text model can honour (an image, a tool call in the history) is a 400
naming it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator

STRICT = ConfigDict(strict=True, extra="forbid", use_attribute_docstrings=True)
"""Every request model: strict types, unknown fields refused, docstrings as descriptions."""


def is_unset(value: Any, request: Any = None) -> bool:
    """None, False, or an empty string, list or object: what a client sends for 'not used'."""
    return value is None or value is False or (isinstance(value, str | list | dict) and not value)


PROMPT_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
        {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
        {
            "type": "array",
            "items": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
            "minItems": 1,
        },
    ],
    "title": "Prompt",
}


def is_token_ids(value: Any) -> bool:
    """A non-empty list of token ids (integers >= 0; a bool is not one)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(type(t) is int and t >= 0 for t in value)  # bool is an int: not a token id
    )


def _validate_prompt(value: Any) -> str | list[str] | list[int] | list[list[int]]:
    if isinstance(value, str):
        if not value:
            raise ValueError("the prompt is empty; send at least one character or token id")
        return value
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            if not all(value):
                raise ValueError("a prompt in the list is empty; every prompt needs some text")
            return value
        if is_token_ids(value):
            return value
        if all(is_token_ids(v) for v in value):
            return value
    raise ValueError(
        "send the prompt as a non-empty string, a list of strings, a list of token ids "
        "(integers >= 0) or a list of such lists"
    )


PromptInput = Annotated[
    str | list[str] | list[int] | list[list[int]],
    PlainValidator(_validate_prompt),
    WithJsonSchema(PROMPT_SCHEMA),
]
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]
TokenId = Annotated[int, Field(ge=0)]
Bias = Annotated[float, Field(ge=-100.0, le=100.0)]


class StreamOptions(BaseModel):
    """``stream_options``: what a stream carries besides text."""

    model_config = STRICT

    include_usage: bool | None = None
    """Honoured: a last chunk with no choices and the request's usage."""
    include_obfuscation: bool | None = None
    """Refused when true: OpenAI pads chunks with random characters; this server does not."""

    @model_validator(mode="after")
    def _no_obfuscation(self) -> StreamOptions:
        if self.include_obfuscation:
            raise ValueError(
                "this server does not obfuscate stream chunks; drop include_obfuscation or set "
                "it to false"
            )
        return self


class JsonSchemaFormat(BaseModel):
    """``response_format.json_schema``: the schema the answer must follow."""

    model_config = ConfigDict(**STRICT, populate_by_name=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    """A name for the schema (letters, digits, '_' and '-', at most 64)."""
    description: str | None = None
    """What the format is for (not shown to the model)."""
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    """The JSON Schema; without one, any JSON object."""
    strict: bool | None = None
    """Accepted either way: constrained decoding always follows the schema exactly."""


class ResponseFormat(BaseModel):
    """``response_format``: free text, any JSON object, or JSON following a schema."""

    model_config = STRICT

    type: Literal["text", "json_object", "json_schema"]
    """'json_object' and 'json_schema' are enforced token by token (constrained decoding)."""
    json_schema: JsonSchemaFormat | None = None
    """Required with type 'json_schema'."""

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("send json_schema exactly when type is 'json_schema'")
        return self

    def target_schema(self) -> dict[str, Any] | None:
        """The JSON Schema the answer must follow; None for free text."""
        if self.type == "text":
            return None
        if self.type == "json_object" or self.json_schema is None:
            return {"type": "object"}
        return self.json_schema.json_schema or {"type": "object"}


class TextContentPart(BaseModel):
    """A text part of a chat message's content (the only kind a text model reads)."""

    model_config = STRICT

    type: Literal["text"]
    """Only 'text': image, audio and file parts are a 400."""
    text: str
    """The text."""


class ChatMessage(BaseModel):
    """One turn of ``messages``."""

    model_config = STRICT

    role: Literal["system", "developer", "user", "assistant", "tool"]
    """Who speaks; 'developer' is rendered as a system turn."""
    content: str | list[TextContentPart] | None = None
    """The text, or a list of text parts (joined)."""
    name: str | None = None
    """Handed to the chat template with the turn (templates that know names use it)."""
    tool_call_id: str | None = None
    """Handed to the chat template with a tool turn."""
    tool_calls: list[dict[str, Any]] | None = None
    """Refused unless empty: this server makes no tool calls, so none can be in the history."""
    function_call: dict[str, Any] | None = None
    """Refused: the deprecated form of tool_calls."""
    refusal: str | None = None
    """Refused: this server never answers with a refusal message."""
    audio: dict[str, Any] | None = None
    """Refused: audio turns need an audio model."""

    @model_validator(mode="after")
    def _text_only(self) -> ChatMessage:
        for name in ("tool_calls", "function_call", "refusal", "audio"):
            if not is_unset(getattr(self, name)):
                raise ValueError(f"{name} in a message is not supported by this server")
        return self

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)
