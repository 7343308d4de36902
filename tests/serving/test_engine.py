"""The batching engine: mixed batches equal each adapter alone, per-row settings, streaming."""

from __future__ import annotations

import pytest
import torch

from lingualift.adapters.registry import AdapterRegistry
from lingualift.models import decoder_layers, load_causal_lm
from lingualift.serving.decoding import SamplingParams
from lingualift.serving.engine import (
    Engine,
    Finished,
    GenerationRequest,
    QueueFullError,
    TextDelta,
)

from .conftest import Collector, greedy_alone, wait_for


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


def arch_store(arch, tmp_path, shape):
    from lingualift.adapters import AdapterStore, base_model_signature
    from lingualift.testing import tiny_causal_lm

    from ..adapters.conftest import random_adapter

    store = AdapterStore(tmp_path / arch)
    for lang, seed in (("sw", 1), ("fr", 2)):
        peft_model = random_adapter(tiny_causal_lm(arch, **shape)[0], seed)
        store.save(lang, peft_model, card={"base_model": base_model_signature(peft_model)})
    return store


def plain_loop(arch, shape, store, lang, text, steps):
    """Greedy text of one prompt without a KV cache or a batch: the obvious loop."""
    from peft import PeftModel

    from lingualift.testing import tiny_causal_lm

    model, tokenizer = tiny_causal_lm(arch, **shape)
    if lang is not None:
        model = PeftModel.from_pretrained(model, str(store.path(lang))).eval()
    ids = tokenizer(text)["input_ids"]
    with torch.inference_mode():
        for _ in range(steps):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return tokenizer.decode(ids[-steps:], skip_special_tokens=True)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_requests_joining_a_running_batch_decode_as_if_alone(arch, tmp_path):
    """Continuous batching: prompts of different lengths and adapters join the batch at
    different steps (and leave at others) and still decode exactly what each decodes alone.
    Gemma 3 (the embedded model's shape) has sliding-window layers, here of 8 tokens, which
    the rows outgrow."""
    from lingualift.testing import tiny_causal_lm

    shape = dict(hidden_size=32, num_heads=2, num_kv_heads=1, initializer_range=0.2)
    shape.update(dict(num_layers=7, sliding_window=8) if arch == "gemma3" else dict(num_layers=2))
    store = arch_store(arch, tmp_path, shape)
    model, tokenizer = tiny_causal_lm(arch, **shape)
    batches: list[int] = []
    engine = Engine(
        AdapterRegistry(model, store), tokenizer, batch_wait_ms=0, on_batch=batches.append
    )
    rows = {  # name: (prompt, language, tokens)
        "a": ("jambo rafiki yangu habari ya asubuhi", "sw", 24),
        "b": ("salut", "fr", 6),
        "c": ("hello there, my good friend of many years", None, 12),
        "d": ("x", "sw", 9),
    }
    sinks = {name: Collector() for name in rows}
    order: list[str] = []
    encoded = {name: engine.encode(text) for name, (text, _, _) in rows.items()}

    def send(name):
        _, lang, steps = rows[name]

        def on_event(event):
            sinks[name](event)
            if isinstance(event, Finished):
                order.append(name)

        params = SamplingParams(max_tokens=steps, temperature=0.0, ignore_eos=True)
        engine.submit(GenerationRequest([encoded[name]], params, on_event, lang=lang))

    # Submitted from inside the n-th forward pass, each joins at the step after it.
    schedule = {3: "b", 7: "c", 12: "d"}
    forwards = 0

    def count_forwards(module, args):
        nonlocal forwards
        forwards += 1
        if forwards in schedule:
            send(schedule[forwards])

    hook = decoder_layers(engine.model)[0].register_forward_pre_hook(count_forwards)
    send("a")
    engine.start()
    try:
        for name, (text, lang, steps) in rows.items():
            assert sinks[name].wait().text == plain_loop(arch, shape, store, lang, text, steps)
    finally:
        engine.stop()
        hook.remove()
    assert order.index("b") < order.index("a")  # b joined after a and left before it
    assert batches[0] == 1 and max(batches) >= 3  # rows joined a batch that was running


def tracked(name, collector, ended):
    """A sink that also notes, in ``ended``, when the request finished."""

    def on_event(event):
        collector(event)
        if isinstance(event, Finished):
            ended.append(name)

    return on_event


