"""Per-row token choice and incremental text: characters whole, stop strings held back."""

from __future__ import annotations

import torch

from lingualift.serving.decoding import SamplingParams, TextStream, next_tokens, row_generator
from lingualift.testing import byte_tokenizer


def feed(stream, text):
    """Add ``text``'s tokens one by one; return what was releasable after each."""
    out = []
    for token in stream.tokenizer(text, add_special_tokens=False)["input_ids"]:
        stream.add(token)
        out.append(stream.releasable())
    return out


def test_a_character_split_over_tokens_is_released_whole():
    stream = TextStream(byte_tokenizer())
    assert feed(stream, "aé") == ["a", "", "é"]  # é is two bytes, two tokens
    assert feed(stream, "日") == ["", "", "日"]
    assert stream.releasable(final=True) == "" and stream.text == "aé日"


def test_a_possible_stop_string_is_held_back_until_it_resolves():
    stream = TextStream(byte_tokenizer(), stop=("END",))
    assert feed(stream, "okE") == ["o", "k", ""]  # 'E' may begin 'END'
    assert feed(stream, "x") == ["Ex"]  # it did not
    assert feed(stream, "EN") == ["", ""]
    assert not stream.stopped
    assert feed(stream, "D!") == ["", ""]
    assert stream.stopped and stream.text == "okEx"
    assert stream.releasable(final=True) == ""  # what was held back was the stop string


def test_a_stop_string_spanning_old_and_new_text_is_found():
    stream = TextStream(byte_tokenizer(), stop=("\n\n",))
    feed(stream, "one\n")
    assert not stream.stopped
    feed(stream, "\ntwo")
    assert stream.stopped and stream.text == "one"


def test_the_final_flush_hands_out_an_incomplete_character():
    stream = TextStream(byte_tokenizer())
    first_byte_of_e_acute = byte_tokenizer()("é", add_special_tokens=False)["input_ids"][0]
    stream.add(first_byte_of_e_acute)
    assert stream.releasable() == ""
    assert stream.releasable(final=True) == "\ufffd"


def test_greedy_rows_take_the_argmax_and_seeded_rows_repeat():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    params = [
        SamplingParams(4, temperature=0.0),
        SamplingParams(4, temperature=1.0, seed=3),
        SamplingParams(4, temperature=1.0, top_p=1e-6, seed=5),  # nucleus of one token
    ]
    draws = [
        next_tokens(logits, params, [row_generator(p, "cpu") for p in params]) for _ in range(3)
    ]
    for drawn in draws:
        assert drawn[0] == logits[0].argmax() and drawn[2] == logits[2].argmax()
    assert len({int(d[1]) for d in draws}) == 1  # same seed, same draw
    # Unseeded sampling rows use the global generator and do vary.
    free = [SamplingParams(4, temperature=2.0)]
    seen = {int(next_tokens(logits[1:2], free, [None])[0]) for _ in range(30)}
    assert len(seen) > 1
