"""Every OpenAI request parameter is declared and either honoured or refused with a 400 naming it."""

from __future__ import annotations

import json
import typing

import openai.types.chat.completion_create_params as openai_chat
import openai.types.completion_create_params as openai_completions
import pytest
from fastapi import FastAPI, Request

from lingualift.serving import protocol as oa
from lingualift.serving.decoding import SamplingDefaults

VOCAB = 300
CHAT = [{"role": "user", "content": "Habari?"}]


def openai_fields(module) -> set[str]:
    """The request parameters of the installed openai client (streaming variant: adds stream)."""
    return set(typing.get_type_hints(module.CompletionCreateParamsStreaming))


def parse(kind, body):
    return oa.parse_request(kind, json.dumps(body).encode())


def base(kind) -> dict:
    if kind is oa.CompletionRequest:
        return {"model": "sw", "prompt": "Habari"}
    return {"model": "sw", "messages": CHAT}


def params(body, max_tokens=16, **kwargs):
    return oa.sampling_params(body, max_tokens=max_tokens, vocab_size=VOCAB, **kwargs)


class FakeConstraints:
    """Stands in for the server's JSON constraints: records what it compiled."""

    def __init__(self):
        self.compiled = []

    def compile(self, schema):
        self.compiled.append(schema)
        return ("grammar", json.dumps(schema))


# Every honoured field: a value and what must follow from it. The checks read what the engine
# and the app will use (sampling parameters, rows, accessors), so a field that is parsed and then
# dropped fails here.
SHARED_HONOURED = {
    "model": ("fr", lambda b: b.model == "fr"),
    "max_tokens": (7, lambda b: b.requested_max_tokens() == 7),
    "temperature": (0.5, lambda b: params(b).temperature == 0.5),
    "top_p": (0.9, lambda b: params(b).top_p == 0.9),
    "n": (3, lambda b: b.choices_per_prompt == 3),
    "stream": (True, lambda b: b.stream is True),
    "stream_options": ({"include_usage": True}, lambda b: b.include_usage()),
    "stop": (["a", "b", "c", "d", "e", "f"], lambda b: params(b).stop == tuple("abcdef")),
    "seed": (11, lambda b: params(b).seed == 11),
    "frequency_penalty": (0.5, lambda b: params(b).frequency_penalty == 0.5),
    "presence_penalty": (-0.5, lambda b: params(b).presence_penalty == -0.5),
    "logit_bias": (
        {"5": 10, "7": -100},
        lambda b: params(b).logit_bias == ((5, 10.0), (7, -100.0)),
    ),
    "user": ("user-1", lambda b: b.end_user() == "user-1"),
    "response_format": (
        {"type": "json_object"},
        lambda b: (
            params(b, constraints=FakeConstraints()).constraint == ("grammar", '{"type": "object"}')
        ),
    ),
    "top_k": (5, lambda b: params(b).top_k == 5),
    "min_p": (0.1, lambda b: params(b).min_p == 0.1),
    "repetition_penalty": (1.3, lambda b: params(b).repetition_penalty == 1.3),
    "min_tokens": (3, lambda b: params(b).min_tokens == 3),
    "ignore_eos": (True, lambda b: params(b).ignore_eos),
    "stop_token_ids": ([4, 9], lambda b: params(b).stop_token_ids == (4, 9)),
    "skip_special_tokens": (False, lambda b: not params(b).skip_special_tokens),
    "include_stop_str_in_output": (True, lambda b: params(b).include_stop_str_in_output),
}
COMPLETION_HONOURED = {
    **SHARED_HONOURED,
    "prompt": (["one", "two"], lambda b: [r.prompt for r in b.rows()] == ["one", "two"]),
    "echo": (True, lambda b: b.echo is True),
    "logprobs": (3, lambda b: params(b).logprobs == 3 and params(b).prompt_logprobs is None),
}
CHAT_HONOURED = {
    **SHARED_HONOURED,
    "messages": (
        [{"role": "developer", "content": "Be brief."}, *CHAT],
        lambda b: b.template_messages()[0] == {"role": "system", "content": "Be brief."},
    ),
    "max_completion_tokens": (5, lambda b: b.requested_max_tokens() == 5),
    "logprobs": (True, lambda b: params(b).logprobs == 0),
    "top_logprobs": (4, lambda b: params(b).logprobs == 4),  # sent with logprobs: true
    "parallel_tool_calls": (False, lambda b: b.parallel_tool_calls is False),
    "safety_identifier": ("hash-1", lambda b: b.end_user() == "hash-1"),
    "prompt_cache_key": ("k", lambda b: b.prompt_cache_key == "k"),
    "prompt_cache_retention": ("24h", lambda b: b.prompt_cache_retention == "24h"),
    "prompt_cache_options": ({"ttl": "1h"}, lambda b: b.prompt_cache_options == {"ttl": "1h"}),
}
COMPLETION_REFUSED = {"suffix": "def f():", "best_of": 3}
CHAT_REFUSED = {
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "tool_choice": "required",
    "functions": [{"name": "f"}],
    "function_call": {"name": "f"},
    "audio": {"voice": "alloy", "format": "mp3"},
    "modalities": ["text", "audio"],
    "store": True,
    "metadata": {"team": "a"},
    "service_tier": "priority",
    "reasoning_effort": "high",
    "verbosity": "low",
    "web_search_options": {},
    "prediction": {"type": "content", "content": "x"},
    "moderation": {"mode": "block"},
}
CASES = [
    (oa.CompletionRequest, openai_completions, COMPLETION_HONOURED, COMPLETION_REFUSED),
    (oa.ChatCompletionRequest, openai_chat, CHAT_HONOURED, CHAT_REFUSED),
]