@pytest.mark.parametrize("batching", ["static", "continuous"])
def test_a_late_request_waits_for_a_static_batch_but_joins_a_continuous_one(
    model_dir, store, batching
):
    engine = make_engine(model_dir, store, batching=batching)
    ended: list[str] = []
    long, late = Collector(), Collector()
    late_ids = engine.encode("b")
    forwards = 0

    def send_late_during_the_third_forward(module, args):
        nonlocal forwards
        forwards += 1
        if forwards == 3:
            params = SamplingParams(max_tokens=3, temperature=0.0, ignore_eos=True)
            engine.submit(GenerationRequest([late_ids], params, tracked("late", late, ended), "fr"))

    hook = decoder_layers(engine.model)[0].register_forward_pre_hook(
        send_late_during_the_third_forward
    )
    params = SamplingParams(max_tokens=40, temperature=0.0, ignore_eos=True)
    engine.submit(
        GenerationRequest([engine.encode("a")], params, tracked("long", long, ended), "sw")
    )
    engine.start()
    try:
        late.wait()
        long.wait()
    finally:
        engine.stop()
        hook.remove()
    if batching == "static":
        assert ended == ["long", "late"]  # it waited for the whole batch to end
    else:
        assert ended == ["late", "long"]  # it joined, decoded its 3 tokens and left


