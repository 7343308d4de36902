"""The OpenAI wire format: request bodies, sampling settings, answers, stream chunks, errors.

Every parameter of OpenAI's completions and chat-completions requests (and
the vLLM extensions this server implements) is declared in
:mod:`~.requests` and either honoured or refused with a 400 naming it;
unknown parameters are refused too. How a server uses it::

    body = parse_request(CompletionRequest, raw_bytes)            # 400s for bad bodies
    rows = body.rows(vocab_size)                                   # one per prompt x choice
    params = sampling_params(body, max_tokens=..., vocab_size=..., defaults=..., constraints=...)
    # choice i decodes with params.for_choice(i); answers: envelope(...), completion_choice(...)

Modules: :mod:`~.errors` (``ApiError``), :mod:`~.requests` (the typed bodies and their
classification), :mod:`~.parts` (prompts, messages, response formats), :mod:`~.parsing`
(bytes to a body), :mod:`~.sampling` (a body to
``SamplingParams``), :mod:`~.responses` (answers, chunks, logprobs).
"""

from lingualift.serving.protocol.errors import ApiError, bad_request, error_body
from lingualift.serving.protocol.parsing import (
    MAX_JSON_DEPTH,
    parse_request,
    read_json,
    validation_error,
)
from lingualift.serving.protocol.parts import ChatMessage, ResponseFormat, StreamOptions
from lingualift.serving.protocol.requests import (
    MAX_CHOICES,
    MAX_LOGPROBS,
    ChatCompletionRequest,
    CompletionRequest,
    OpenAIRequest,
    PromptRow,
    Refused,
    openapi_request_body,
)
from lingualift.serving.protocol.responses import (
    LOGPROB_FLOOR,
    SSE_DONE,
    TokenStrings,
    chat_choice,
    chat_chunk,
    chat_delta_choice,
    chat_logprobs,
    chat_response,
    completion_choice,
    completion_chunk,
    completion_logprobs,
    completion_response,
    created_now,
    envelope,
    sse,
    usage,
    usage_chunk,
)
from lingualift.serving.protocol.sampling import sampling_params

__all__ = [
    "LOGPROB_FLOOR",
    "MAX_CHOICES",
    "MAX_JSON_DEPTH",
    "MAX_LOGPROBS",
    "SSE_DONE",
    "ApiError",
    "ChatCompletionRequest",
    "ChatMessage",
    "CompletionRequest",
    "OpenAIRequest",
    "PromptRow",
    "Refused",
    "ResponseFormat",
    "StreamOptions",
    "TokenStrings",
    "bad_request",
    "chat_choice",
    "chat_chunk",
    "chat_delta_choice",
    "chat_logprobs",
    "chat_response",
    "completion_choice",
    "completion_chunk",
    "completion_logprobs",
    "completion_response",
    "created_now",
    "envelope",
    "error_body",
    "openapi_request_body",
    "parse_request",
    "read_json",
    "sampling_params",
    "sse",
    "usage",
    "usage_chunk",
    "validation_error",
]
