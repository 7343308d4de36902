"""The batching engine: mixed batches equal each adapter alone, per-row settings, streaming."""

from __future__ import annotations

import pytest
import torch

from lingualift.adapters.registry import AdapterRegistry
from lingualift.models import load_causal_lm
from lingualift.serving.decoding import SamplingParams
from lingualift.serving.engine import (
    Engine,
    Finished,
    GenerationRequest,
    QueueFullError,
    TextDelta,
)

from .conftest import Collector, greedy_alone


def make_engine(model_dir, store, **kwargs):
    model, tokenizer = load_causal_lm(str(model_dir))
    registry = AdapterRegistry(model, store)
    return Engine(registry, tokenizer, **{"batch_wait_ms": 0, **kwargs})


def submit(engine, prompt, lang, **sampling):
    sink = Collector()
    params = SamplingParams(**{"max_tokens": 8, "temperature": 0.0, **sampling})
    request = GenerationRequest([engine.encode(prompt)], params, sink, lang=lang)
    engine.submit(request)
    return request, sink


def test_a_mixed_batch_gives_each_row_what_its_adapter_gives_alone(model_dir, store):
    batches = []
    engine = make_engine(model_dir, store, on_batch=batches.append)
    prompts = {"sw": "jambo rafiki", "fr": "salut", None: "hello there my friend", "en": "hi"}
    sinks = {lang: submit(engine, text, lang, max_tokens=12)[1] for lang, text in prompts.items()}
    engine.start()  # all four wait in the queue, so they form one batch
    try:
        for lang, sink in sinks.items():
            done = sink.wait()
            adapter = lang if lang in ("sw", "fr") else None
            expected = greedy_alone(model_dir, store, adapter, engine.encode(prompts[lang]), 12)
            assert done.text == engine.tokenizer.decode(expected, skip_special_tokens=True)
            assert sink.streamed == done.text
            assert sink.started.adapter == (f"{lang}/v1" if adapter else None)
        assert [s.started.fallback for s in sinks.values()] == [
            None,
            None,
            "lang_unsure",
            "no_adapter",
        ]
        assert batches == [4]
        # The adapters really differ, so the comparison above can fail.
        ids = engine.encode(prompts["sw"])
        assert greedy_alone(model_dir, store, "sw", ids, 12) != greedy_alone(
            model_dir, store, "fr", ids, 12
        )
    finally:
        engine.stop()


def test_rows_keep_their_own_sampling_settings_and_leave_the_batch_when_done(model_dir, store):
    probe = make_engine(model_dir, store)
    _, plain = submit(probe, "habari", "sw", max_tokens=30, ignore_eos=True)
    probe.start()
    full = plain.wait().text
    probe.stop()
    stop = next(full[i : i + 2] for i in range(3, len(full)) if "\ufffd" not in full[i : i + 2])
    # One batch: a short greedy row, a seeded sampling row, a row cut by a stop string.
    engine = make_engine(model_dir, store)
    try:
        _, short = submit(engine, "jambo", "sw", max_tokens=2)
        _, sampled = submit(
            engine, "salut", "fr", temperature=0.9, top_p=0.95, seed=7, max_tokens=20
        )
        _, stopped = submit(engine, "habari", "sw", max_tokens=30, ignore_eos=True, stop=(stop,))
        engine.start()
        first = short.wait()
        assert (first.finish_reason, first.completion_tokens) == ("length", 2)
        cut = stopped.wait()
        assert cut.finish_reason == "stop" and cut.text == full[: full.find(stop)]
        assert stopped.streamed == cut.text  # the held-back start of the stop string never leaked
        seeded = sampled.wait().text
        # The same seed alone gives the same text: neighbours in the batch do not matter.
        _, alone = submit(engine, "salut", "fr", temperature=0.9, top_p=0.95, seed=7, max_tokens=20)
        assert alone.wait().text == seeded
        _, other = submit(engine, "salut", "fr", temperature=0.9, top_p=0.95, seed=8, max_tokens=20)
        assert other.wait().text != seeded
    finally:
        engine.stop()


def test_text_streams_before_the_request_ends(model_dir, store):
    engine = make_engine(model_dir, store)
    _, sink = submit(engine, "jambo", "sw", max_tokens=40, ignore_eos=True)
    engine.start()
    try:
        done = sink.wait()
        deltas = [e for e in sink.events if isinstance(e, TextDelta)]
        assert len(deltas) > 5 and isinstance(sink.events[-1], Finished)
        assert "".join(d.text for d in deltas) == done.text and done.completion_tokens == 40
    finally:
        engine.stop()


def test_a_cancelled_row_leaves_while_the_others_finish(model_dir, store):
    engine = make_engine(model_dir, store)
    gone, gone_sink = submit(engine, "jambo", "sw", max_tokens=200, ignore_eos=True)
    _, kept = submit(engine, "salut", "fr", max_tokens=60, ignore_eos=True)

    def cancel_on_third_delta(event):  # runs on the worker, so the row leaves mid-batch
        Collector.__call__(gone_sink, event)
        if sum(isinstance(e, TextDelta) for e in gone_sink.events) == 3:
            gone.cancel()

    gone.sink = cancel_on_third_delta
    engine.start()
    try:
        assert kept.wait().completion_tokens == 60
        assert not gone_sink.done.is_set()
        assert sum(isinstance(e, TextDelta) for e in gone_sink.events) == 3
    finally:
        engine.stop()


