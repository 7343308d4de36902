"""From a validated request to the decoding settings of its rows.

The checks that need the model happen here: token ids (``logit_bias``,
``stop_token_ids``) against its vocabulary, ``min_tokens`` against the
``max_tokens`` the server settled on, a JSON Schema against its tokenizer.
Parameters the request leaves out take the model's generation_config
(:func:`~lingualift.serving.decoding.sampling_defaults`), as vLLM does.
"""

from __future__ import annotations

from typing import Any

from lingualift.serving.constraints import ConstraintError
from lingualift.serving.decoding import SamplingDefaults, SamplingParams
from lingualift.serving.protocol.errors import bad_request
from lingualift.serving.protocol.requests import CompletionRequest, OpenAIRequest


def _check_ids(ids: list[int], vocab_size: int, param: str) -> None:
    outside = [token for token in ids if token >= vocab_size]
    if outside:
        raise bad_request(
            f"{param} has token id {outside[0]}; this model's ids are 0 to {vocab_size - 1}.",
            param=param,
        )


def sampling_params(
    body: OpenAIRequest,
    *,
    max_tokens: int,
    vocab_size: int,
    defaults: SamplingDefaults | None = None,
    constraints: Any = None,
) -> SamplingParams:
    """The :class:`SamplingParams` of ``body``'s rows (a 400 :class:`ApiError` if they cannot be).

    ``max_tokens`` is what the server settled on (the request's, or its default cut to the
    context); ``vocab_size`` the model's; ``defaults`` the model's generation_config
    (:func:`~lingualift.serving.decoding.sampling_defaults`); ``constraints`` the server's
    :func:`~lingualift.serving.constraints.load_json_constraints` (None: no JSON mode).
    Choice i of a seeded request decodes with ``params.for_choice(i)``.
    """
    defaults = defaults or SamplingDefaults()
    bias = [(int(token), float(value)) for token, value in (body.logit_bias or {}).items()]
    _check_ids([token for token, _ in bias], vocab_size, "logit_bias")
    stop_ids = list(body.stop_token_ids or [])
    _check_ids(stop_ids, vocab_size, "stop_token_ids")
    min_tokens = body.min_tokens or 0
    if min_tokens > max_tokens:
        raise bad_request(
            f"min_tokens ({min_tokens}) is above max_tokens ({max_tokens}); lower it.",
            param="min_tokens",
        )
    constraint = None
    schema = body.json_schema()
    if schema is not None:
        if constraints is None:
            raise bad_request(
                "JSON mode (response_format) is not enabled on this server; send "
                "response_format {'type': 'text'} or none.",
                param="response_format",
            )
        try:
            constraint = constraints.compile(schema)
        except ConstraintError as exc:
            raise bad_request(str(exc), param="response_format") from None
    echo = isinstance(body, CompletionRequest) and bool(body.echo)
    top_k = defaults.top_k if body.top_k is None else max(body.top_k, 0)  # -1 means all (vLLM)
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=defaults.temperature if body.temperature is None else body.temperature,
        top_p=defaults.top_p if body.top_p is None else body.top_p,
        top_k=top_k,
        min_p=defaults.min_p if body.min_p is None else body.min_p,
        presence_penalty=body.presence_penalty or 0.0,
        frequency_penalty=body.frequency_penalty or 0.0,
        repetition_penalty=(
            defaults.repetition_penalty
            if body.repetition_penalty is None
            else body.repetition_penalty
        ),
        logit_bias=tuple(bias),
        min_tokens=min_tokens,
        logprobs=body.logprob_count(),
        prompt_logprobs=body.logprob_count() if echo else None,
        stop=body.stop_strings(),
        stop_token_ids=tuple(stop_ids),
        include_stop_str_in_output=bool(body.include_stop_str_in_output),
        skip_special_tokens=body.skip_special_tokens is not False,
        seed=body.seed,
        ignore_eos=bool(body.ignore_eos),
        constraint=constraint,
    )