@pytest.mark.parametrize(("kind", "module", "honoured", "refused"), CASES)
def test_every_openai_parameter_is_declared_and_classified(kind, module, honoured, refused):
    declared = set(kind.model_fields)
    assert openai_fields(module) <= declared, "declare the new OpenAI parameters"
    assert kind.HONOURED | set(kind.REFUSED) == declared
    assert not kind.HONOURED & set(kind.REFUSED)
    assert set(honoured) == kind.HONOURED  # every honoured field has a check below
    assert set(refused) == set(kind.REFUSED)


@pytest.mark.parametrize(("kind", "module", "honoured", "refused"), CASES)
def test_every_honoured_parameter_changes_what_the_server_does(kind, module, honoured, refused):
    for name, (value, check) in honoured.items():
        body = {**base(kind), name: value}
        if name == "stream_options":
            body["stream"] = True
        if name == "top_logprobs":
            body["logprobs"] = True
        parsed = parse(kind, body)
        assert check(parsed), name


@pytest.mark.parametrize(("kind", "module", "honoured", "refused"), CASES)
def test_every_refused_parameter_is_a_400_naming_it(kind, module, honoured, refused):
    for name, value in refused.items():
        with pytest.raises(oa.ApiError) as caught:
            parse(kind, {**base(kind), name: value})
        assert (caught.value.status, caught.value.param) == (400, name), name
        assert caught.value.message.endswith("."), name


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("tool_choice", "none"),
        ("tool_choice", "auto"),
        ("function_call", "none"),
        ("tools", []),
        ("modalities", ["text"]),
        ("store", False),
        ("metadata", {}),
        ("service_tier", "default"),
        ("reasoning_effort", "none"),
    ],
)
def test_a_refused_parameter_at_a_value_that_changes_nothing_is_accepted(name, value):
    assert (
        getattr(
            parse(oa.ChatCompletionRequest, {**base(oa.ChatCompletionRequest), name: value}), name
        )
        == value
    )


def test_best_of_equal_to_n_is_accepted():
    body = parse(oa.CompletionRequest, {"model": "sw", "prompt": "x", "n": 2, "best_of": 2})
    assert body.choices_per_prompt == 2