def test_a_full_queue_refuses_instead_of_growing(model_dir, store):
    engine = make_engine(model_dir, store, max_queue=2)  # not started: nothing drains the queue
    submit(engine, "a", "sw")
    submit(engine, "b", "fr")
    assert engine.queue_depth == 2
    with pytest.raises(QueueFullError):
        submit(engine, "c", "sw")
    engine.stop()  # what waits is failed, not left hanging


def test_shifcon_shifts_each_row_for_its_language(model_dir, store):
    from lingualift.shifcon import ShifCon

    from ..shifcon.conftest import random_vectors

    model, tokenizer = load_causal_lm(str(model_dir))
    shifcon = ShifCon.from_vectors(random_vectors(model, ("en", "sw", "fr"), scale=2.0), 0, 1)
    engine = Engine(AdapterRegistry(model, store), tokenizer, shifcon=shifcon, batch_wait_ms=0)
    plain = make_engine(model_dir, store)
    rows = [("jambo rafiki", "sw"), ("hello", "en"), ("salut", "fr"), ("ola", "pt")]
    sinks = [submit(engine, text, lang, max_tokens=10)[1] for text, lang in rows]
    plain_sinks = [submit(plain, text, lang, max_tokens=10)[1] for text, lang in rows]
    engine.start()
    plain.start()
    try:
        for (text, lang), sink, plain_sink in zip(rows, sinks, plain_sinks, strict=True):
            alone, tok = load_causal_lm(str(model_dir))
            if lang in ("sw", "fr"):
                from peft import PeftModel

                alone = PeftModel.from_pretrained(alone, str(store.path(lang))).eval()
            ids = torch.tensor([tok(text)["input_ids"]])
            shift_lang = lang if lang in shifcon.languages else "en"
            with torch.inference_mode(), shifcon.apply(alone, shift_lang):
                out = alone.generate(ids, max_new_tokens=10, do_sample=False, pad_token_id=0)
            expected = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
            assert sink.wait().text == expected
            shifted = lang in ("sw", "fr")
            assert (plain_sink.wait().text != expected) == shifted  # the shift really acts
    finally:
        engine.stop()
        plain.stop()


def test_a_short_prompt_beside_a_long_one_still_gets_all_its_tokens(tmp_path, store):
    from lingualift.testing import save_tiny_causal_lm

    from ..adapters.conftest import TINY

    small_context = save_tiny_causal_lm(tmp_path / "ctx32", "llama", **TINY, max_positions=32)
    engine = make_engine(small_context, store)
    _, long_row = submit(engine, "x" * 26, "sw", max_tokens=4, ignore_eos=True)
    _, short_row = submit(engine, "hi", "fr", max_tokens=25, ignore_eos=True)
    engine.start()
    try:
        assert long_row.wait().completion_tokens == 4  # 27 + 4 = 31 positions
        together = short_row.wait()
        assert together.completion_tokens == 25  # its own positions stay within 32
        _, alone = submit(engine, "hi", "fr", max_tokens=25, ignore_eos=True)
        assert alone.wait().text == together.text
    finally:
        engine.stop()


@pytest.mark.parametrize("arch", ["gemma3", "qwen2"])
def test_other_architectures_decode_like_the_plain_loop(arch, tmp_path):
    """Gemma 3 (the embedded model: sliding-window layers, here a window of 8 tokens that the
    rows outgrow) and Qwen2, with rows leaving the batch at different steps."""
    from peft import PeftModel

    from lingualift.adapters import AdapterStore, base_model_signature
    from lingualift.testing import tiny_causal_lm

    from ..adapters.conftest import random_adapter

    shape = dict(hidden_size=32, num_heads=2, num_kv_heads=1, initializer_range=0.2)
    shape.update(dict(num_layers=7, sliding_window=8) if arch == "gemma3" else dict(num_layers=2))
    store = AdapterStore(tmp_path / arch)
    for lang, seed in (("sw", 1), ("fr", 2)):
        peft_model = random_adapter(tiny_causal_lm(arch, **shape)[0], seed)
        store.save(lang, peft_model, card={"base_model": base_model_signature(peft_model)})
    model, tokenizer = tiny_causal_lm(arch, **shape)
    engine = Engine(AdapterRegistry(model, store), tokenizer, batch_wait_ms=0)
    rows = [("jambo rafiki yangu habari", "sw", 20), ("salut", "fr", 6), ("hello there", None, 14)]
    sinks = [submit(engine, text, lang, max_tokens=n, ignore_eos=True)[1] for text, lang, n in rows]
    engine.start()
    try:
        for (text, lang, steps), sink in zip(rows, sinks, strict=True):
            model, tokenizer = tiny_causal_lm(arch, **shape)
            if lang is not None:
                model = PeftModel.from_pretrained(model, str(store.path(lang))).eval()
            ids = tokenizer(text)["input_ids"]
            with torch.inference_mode():
                for _ in range(steps):  # no KV cache, no batch: the obvious loop
                    ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
            expected = tokenizer.decode(ids[-steps:], skip_special_tokens=True)
            assert sink.wait().text == expected
    finally:
        engine.stop()
