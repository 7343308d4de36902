"""The shared generation helper: order, padding side, stop strings, per-batch context."""

from __future__ import annotations

import contextlib

import pytest

from lingualift.generation import cut_at_stop, generate_texts
from lingualift.testing import tiny_causal_lm

pytestmark = pytest.mark.usefixtures("one_thread")


def test_batches_keep_input_order_and_match_one_by_one_generation():
    model, tokenizer = tiny_causal_lm("llama", hidden_size=32, num_layers=2)
    prompts = ["a much longer prompt than the others", "hi", "medium prompt"]
    batched = generate_texts(model, tokenizer, prompts, max_new_tokens=5, batch_size=3)
    single = [generate_texts(model, tokenizer, [p], max_new_tokens=5)[0] for p in prompts]
    assert [c.text for c in batched] == [c.text for c in single]
    assert all(c.new_tokens == 5 for c in batched)
    assert tokenizer.padding_side == "right"  # restored


def test_context_sees_each_batch_rows_and_passes_dict_as_generate_kwargs():
    model, tokenizer = tiny_causal_lm("llama", hidden_size=32, num_layers=2)
    seen: list[list[int]] = []
    original = model.generate

    @contextlib.contextmanager
    def context(rows):
        seen.append(sorted(rows))
        yield {"num_beams": 1}

    calls = []

    def spy(**kwargs):
        calls.append(kwargs.get("num_beams"))
        return original(**kwargs)

    model.generate = spy
    generate_texts(
        model, tokenizer, ["aaaa", "b", "cc"], max_new_tokens=2, batch_size=2, context=context
    )
    assert sorted(row for rows in seen for row in rows) == [0, 1, 2] and calls == [1, 1]


def test_stop_strings_cut_the_text():
    assert cut_at_stop("answer\n\nnext question", ["\n\n"]) == "answer"
    assert cut_at_stop("a|b#c", ["#", "|"]) == "a"
    assert cut_at_stop("no stop", ["\n\n"]) == "no stop"
