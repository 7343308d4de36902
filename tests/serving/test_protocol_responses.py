"""Answers, chunks and logprobs in OpenAI's shapes (checked with the openai client's own types)."""

from __future__ import annotations

import openai.types as openai_types
import openai.types.chat as openai_chat
import torch

from lingualift.serving import protocol as oa
from lingualift.serving.decoding import TokenLogprobs, prompt_logprobs
from lingualift.testing import byte_tokenizer

from .test_constraints import sentencepiece_tokenizer

INFO = {"adapter": "sw/v1", "lang": "sw"}


def ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_created_is_the_second_the_answer_was_made():
    assert oa.created_now(1_700_000_000.9) == 1_700_000_000
    assert isinstance(oa.created_now(), int)


def test_completion_logprobs_cover_the_echoed_prompt_and_the_completion():
    tokenizer = byte_tokenizer()
    strings = oa.TokenStrings(tokenizer)
    prompt, generated = ids(tokenizer, "ab"), ids(tokenizer, "c")
    logits = torch.randn(len(prompt), 262, generator=torch.Generator().manual_seed(0))
    entries = prompt_logprobs(logits, prompt, top=2)
    entries.append(TokenLogprobs(generated[0], -0.5, ((generated[0], -0.5), (5, -1.5))))
    out = oa.completion_logprobs(entries, prompt + generated, strings)
    assert out["tokens"] == ["a", "b", "c"] and out["text_offset"] == [0, 1, 2]
    assert out["token_logprobs"][0] is None and out["top_logprobs"][0] is None
    assert out["token_logprobs"][1] == entries[1].logprob
    assert len(out["top_logprobs"][1]) in (2, 3)  # the chosen token joins the top 2
    assert out["top_logprobs"][1]["b"] == entries[1].logprob
    assert out["top_logprobs"][2] == {"c": -0.5, strings.text(5): -1.5}
    # The first echoed token has no logprob: null, as OpenAI and vLLM answer (the client's
    # types say float, but it does not validate answers). Without echo every entry is a number:
    generated_only = oa.completion_logprobs(entries[2:], generated, strings, text_offset=2)
    choice = oa.completion_choice(0, "c", "length", generated_only)
    answer = oa.envelope(
        "text_completion", "cmpl-1", 5, "sw", [choice], usage=oa.usage(2, 1), lingualift=INFO
    )
    parsed = openai_types.Completion.model_validate(answer)
    assert parsed.choices[0].logprobs.tokens == ["c"]
    assert parsed.choices[0].logprobs.text_offset == [2]


def test_an_impossible_token_gets_openais_floor_not_infinity():
    tokenizer = byte_tokenizer()
    out = oa.completion_logprobs(
        [TokenLogprobs(70, float("-inf"), ((70, float("-inf")),))], [70], oa.TokenStrings(tokenizer)
    )
    assert out["token_logprobs"] == [oa.LOGPROB_FLOOR]


def test_chat_logprobs_carry_bytes_that_rebuild_split_characters():
    tokenizer = byte_tokenizer()
    strings = oa.TokenStrings(tokenizer)
    pieces = ids(tokenizer, "é")  # two tokens, one byte each
    entries = [TokenLogprobs(t, -0.1, ((t, -0.1), (70, -3.0))) for t in pieces]
    out = oa.chat_logprobs(entries, strings)
    assert bytes(b for item in out["content"] for b in item["bytes"]).decode() == "é"
    assert [len(item["top_logprobs"]) for item in out["content"]] == [2, 2]
    choice = oa.chat_choice(0, "é", "stop", out)
    answer = oa.envelope(
        "chat.completion",
        "chatcmpl-1",
        5,
        "sw",
        [choice],
        system_fingerprint="sw/v1",
        usage=oa.usage(3, 2),
    )
    parsed = openai_chat.ChatCompletion.model_validate(answer)
    assert parsed.choices[0].logprobs.content[1].top_logprobs[1].logprob == -3.0
    assert parsed.system_fingerprint == "sw/v1"


def test_sentencepiece_bytes_come_from_byte_fallback_and_spaces():
    tokenizer = sentencepiece_tokenizer()
    strings = oa.TokenStrings(tokenizer)
    byte_token = tokenizer.convert_tokens_to_ids("<0xC3>")
    assert strings.bytes(byte_token) == [0xC3]
    assert strings.bytes(tokenizer.convert_tokens_to_ids("▁ha")) == list(b" ha")


def test_several_choices_and_stream_chunks_parse_as_openais_types():
    choices = [oa.completion_choice(i, f"t{i}", "stop") for i in range(3)]
    answer = oa.envelope("text_completion", "cmpl-2", 7, "sw", choices, usage=oa.usage(1, 3))
    assert [c.index for c in openai_types.Completion.model_validate(answer).choices] == [0, 1, 2]
    chunk = oa.completion_chunk("cmpl-2", 7, "sw", "x", None, INFO, index=2)
    assert chunk["choices"] == [{"index": 2, "text": "x", "logprobs": None, "finish_reason": None}]
    delta = oa.chat_chunk("c", 7, "sw", {"content": "x"}, None, INFO, index=1)
    assert openai_chat.ChatCompletionChunk.model_validate(delta).choices[0].index == 1


def test_the_one_choice_builders_keep_their_shape():
    answer = oa.completion_response("cmpl-3", 9, "sw", "hi", "stop", oa.usage(1, 1), INFO)
    assert answer["choices"] == [
        {"index": 0, "text": "hi", "logprobs": None, "finish_reason": "stop"}
    ]
    assert answer["created"] == 9 and answer["lingualift"] == INFO
    chat = oa.chat_response("c", 9, "sw", "hi", "stop", oa.usage(1, 1), INFO)
    assert openai_chat.ChatCompletion.model_validate(chat).choices[0].message.content == "hi"
    assert oa.sse({"a": 1}) == b'data: {"a": 1}\n\n' and oa.SSE_DONE == b"data: [DONE]\n\n"
