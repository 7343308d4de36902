"""The OpenAI wire format: request bodies, responses, stream chunks and errors.

Only what the server implements is accepted; anything else that OpenAI's API
has and this server cannot honour (``n`` > 1, ``logprobs``, ``echo``,
``tools``) is a 400 that says so, rather than a silently different answer.
Unknown fields are ignored, as OpenAI-compatible servers do. ``ignore_eos``
is vLLM's extension, accepted for the same benchmarks.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_STOP_STRINGS = 4


class ApiError(Exception):
    """An error answered in OpenAI's shape ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int | None = 1
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    logprobs: Any = None
    ignore_eos: bool | None = False

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings")
        return value

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))

    def check_supported(self) -> None:
        if self.n not in (None, 1):
            raise ApiError(400, "This server returns one choice per request; send n=1.", param="n")
        if self.logprobs not in (None, False, 0):
            raise ApiError(400, "logprobs are not supported by this server.", param="logprobs")


class CompletionBody(_Body):
    """``POST /v1/completions``."""

    prompt: str | list[str]
    echo: bool | None = False
    suffix: str | None = None

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise ApiError(
                400, "Send one prompt per request (a string or a list of one).", param="prompt"
            )
        return self.prompt[0]

    def check_supported(self) -> None:
        super().check_supported()
        if self.echo:
            raise ApiError(400, "echo is not supported by this server.", param="echo")
        if self.suffix:
            raise ApiError(400, "suffix is not supported by this server.", param="suffix")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(
                    400, "Only text content parts are supported.", param="messages.content"
                )
            parts.append(part["text"])
        return "".join(parts)


class ChatBody(_Body):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[Any] | None = None

    def check_supported(self) -> None:
        super().check_supported()
        if self.tools:
            raise ApiError(400, "tools are not supported by this server.", param="tools")

    def template_messages(self) -> list[dict[str, str]]:
        """Messages as the chat template wants them (OpenAI's 'developer' is a system turn)."""
        return [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in self.messages
        ]

    def routing_text(self) -> str:
        """What language identification and the traffic log see: the last user message."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text()
        return self.messages[-1].text()


def parse_body(kind: type[_Body], raw: bytes) -> Any:
    """Validate a JSON request body, or raise a 400 :class:`ApiError` naming the bad field."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(
            400, "We could not parse the JSON body of your request.", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    try:
        body = kind.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(x) for x in first.get("loc", ())) or None
        raise ApiError(
            400, f"Invalid value for {param}: {first.get('msg')}.", param=param
        ) from None
    body.check_supported()
    return body


# -- responses ----------------------------------------------------------------------------


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _envelope(
    obj: str, request_id: str, created: int, model: str, choices: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    """The fields every OpenAI response and stream chunk share."""
    return {
        "id": request_id,
        "object": obj,
        "created": created,
        "model": model,
        "choices": choices,
        **extra,
    }


def completion_response(
    request_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    token_usage: dict[str, int],
    info: dict[str, Any],
) -> dict[str, Any]:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
    return _envelope(
        "text_completion", request_id, created, model, [choice], usage=token_usage, lingualift=info
    )


def completion_chunk(
    request_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str | None,
    info: dict[str, Any],
) -> dict[str, Any]:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
    return _envelope("text_completion", request_id, created, model, [choice], lingualift=info)


def chat_response(
    request_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    token_usage: dict[str, int],
    info: dict[str, Any],
) -> dict[str, Any]:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "logprobs": None,
        "finish_reason": finish_reason,
    }
    return _envelope(
        "chat.completion", request_id, created, model, [choice], usage=token_usage, lingualift=info
    )


def chat_chunk(
    request_id: str,
    created: int,
    model: str,
    delta: dict[str, str],
    finish_reason: str | None,
    info: dict[str, Any],
) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    return _envelope("chat.completion.chunk", request_id, created, model, [choice], lingualift=info)


def usage_chunk(
    request_id: str, created: int, model: str, obj: str, token_usage: dict[str, int]
) -> dict[str, Any]:
    """The last chunk of a stream with ``stream_options.include_usage``: no choices, the usage."""
    return _envelope(obj, request_id, created, model, [], usage=token_usage)


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event (``data: ...`` and a blank line)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


SSE_DONE = sse("[DONE]")
