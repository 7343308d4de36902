"""From request bytes to a validated request body, or one 400 in OpenAI's shape.

``json.loads`` alone is not enough for bytes from the network: 200k nested
brackets raise ``RecursionError``, ``"\\ud800"`` decodes to a lone surrogate
that fails later when the text is tokenized or logged, ``NaN`` is accepted
although JSON has no such value, and a 5,000-digit number raises
``ValueError``. :func:`read_json` turns each into a 400 before pydantic sees
the data, naming the field where it can.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import ValidationError

from lingualift.serving.protocol.errors import ApiError, bad_request
from lingualift.serving.protocol.requests import (
    ChatCompletionRequest,
    CompletionRequest,
    OpenAIRequest,
)

MAX_JSON_DEPTH = 64
"""Deepest nesting of objects and arrays accepted (a JSON Schema in response_format is the
deepest thing a client has a reason to send)."""

Request = TypeVar("Request", bound=OpenAIRequest)
_SURROGATE = re.compile("[\ud800-\udfff]")
_TYPE_TAG = re.compile(r"^(str|int|float|bool|none|dict|list)$|[\[\]()\-,]")
"""Names pydantic puts in an error's location for a member of a union, not a field."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def read_json(raw: bytes) -> dict[str, Any]:
    """The JSON object in ``raw``, checked for encoding, depth and lone surrogates (a 400 if not).

    ``raw`` must be UTF-8 (as JSON on the wire is), hold one object, nest at most
    :data:`MAX_JSON_DEPTH` deep, and have no unpaired surrogate escapes in any string.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(
            f"The request body is not UTF-8 (byte {exc.start}); send JSON encoded as UTF-8.",
            code="invalid_json",
        ) from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, an integer of thousands of digits
        raise bad_request(
            f"We could not parse the JSON body of your request ({exc}).", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    _check_tree(data)
    return data


def _too_deep() -> ApiError:
    return bad_request(
        f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels; flatten it.",
        code="invalid_json",
    )


def _check_tree(data: dict[str, Any]) -> None:
    """Depth and lone surrogates, walking the parsed value without recursion."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_JSON_DEPTH:
            raise _too_deep()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                param = _param(path) or None
                raise bad_request(
                    f"{param or 'The body'} has a lone UTF-16 surrogate (such as \\ud800), "
                    "which is not a character; send valid Unicode text.",
                    param=param,
                    code="invalid_json",
                )
        elif isinstance(node, dict):
            for key, value in node.items():
                if _SURROGATE.search(key):
                    raise bad_request(
                        "A key of the JSON body has a lone UTF-16 surrogate; send valid Unicode.",
                        param=_param(path) or None,
                        code="invalid_json",
                    )
                stack.append((value, (*path, key)))
        elif isinstance(node, list):
            stack.extend((value, (*path, i)) for i, value in enumerate(node))


def _param(path: tuple[Any, ...]) -> str:
    return ".".join(
        str(part) for part in path if not (isinstance(part, str) and _TYPE_TAG.search(part))
    )


def validation_error(exc: ValidationError) -> ApiError:
    """The 400 for a pydantic error: the deepest failing location (in a union, the member that
    got furthest) and a sentence saying what the field takes."""
    errors = exc.errors(include_url=False)
    first = max(errors, key=lambda error: len(_param(tuple(error.get("loc", ()))).split(".")))
    param = _param(tuple(first.get("loc", ()))) or None
    kind, message = first.get("type"), str(first.get("msg", "invalid value"))
    if kind == "extra_forbidden":
        return bad_request(
            f"Unrecognized request argument supplied: {param}; this server does not know it, "
            "so remove it.",
            param=param,
            code="unknown_parameter",
        )
    if kind == "missing":
        return bad_request(f"Missing required parameter: {param}.", param=param)
    message = message.removeprefix("Value error, ")
    return bad_request(f"Invalid value for {param}: {message}.", param=param)


def parse_request(kind: type[Request], raw: bytes) -> Request:
    """Validate a request body: a typed request, or a 400 :class:`ApiError` naming the field.

    Wrong types, refused parameters and inconsistent combinations all become one 400 (OpenAI's
    shape, ``param`` set). Nothing here needs the model; the checks that do (token ids against
    the vocabulary, JSON Schemas against the tokenizer) happen when the server builds each
    row's sampling parameters (:func:`~.sampling.sampling_params`).
    """
    data = read_json(raw)
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


__all__ = [
    "MAX_JSON_DEPTH",
    "ChatCompletionRequest",
    "CompletionRequest",
    "parse_request",
    "read_json",
    "validation_error",
]