@pytest.mark.parametrize("kind", [oa.CompletionRequest, oa.ChatCompletionRequest])
def test_an_unknown_parameter_is_a_400_naming_it(kind):
    with pytest.raises(oa.ApiError) as caught:
        parse(kind, {**base(kind), "guided_json": {"type": "object"}})
    assert caught.value.param == "guided_json" and caught.value.code == "unknown_parameter"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": "10"}, "max_tokens"),
        ({"max_tokens": 10.0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"echo": 1}, "echo"),
        ({"temperature": "0.5"}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"logprobs": True}, "logprobs"),
        ({"logprobs": 21}, "logprobs"),
        ({"n": 0}, "n"),
        ({"stop": 5}, "stop"),
        ({"stop": ["ok", 5]}, "stop.1"),
        ({"seed": 2**64}, "seed"),
        ({"logit_bias": {"a": 1}}, "logit_bias"),
        ({"logit_bias": {"5": 101}}, "logit_bias.5"),
        ({"frequency_penalty": 2.5}, "frequency_penalty"),
        ({"top_k": -2}, "top_k"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": []}, "prompt"),
        ({"prompt": ["a", ""]}, "prompt"),
        ({"prompt": [1, "a"]}, "prompt"),
        ({"prompt": [[1, 2], []]}, "prompt"),
        ({"prompt": [-1]}, "prompt"),
        ({"prompt": [True]}, "prompt"),
        ({"max_tokens": 0}, "max_tokens"),  # nothing to return without echo
        ({"stream_options": {"include_usage": True}}, "stream_options"),  # without stream
        ({"stream": True, "stream_options": {"include_obfuscation": True}}, "stream_options"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"model": ""}, "model"),
    ],
)
def test_wrong_types_and_values_are_400s_naming_the_field(body, param):
    with pytest.raises(oa.ApiError) as caught:
        parse(oa.CompletionRequest, {"model": "sw", "prompt": "x", **body})
    assert (caught.value.status, caught.value.param) == (400, param)


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([], "messages"),
        ([{"role": "robot", "content": "x"}], "messages.0.role"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
            "messages.0.content.0.type",
        ),
        ([{"role": "user", "content": "x", "colour": "red"}], "messages.0.colour"),
        ([{"role": "assistant", "tool_calls": [{"id": "1"}]}], "messages.0"),
        ([{"role": "user", "content": 5}], "messages.0.content"),
    ],
)
def test_bad_chat_messages_are_400s_naming_the_message(messages, param):
    with pytest.raises(oa.ApiError) as caught:
        parse(oa.ChatCompletionRequest, {"model": "sw", "messages": messages})
    assert (caught.value.status, caught.value.param) == (400, param)


def test_missing_and_inconsistent_fields_are_named():
    with pytest.raises(oa.ApiError) as caught:
        parse(oa.CompletionRequest, {"model": "sw"})
    assert caught.value.param == "prompt" and "Missing" in caught.value.message
    with pytest.raises(oa.ApiError) as caught:
        parse(oa.ChatCompletionRequest, {"model": "sw", "messages": CHAT, "top_logprobs": 2})
    assert caught.value.param == "top_logprobs"
    with pytest.raises(oa.ApiError) as caught:
        parse(oa.ChatCompletionRequest, {"model": "sw", "messages": CHAT, "max_tokens": 0})
    assert caught.value.param == "max_tokens"


