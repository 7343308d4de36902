"""Typed request bodies of ``/v1/completions`` and ``/v1/chat/completions``.

Every parameter of OpenAI's completions and chat-completions request schemas
is declared, plus the vLLM extensions this server implements (``top_k``,
``min_p``, ``repetition_penalty``, ``min_tokens``, ``ignore_eos``,
``stop_token_ids``, ``skip_special_tokens``, ``include_stop_str_in_output``,
and ``response_format`` on completions). Each is either *honoured* (listed in
the class's ``HONOURED``) or *refused*: a :class:`Refused` entry in
``REFUSED`` says which values are no-ops (the default, or a value that cannot
change an answer) and why anything else is a 400 naming the field. Unknown
fields are a 400 too, as on OpenAI's API: a client that sends vLLM's
``guided_json`` learns it was not applied instead of getting free text.

Types are strict (``"max_tokens": "10"`` is a 400, so is ``"echo": 1``); the
models are plain pydantic, so ``model_json_schema()`` gives the schema the
server publishes (:func:`openapi_request_body`). Validation raises pydantic's
``ValidationError`` for wrong types and :class:`~.errors.ApiError` for a
refused or inconsistent parameter; :func:`~.parsing.parse_request` turns both
into one 400.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from lingualift.serving.protocol.errors import bad_request
from lingualift.serving.protocol.parts import (
    STRICT,
    Bias,
    ChatMessage,
    Penalty,
    PromptInput,
    ResponseFormat,
    StreamOptions,
    TokenId,
    is_token_ids,
    is_unset,
)

MAX_LOGPROBS = 20
"""Most alternatives per token (``logprobs`` on completions, ``top_logprobs`` on chat); OpenAI
allows 5 and 20, vLLM 20 by default."""
MAX_CHOICES = 128
"""Most ``n`` (OpenAI's bound); the server may refuse fewer rows per request (``len(rows())``)."""

# -- classification --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Refused:
    """A parameter this server cannot honour."""

    reason: str
    """One sentence saying why, and what to send instead."""
    accepts: Callable[[Any, Any], bool] = is_unset
    """``accepts(value, request)``: values answered anyway, the default or a value that cannot
    change an answer."""


def is_none(value: Any, request: Any = None) -> bool:
    """For a refused parameter whose every value asks for something, even ``{}``."""
    return value is None


def one_of(*values: Any) -> Callable[[Any, Any], bool]:
    """An ``accepts`` for a refused parameter whose listed values (and null) are no-ops."""
    return lambda value, request: value is None or value in values


@dataclasses.dataclass(frozen=True)
class PromptRow:
    """One row of the batch a request becomes: one choice of one prompt."""

    index: int
    """The choice's ``index`` in the answer (prompt by prompt, then choice by choice)."""
    prompt_index: int
    """Which prompt of the request it continues (rows of one prompt share its prefill)."""
    prompt: str | list[int]
    """The prompt text (the server tokenizes it) or its token ids (used as given)."""


# -- the two request bodies ------------------------------------------------------------------


class OpenAIRequest(BaseModel):
    """What completions and chat completions share."""

    model_config = STRICT

    HONOURED: ClassVar[frozenset[str]] = frozenset(
        {
            "model",
            "max_tokens",
            "temperature",
            "top_p",
            "n",
            "stream",
            "stream_options",
            "stop",
            "seed",
            "frequency_penalty",
            "presence_penalty",
            "logit_bias",
            "logprobs",
            "user",
            "response_format",
            "top_k",
            "min_p",
            "repetition_penalty",
            "min_tokens",
            "ignore_eos",
            "stop_token_ids",
            "skip_special_tokens",
            "include_stop_str_in_output",
        }
    )
    """Parameters implemented as OpenAI (or vLLM, for its extensions) defines them."""
    REFUSED: ClassVar[Mapping[str, Refused]] = {}
    """Parameters answered with a 400 unless their value is a no-op."""

    model: Annotated[str, Field(min_length=1)]
    """A served language ('sw'), 'auto', or the base model's id."""
    max_tokens: Annotated[int, Field(ge=0)] | None = None
    """Most new tokens per choice; without it the model's generation_config or the server's
    default, cut to the context left."""
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    """0 is greedy; without it the model's generation_config, else 1 (OpenAI's default)."""
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    """Nucleus sampling: the smallest set of tokens whose probability reaches top_p."""
    n: Annotated[int, Field(ge=1, le=MAX_CHOICES)] | None = None
    """Choices per prompt; they share the prompt's prefill."""
    stream: bool | None = None
    """Server-sent events in OpenAI's chunk format."""
    stream_options: StreamOptions | None = None
    """Only with stream: true (as vLLM)."""
    stop: str | list[str] | None = None
    """Any number of stop strings (vLLM's behaviour; OpenAI allows 4): the text ends before the
    first one. Empty strings match nothing and are dropped."""
    seed: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | None = None
    """Same seed, same prompt, same settings: same text (choice i > 0 of n uses a seed derived
    from it)."""
    frequency_penalty: Penalty | None = None
    """Subtracted from a token's logit once per time it was generated (-2 to 2)."""
    presence_penalty: Penalty | None = None
    """Subtracted from the logit of every token generated at least once (-2 to 2)."""
    logit_bias: dict[str, Bias] | None = None
    """Token id (as a string) to a bias from -100 to 100 added to its logit before sampling."""
    user: Annotated[str, Field(max_length=512)] | None = None
    """An end-user id, written to the traffic log."""
    response_format: ResponseFormat | None = None
    """JSON mode: the answer is constrained token by token to JSON (or a JSON Schema); a 400
    where the server has no constrained decoding."""
    top_k: Annotated[int, Field(ge=-1)] | None = None
    """vLLM: sample from the k most likely tokens; 0 or -1 means all."""
    min_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    """vLLM: drop tokens less likely than min_p times the most likely one."""
    repetition_penalty: Annotated[float, Field(gt=0.0, le=100.0)] | None = None
    """vLLM (CTRL's): logits of tokens in the prompt or the output are divided by it when
    positive, multiplied when negative; 1 is off."""
    min_tokens: Annotated[int, Field(ge=0)] | None = None
    """vLLM: no end-of-sequence, stop token or stop string before this many tokens."""
    ignore_eos: bool | None = None
    """vLLM: keep generating past end-of-sequence tokens (benchmarks want fixed lengths)."""
    stop_token_ids: list[TokenId] | None = None
    """vLLM: token ids that end the choice like end-of-sequence (not part of the text)."""
    skip_special_tokens: bool | None = None
    """vLLM: leave special tokens out of the text (default true)."""
    include_stop_str_in_output: bool | None = None
    """vLLM: keep the stop string that ended the text."""

    @field_validator("logit_bias")
    @classmethod
    def _bias_keys_are_token_ids(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key in value or {}:
            if not re.fullmatch(r"\d{1,12}", key):
                raise ValueError(f"the key {key[:20]!r} is not a token id; keys are token ids")
        return value

    @model_validator(mode="after")
    def _refuse_what_cannot_be_honoured(self) -> OpenAIRequest:
        for name, refused in self.REFUSED.items():
            if not refused.accepts(getattr(self, name), self):
                raise bad_request(refused.reason, param=name)
        if self.stream_options is not None and not self.stream:
            raise bad_request(
                "stream_options is only allowed with stream: true.", param="stream_options"
            )
        return self

    # -- what the server reads ---------------------------------------------------------------

    @property
    def choices_per_prompt(self) -> int:
        return self.n or 1

    def requested_max_tokens(self) -> int | None:
        """max_tokens as sent (None: the server's default applies)."""
        return self.max_tokens

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        return tuple(dict.fromkeys(s for s in stops if s))  # in order, without repeats

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def json_schema(self) -> dict[str, Any] | None:
        """The JSON Schema the answer must follow (``{"type": "object"}`` for JSON mode), or
        None for free text."""
        return None if self.response_format is None else self.response_format.target_schema()

    def logprob_count(self) -> int | None:
        """How many alternatives to return per token; None when logprobs were not asked."""
        raise NotImplementedError

    def end_user(self) -> str | None:
        """The end-user id for the traffic log."""
        return self.user


class CompletionRequest(OpenAIRequest):
    """``POST /v1/completions``."""

    HONOURED: ClassVar[frozenset[str]] = OpenAIRequest.HONOURED | {"prompt", "echo"}
    REFUSED: ClassVar[Mapping[str, Refused]] = {
        "suffix": Refused(
            "suffix (fill-in-the-middle) is not supported by this server; send the prompt only."
        ),
        "best_of": Refused(
            "best_of above n is not supported by this server; send n choices and pick among "
            "them with logprobs.",
            # best_of == n means "generate n, return n": what every request does.
            accepts=lambda value, request: value is None or value == request.choices_per_prompt,
        ),
    }

    prompt: PromptInput
    """A string; a list of strings (each its own choices); token ids; or a list of token-id
    lists. Token ids are used as given (no BOS added)."""
    echo: bool | None = None
    """Return the prompt before the completion; with logprobs, the prompt's token logprobs too
    (the first token has none). With max_tokens 0, only the prompt (lm-eval's loglikelihood)."""
    logprobs: Annotated[int, Field(ge=0, le=MAX_LOGPROBS)] | None = None
    """The chosen token's logprob and the logprobs most likely alternatives at every step, from
    the model's raw distribution (before penalties, bias, temperature, top-k/p, as vLLM)."""
    best_of: Annotated[int, Field(ge=1, le=MAX_CHOICES)] | None = None
    """Refused above n (vLLM's V1 engine dropped it too); equal to n it changes nothing."""
    suffix: str | None = None
    """Refused: no fill-in-the-middle."""

    @model_validator(mode="after")
    def _nothing_to_return(self) -> CompletionRequest:
        if self.max_tokens == 0 and not self.echo:
            raise bad_request(
                "max_tokens 0 returns nothing unless echo is true; ask for at least 1 token.",
                param="max_tokens",
            )
        return self

    def prompts(self) -> list[str | list[int]]:
        """The request's prompts, each a text or a list of token ids."""
        prompt = self.prompt
        if isinstance(prompt, str) or is_token_ids(prompt):
            return [prompt]  # type: ignore[list-item]
        return list(prompt)  # type: ignore[arg-type]

    def rows(self, vocab_size: int | None = None) -> list[PromptRow]:
        """One row per prompt and choice, in the order of the answer's choices.

        With ``vocab_size``, token-id prompts are checked against it (a 400 naming ``prompt``).
        """
        prompts = self.prompts()
        if vocab_size is not None:
            for prompt in prompts:
                if not isinstance(prompt, str) and max(prompt) >= vocab_size:
                    raise bad_request(
                        f"The prompt has token id {max(prompt)}; this model's ids are 0 to "
                        f"{vocab_size - 1}.",
                        param="prompt",
                    )
        n = self.choices_per_prompt
        return [
            PromptRow(index=p * n + j, prompt_index=p, prompt=prompt)
            for p, prompt in enumerate(prompts)
            for j in range(n)
        ]

    def logprob_count(self) -> int | None:
        return self.logprobs


class ChatCompletionRequest(OpenAIRequest):
    """``POST /v1/chat/completions``."""

    HONOURED: ClassVar[frozenset[str]] = OpenAIRequest.HONOURED | {
        "messages",
        "max_completion_tokens",
        "top_logprobs",
        "parallel_tool_calls",  # no tools, so no calls to run in parallel
        "safety_identifier",  # logged like user
        "prompt_cache_key",  # caching hints: they never change an answer
        "prompt_cache_retention",
        "prompt_cache_options",
    }
    REFUSED: ClassVar[Mapping[str, Refused]] = {
        "tools": Refused(
            "tools (function calling) are not supported by this server; send the request "
            "without tools."
        ),
        "tool_choice": Refused(
            "tool_choice can only be 'none' or 'auto' here: this server has no tools.",
            accepts=one_of("none", "auto"),
        ),
        "functions": Refused(
            "functions (function calling) are not supported by this server; send the "
            "request without functions."
        ),
        "function_call": Refused(
            "function_call can only be 'none' or 'auto' here: this server has no functions.",
            accepts=one_of("none", "auto"),
        ),
        "audio": Refused(
            "Audio output is not supported by this text model; drop audio.", accepts=is_none
        ),
        "modalities": Refused(
            "This server answers with text only; send modalities ['text'] or none.",
            accepts=lambda value, request: value is None or value == ["text"],
        ),
        "store": Refused("This server does not store completions; send store false or none."),
        "metadata": Refused(
            "metadata is kept only with stored completions, which this server does not keep."
        ),
        "service_tier": Refused(
            "This server has one service tier; send 'auto', 'default' or none.",
            accepts=one_of("auto", "default"),
        ),
        "reasoning_effort": Refused(
            "This model does not reason before answering; send reasoning_effort 'none' or none.",
            accepts=one_of("none"),
        ),
        "verbosity": Refused("verbosity is not supported by this server; drop it."),
        "web_search_options": Refused(
            "Web search is not available on this server; drop web_search_options.", accepts=is_none
        ),
        "prediction": Refused(
            "Predicted outputs are not supported by this server; drop prediction.", accepts=is_none
        ),
        "moderation": Refused("This server runs no moderation; drop moderation.", accepts=is_none),
    }

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    """The conversation, rendered with the model's chat template."""
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    """Most new tokens per choice (wins over max_tokens)."""
    logprobs: bool | None = None
    """The chosen tokens' logprobs (the model's raw distribution, as vLLM)."""
    top_logprobs: Annotated[int, Field(ge=0, le=MAX_LOGPROBS)] | None = None
    """Most likely alternatives per token; needs logprobs: true."""
    parallel_tool_calls: bool | None = None
    """Accepted either way: there are no tool calls."""
    safety_identifier: Annotated[str, Field(max_length=128)] | None = None
    """An end-user id, written to the traffic log (OpenAI's successor of user)."""
    prompt_cache_key: str | None = None
    """A caching hint; accepted, it cannot change an answer."""
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    """A caching hint; accepted, it cannot change an answer."""
    prompt_cache_options: dict[str, Any] | None = None
    """A caching hint; accepted, it cannot change an answer."""
    tools: list[dict[str, Any]] | None = None
    """Refused unless empty: no function calling."""
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    """'none' and 'auto' (there are no tools) are accepted; anything else is refused."""
    functions: list[dict[str, Any]] | None = None
    """Refused unless empty: deprecated function calling."""
    function_call: Literal["none", "auto"] | dict[str, Any] | None = None
    """'none' and 'auto' are accepted; a named function is refused."""
    audio: dict[str, Any] | None = None
    """Refused: no audio output."""
    modalities: list[Literal["text", "audio"]] | None = None
    """['text'] is accepted; audio is refused."""
    store: bool | None = None
    """Refused when true: completions are not stored."""
    metadata: dict[str, str] | None = None
    """Refused unless empty: it belongs to stored completions."""
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None
    """'auto' and 'default' are accepted; other tiers are refused."""
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = (
        None
    )
    """'none' is accepted; other efforts are refused (the model does not reason)."""
    verbosity: Literal["low", "medium", "high"] | None = None
    """Refused: not supported."""
    web_search_options: dict[str, Any] | None = None
    """Refused: no web search."""
    prediction: dict[str, Any] | None = None
    """Refused: no predicted outputs."""
    moderation: dict[str, Any] | None = None
    """Refused: no moderation."""

    @model_validator(mode="after")
    def _consistent(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise bad_request(
                "top_logprobs needs logprobs: true; set both or neither.", param="top_logprobs"
            )
        if self.max_tokens == 0:  # completions allow 0 with echo; a chat has no echo
            raise bad_request("max_tokens must be at least 1.", param="max_tokens")
        return self

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def rows(self, prompt: str | list[int]) -> list[PromptRow]:
        """n rows of the rendered conversation (``prompt``), in the order of the choices."""
        return [
            PromptRow(index=j, prompt_index=0, prompt=prompt)
            for j in range(self.choices_per_prompt)
        ]

    def logprob_count(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None

    def end_user(self) -> str | None:
        return self.safety_identifier or self.user

    def template_messages(self) -> list[dict[str, str]]:
        """Messages as the chat template wants them (OpenAI's 'developer' is a system turn)."""
        turns = []
        for m in self.messages:
            turn = {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            if m.name is not None:
                turn["name"] = m.name
            if m.tool_call_id is not None:
                turn["tool_call_id"] = m.tool_call_id
            turns.append(turn)
        return turns

    def routing_text(self) -> str:
        """What language identification and the traffic log see: the last user message."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text()
        return self.messages[-1].text()


# -- the published schema --------------------------------------------------------------------


def openapi_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """An OpenAPI ``requestBody`` for ``model`` with every ``$ref`` inlined.

    For ``openapi_extra={"requestBody": ...}`` on a route that reads its body itself (the
    server parses JSON with its own depth and encoding checks before pydantic).
    """
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    return {"required": True, "content": {"application/json": {"schema": inline(schema)}}}