def test_the_choices_of_a_prompt_share_one_prefill(model_dir, store):
    engine = make_engine(model_dir, store)
    shapes: list[tuple[int, int]] = []
    hook = decoder_layers(engine.model)[0].register_forward_pre_hook(
        lambda module, args: shapes.append(tuple(args[0].shape[:2]))
    )
    prompts = [engine.encode("jambo rafiki"), engine.encode("habari")]
    greedy = Collector(choices=6)
    params = SamplingParams(max_tokens=5, temperature=0.0, ignore_eos=True)
    engine.submit(GenerationRequest(prompts, params, greedy, lang="sw", n=3))
    engine.start()
    try:
        done = greedy.wait_all()
        assert [f.index for f in done] == list(range(6))
        assert shapes[0] == (2, len(prompts[0]))  # one prefill row per prompt, not per choice
        assert all(rows == 6 and width == 1 for rows, width in shapes[1:])
        for f in done:  # choice p * n + j continues prompt p
            expected = greedy_alone(model_dir, store, "sw", prompts[f.index // 3], 5)
            assert f.token_ids == expected
        # Seeded choices differ from one another, and each repeats its own seed alone.
        sampled = Collector(choices=3)
        seeded = SamplingParams(max_tokens=12, temperature=1.0, seed=11, ignore_eos=True)
        engine.submit(GenerationRequest(prompts[:1], seeded, sampled, lang="sw", n=3))
        texts = [f.text for f in sampled.wait_all()]
        assert len(set(texts)) == 3
        alone = Collector()
        engine.submit(GenerationRequest(prompts[:1], seeded.for_choice(2), alone, lang="sw"))
        assert alone.wait().text == texts[2]
    finally:
        engine.stop()
        hook.remove()


def test_prompt_logprobs_in_column_chunks_equal_one_forward(model_dir, store):
    """echo + logprobs (lm-eval's loglikelihood): every prompt token scored from the prefill,
    however few columns of logits fit the budget; max_tokens 0 generates nothing."""
    from peft import PeftModel

    engine = make_engine(model_dir, store, prefill_logits_budget=262 * 3)  # 3 columns a chunk
    prompts = [engine.encode("jambo rafiki yangu"), engine.encode("ni")]
    scored = Collector(choices=2)
    only_prompt = SamplingParams(max_tokens=0, prompt_logprobs=2)
    engine.submit(GenerationRequest(prompts, only_prompt, scored, lang="sw"))
    lmeval = Collector()  # what lm-eval's local-completions sends: one token, logprobs 1
    one_more = SamplingParams(max_tokens=1, temperature=0.0, logprobs=1, prompt_logprobs=1)
    engine.submit(GenerationRequest(prompts[:1], one_more, lmeval, lang="sw"))
    engine.start()
    try:
        finished = scored.wait_all()
        scores = scored.started.prompt_logprobs
        generated = lmeval.wait()
    finally:
        engine.stop()
    assert [(f.completion_tokens, f.finish_reason, f.text) for f in finished] == [
        (0, "length", "")
    ] * 2
    model, _ = load_causal_lm(str(model_dir))
    model = PeftModel.from_pretrained(model, str(store.path("sw"))).eval()
    for p, ids in enumerate(prompts):
        with torch.inference_mode():
            direct = torch.log_softmax(model(torch.tensor([ids])).logits[0], dim=-1)
        assert scores[p][0] is None and len(scores[p]) == len(ids)
        for position in range(1, len(ids)):
            entry = scores[p][position]
            assert entry.token == ids[position]
            assert abs(entry.logprob - float(direct[position - 1, ids[position]])) < 1e-5
            assert [t for t, _ in entry.top] == direct[position - 1].topk(2).indices.tolist()
        if p == 0:
            assert [e.logprob for e in lmeval.started.prompt_logprobs[0][1:]] == pytest.approx(
                [e.logprob for e in scores[0][1:]], abs=1e-6
            )
            (entry,) = generated.logprobs
            assert entry.token == generated.token_ids[0] == int(direct[-1].argmax())
            assert abs(entry.logprob - float(direct[-1].max())) < 1e-5


def test_a_request_larger_than_the_batch_runs_once_the_batch_is_empty(model_dir, store):
    engine = make_engine(model_dir, store, max_batch_size=2)
    running, big = Collector(), Collector(choices=3)
    ended: list[str] = []
    params = SamplingParams(max_tokens=20, temperature=0.0, ignore_eos=True)
    sink = tracked("running", running, ended)
    engine.submit(GenerationRequest([engine.encode("a")], params, sink, "sw"))
    short = SamplingParams(max_tokens=2, temperature=0.0, ignore_eos=True)
    sink = tracked("big", big, ended)
    engine.submit(GenerationRequest([engine.encode("b")], short, sink, "fr", n=3))
    engine.start()
    try:
        assert len(big.wait_all()) == 3
        running.wait()
    finally:
        engine.stop()
    assert ended[0] == "running"  # three rows do not fit beside it: they waited
    assert len(ended) == 4


def test_a_promotion_between_steps_keeps_running_rows_on_their_version(model_dir, store, tmp_path):
    """A row that started on sw/v1 keeps it while a row admitted after the promotion decodes
    on sw/v2, the two in one batch (each adapter stacked per row)."""
    from ..adapters.conftest import add_version

    add_version(store, "sw", 3, promote=False)  # sw/v2, not current yet
    engine = make_engine(model_dir, store, reload_interval_s=0)  # poll between every step
    batches: list[int] = []
    engine.on_batch = batches.append
    ids = engine.encode("jambo rafiki")
    first, second = Collector(), Collector()
    params = SamplingParams(max_tokens=16, temperature=0.0, ignore_eos=True)
    forwards = 0

    def promote_then_send(module, args):
        nonlocal forwards
        forwards += 1
        if forwards == 3:
            store.promote("sw", 2)
            engine.submit(GenerationRequest([ids], params, second, lang="sw"))

    hook = decoder_layers(engine.model)[0].register_forward_pre_hook(promote_then_send)
    engine.submit(GenerationRequest([ids], params, first, lang="sw"))
    engine.start()
    try:
        old, new = first.wait(), second.wait()
    finally:
        engine.stop()
        hook.remove()
    assert (first.started.adapter, second.started.adapter) == ("sw/v1", "sw/v2")
    assert batches == [1, 2]  # the second joined the first's batch
    assert old.token_ids == greedy_alone(model_dir, store, "sw", ids, 16, version=1)
    assert new.token_ids == greedy_alone(model_dir, store, "sw", ids, 16, version=2)
    assert old.token_ids != new.token_ids


def test_a_cache_that_cannot_be_joined_falls_back_to_static_batching(
    model_dir, store, monkeypatch, caplog
):
    import lingualift.serving.engine as engine_module

    monkeypatch.setattr(engine_module, "unsupported", lambda cache: "the cache is exotic")
    engine = make_engine(model_dir, store)
    _, sink = submit(engine, "jambo", "sw", max_tokens=6)
    engine.start()
    try:
        assert sink.wait().completion_tokens == 6
    finally:
        engine.stop()
    assert engine.batching == "static"
    assert "continuous batching is off for this model (the cache is exotic)" in caplog.text


def test_a_mixed_batch_takes_joining_and_leaving_rows_without_switching_peft(model_dir, store):
    """PEFT's switch between its own adapters and the stacked path walks every layer; once a
    batch is stacked, newcomers' prefills and rows leaving only regather the rows."""
    engine = make_engine(model_dir, store)
    tuner = engine.model.base_model
    switches = []
    original = tuner.disable_adapter_layers
    tuner.disable_adapter_layers = lambda: (switches.append(1), original())[1]
    ids = engine.encode("jambo rafiki")
    sinks, forwards = [], 0
    langs = ["fr", None, "sw", "fr", "sw"]

    def send_one_per_forward(module, args):
        nonlocal forwards
        forwards += 1
        if 3 <= forwards < 3 + len(langs):  # one newcomer after each forward, then rows leave
            sink = Collector()
            sinks.append((langs[forwards - 3], forwards, sink))
            params = SamplingParams(max_tokens=4 + forwards, temperature=0.0, ignore_eos=True)
            engine.submit(GenerationRequest([ids], params, sink, lang=langs[forwards - 3]))

    hook = decoder_layers(engine.model)[0].register_forward_pre_hook(send_one_per_forward)
    first = Collector()
    params = SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True)
    engine.submit(GenerationRequest([ids], params, first, lang="sw"))
    engine.start()
    try:
        assert first.wait().token_ids == greedy_alone(model_dir, store, "sw", ids, 12)
        wait_for(lambda: len(sinks) == len(langs), what="every newcomer")
        for lang, sent_at, sink in sinks:
            expected = greedy_alone(model_dir, store, lang, ids, 4 + sent_at)
            assert sink.wait().token_ids == expected
    finally:
        engine.stop()
        hook.remove()
    assert 1 <= len(switches) <= 2  # entering the stacked path, not once per change of rows