# -- bad bytes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b"", None),
        (b"[" * 200_000, None),  # json.loads raises RecursionError
        (b'{"model": "sw", "prompt": ' + b"[" * 70 + b"]" * 70 + b"}", None),  # parses, too deep
        (b'{"model": "sw", "prompt": "\\ud800"}', "prompt"),  # a lone surrogate
        (b'{"model": "sw", "prompt": ["ok", "\\udfff x"]}', "prompt.1"),
        (b'{"model": "sw", "prompt": "x", "\\ud800": 1}', None),
        (b'{"model": "sw", "prompt": "caf\xe9"}', None),  # Latin-1, not UTF-8
        (b"\xff\xfe{\x00}\x00", None),
        (b'{"model": "sw", "prompt": "x", "temperature": NaN}', None),
        (b'{"model": "sw", "prompt": "x", "seed": ' + b"9" * 5000 + b"}", None),
    ],
)
def test_bad_bytes_are_a_400_in_openais_shape(raw, param):
    with pytest.raises(oa.ApiError) as caught:
        oa.parse_request(oa.CompletionRequest, raw)
    error = caught.value
    assert error.status == 400 and error.param == param
    assert error.code == "invalid_json" and error.message.endswith(".")
    assert set(error.body()["error"]) == {"message", "type", "param", "code"}


def test_a_surrogate_pair_is_a_character_not_an_error():
    body = oa.parse_request(oa.CompletionRequest, b'{"model": "sw", "prompt": "\\ud83d\\ude00"}')
    assert body.prompt == "😀"


# -- rows ------------------------------------------------------------------------------------


def test_rows_cover_every_prompt_and_choice_in_the_answers_order():
    body = parse(oa.CompletionRequest, {"model": "sw", "prompt": ["a", "b"], "n": 2})
    rows = body.rows()
    assert [(r.index, r.prompt_index, r.prompt) for r in rows] == [
        (0, 0, "a"),
        (1, 0, "a"),
        (2, 1, "b"),
        (3, 1, "b"),
    ]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("text", ["text"]),
        (["x", "y"], ["x", "y"]),
        ([5, 6, 7], [[5, 6, 7]]),
        ([[5], [6, 7]], [[5], [6, 7]]),
    ],
)
def test_prompts_come_as_text_token_ids_or_lists_of_either(prompt, expected):
    body = parse(oa.CompletionRequest, {"model": "sw", "prompt": prompt})
    assert body.prompts() == expected
    assert [r.prompt for r in body.rows(VOCAB)] == expected


def test_token_ids_outside_the_vocabulary_are_a_400():
    body = parse(oa.CompletionRequest, {"model": "sw", "prompt": [[1], [2, VOCAB]]})
    with pytest.raises(oa.ApiError) as caught:
        body.rows(VOCAB)
    assert caught.value.param == "prompt" and str(VOCAB - 1) in caught.value.message


def test_chat_rows_repeat_the_rendered_conversation_n_times():
    body = parse(oa.ChatCompletionRequest, {"model": "sw", "messages": CHAT, "n": 3})
    assert [(r.index, r.prompt) for r in body.rows([1, 2])] == [
        (0, [1, 2]),
        (1, [1, 2]),
        (2, [1, 2]),
    ]


def test_chat_turns_keep_names_and_text_parts():
    messages = [
        {
            "role": "user",
            "name": "amina",
            "content": [{"type": "text", "text": "Ha"}, {"type": "text", "text": "bari"}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    body = parse(oa.ChatCompletionRequest, {"model": "sw", "messages": messages})
    assert body.template_messages() == [
        {"role": "user", "content": "Habari", "name": "amina"},
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
    ]
    assert body.routing_text() == "Habari"


# -- sampling parameters ---------------------------------------------------------------------


def test_unset_parameters_take_the_generation_config_defaults():
    defaults = SamplingDefaults(
        temperature=0.7, top_p=0.95, top_k=64, min_p=0.05, repetition_penalty=1.1
    )
    body = parse(oa.CompletionRequest, {"model": "sw", "prompt": "x"})
    got = params(body, defaults=defaults)
    assert (got.temperature, got.top_p, got.top_k, got.min_p, got.repetition_penalty) == (
        0.7,
        0.95,
        64,
        0.05,
        1.1,
    )
    explicit = parse(
        oa.CompletionRequest,
        {"model": "sw", "prompt": "x", "temperature": 0, "top_k": -1, "repetition_penalty": 1.0},
    )
    got = params(explicit, defaults=defaults)
    assert (got.temperature, got.top_k, got.repetition_penalty) == (0.0, 0, 1.0)
    assert params(body).temperature == 1.0  # OpenAI's default without a generation_config


def test_echo_with_logprobs_asks_for_the_prompts_logprobs():
    body = parse(
        oa.CompletionRequest,
        {"model": "sw", "prompt": [1, 2], "echo": True, "logprobs": 1, "max_tokens": 0},
    )
    got = params(body, max_tokens=0)
    assert (got.max_tokens, got.logprobs, got.prompt_logprobs) == (0, 1, 1)
    assert (
        params(
            parse(oa.CompletionRequest, {**base(oa.CompletionRequest), "echo": True})
        ).prompt_logprobs
        is None
    )


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logit_bias": {str(VOCAB): 1}}, "logit_bias"),
        ({"stop_token_ids": [VOCAB + 5]}, "stop_token_ids"),
        ({"min_tokens": 17}, "min_tokens"),  # above max_tokens 16
        ({"response_format": {"type": "json_object"}}, "response_format"),  # no JSON mode
    ],
)
def test_what_needs_the_model_is_checked_when_the_sampling_parameters_are_built(extra, param):
    body = parse(oa.CompletionRequest, {**base(oa.CompletionRequest), **extra})
    with pytest.raises(oa.ApiError) as caught:
        params(body)
    assert (caught.value.status, caught.value.param) == (400, param)


def test_a_schema_the_constraints_refuse_is_a_400_with_their_reason():
    from lingualift.serving.constraints import NoJsonConstraints

    body = parse(
        oa.CompletionRequest,
        {**base(oa.CompletionRequest), "response_format": {"type": "json_object"}},
    )
    with pytest.raises(oa.ApiError) as caught:
        params(body, constraints=NoJsonConstraints("JSON mode is off: no llguidance."))
    assert caught.value.param == "response_format" and "no llguidance" in caught.value.message


def test_json_schema_formats_reach_the_constraints():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    body = parse(
        oa.ChatCompletionRequest,
        {
            "model": "sw",
            "messages": CHAT,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "thing", "schema": schema, "strict": True},
            },
        },
    )
    constraints = FakeConstraints()
    params(body, constraints=constraints)
    assert constraints.compiled == [schema]
    text = parse(
        oa.ChatCompletionRequest,
        {"model": "sw", "messages": CHAT, "response_format": {"type": "text"}},
    )
    assert params(text, constraints=constraints).constraint is None


def test_stop_strings_keep_their_order_without_empties_or_repeats():
    body = parse(oa.CompletionRequest, {**base(oa.CompletionRequest), "stop": ["b", "", "a", "b"]})
    assert body.stop_strings() == ("b", "a")


# -- the published schema --------------------------------------------------------------------


@pytest.mark.parametrize("kind", [oa.CompletionRequest, oa.ChatCompletionRequest])
def test_the_request_bodies_have_an_openapi_schema_without_references(kind):
    body = oa.openapi_request_body(kind)
    schema = body["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == set(kind.model_fields)
    assert schema["additionalProperties"] is False
    assert "$ref" not in json.dumps(schema) and "$defs" not in schema
    assert schema["properties"]["max_tokens"]["description"]
    assert kind.model_json_schema()["title"] == kind.__name__


def test_a_fastapi_route_publishes_the_body_in_its_openapi_document():
    app = FastAPI()

    @app.post(
        "/v1/completions",
        openapi_extra={"requestBody": oa.openapi_request_body(oa.CompletionRequest)},
    )
    async def completions(request: Request) -> dict:
        return {}

    @app.post("/v1/chat/completions")
    async def chat(body: oa.ChatCompletionRequest) -> dict:  # the typed-parameter way
        return {}

    paths = app.openapi()["paths"]
    body = paths["/v1/completions"]["post"]["requestBody"]["content"]["application/json"]
    assert "logit_bias" in body["schema"]["properties"]
    assert paths["/v1/chat/completions"]["post"]["requestBody"]["required"] is True
