"""Per-row token choice (every sampling parameter on hand-made logits), logprobs, defaults, and
incremental text: characters whole, stop strings held back."""

from __future__ import annotations

import pytest
import torch

from lingualift.serving.decoding import (
    RowState,
    SamplingDefaults,
    SamplingParams,
    TextStream,
    choose_next,
    prompt_logprobs,
    row_generator,
    sampling_defaults,
    score_tokens,
)
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
    draws = [choose_next(logits, [RowState(p) for p in params]).ids for _ in range(3)]
    for drawn in draws:
        assert drawn[0] == logits[0].argmax() and drawn[2] == logits[2].argmax()
    assert len({d[1] for d in draws}) == 1  # same seed, same draw
    # Unseeded sampling rows use the global generator and do vary.
    free = SamplingParams(4, temperature=2.0)
    seen = {choose_next(logits[1:2], [RowState(free)]).ids[0] for _ in range(30)}
    assert len(seen) > 1


# -- per-row processing on hand-made logits ----------------------------------------------------


def one_step(logits, params, prompt=(), eos=(2,), history=()):
    """The token a single row with ``params`` picks after having generated ``history``."""
    row = RowState(params, prompt, eos_ids=eos)
    for token in history:
        row.record(token)
    return choose_next(logits[None, :], [row]).ids[0]


def flat(vocab=8, **scores):
    """Logits of zeros with some tokens set: flat(t3=2.0)."""
    logits = torch.zeros(vocab)
    for name, value in scores.items():
        logits[int(name[1:])] = value
    return logits


GREEDY = dict(max_tokens=8, temperature=0.0)


def test_greedy_equals_the_argmax_of_every_row_in_one_batch():
    logits = torch.randn(5, 40, generator=torch.Generator().manual_seed(1))
    rows = [RowState(SamplingParams(**GREEDY)) for _ in range(5)]
    step = choose_next(logits, rows)
    assert step.ids == logits.argmax(-1).tolist() and step.logprobs == [None] * 5
    assert [row.output_ids for row in rows] == [[t] for t in step.ids]


def test_logit_bias_is_added_before_the_choice():
    logits = flat(t1=1.0, t4=0.5)
    assert one_step(logits, SamplingParams(**GREEDY)) == 1
    assert one_step(logits, SamplingParams(**GREEDY, logit_bias=((4, 1.0),))) == 4
    assert one_step(logits, SamplingParams(**GREEDY, logit_bias=((1, -100.0),))) == 4


def test_presence_penalty_counts_generated_tokens_once():
    logits = flat(t1=1.0, t4=0.5)
    params = SamplingParams(**GREEDY, presence_penalty=0.6)
    assert one_step(logits, params, prompt=[1, 1, 1]) == 1  # the prompt does not count
    assert one_step(logits, params, history=[1]) == 4  # 1.0 - 0.6 < 0.5
    assert one_step(logits, SamplingParams(**GREEDY, presence_penalty=0.4), history=[1, 1, 1]) == 1


def test_frequency_penalty_grows_with_each_repeat():
    logits = flat(t1=1.0, t4=0.5)
    params = SamplingParams(**GREEDY, frequency_penalty=0.2)
    assert one_step(logits, params, history=[1, 1]) == 1  # 1.0 - 0.4 > 0.5
    assert one_step(logits, params, history=[1, 1, 1]) == 4  # 1.0 - 0.6 < 0.5
    assert one_step(logits, SamplingParams(**GREEDY, frequency_penalty=-0.6), history=[4]) == 4


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    params = SamplingParams(**GREEDY, repetition_penalty=2.0)
    logits = flat(t1=1.0, t4=0.6)
    assert one_step(logits, params, prompt=[1]) == 4  # 1.0 / 2 < 0.6: the prompt counts
    assert one_step(logits, params, history=[1]) == 4
    negative = torch.full((8,), -5.0)
    negative[3], negative[5] = -1.0, -1.5
    assert one_step(negative, params, prompt=[3]) == 5  # -1.0 * 2 < -1.5


def test_penalties_follow_their_definition_exactly():
    logits = torch.randn(12, generator=torch.Generator().manual_seed(3))
    params = SamplingParams(
        max_tokens=8,
        frequency_penalty=0.3,
        presence_penalty=0.2,
        repetition_penalty=1.5,
        logit_bias=((0, 2.0),),
    )
    row = RowState(params, [5, 6])
    for token in (6, 7, 7):
        row.record(token)
    expected = logits.clone()
    expected[0] += 2.0
    for token in (5, 6, 7):
        value = expected[token]
        expected[token] = value / 1.5 if value > 0 else value * 1.5
    counts = {6: 1, 7: 2}
    for token, count in counts.items():
        expected[token] -= 0.3 * count + 0.2
    assert torch.allclose(row.process(logits), expected, atol=1e-6)


def test_min_tokens_holds_back_eos_and_stop_tokens_until_reached():
    logits = flat(t2=5.0, t6=4.0, t3=1.0)
    params = SamplingParams(**GREEDY, min_tokens=2, stop_token_ids=(6,))
    assert one_step(logits, params) == 3
    assert one_step(logits, params, history=[3]) == 3
    assert one_step(logits, params, history=[3, 3]) == 2
    ignoring = SamplingParams(**GREEDY, min_tokens=2, ignore_eos=True)
    assert one_step(logits, ignoring) == 2  # eos is an ordinary token then


def test_top_k_keeps_only_the_k_most_likely_tokens():
    logits = torch.tensor([3.0, 2.9, 2.8, -1.0, -1.0, -1.0])
    params = SamplingParams(max_tokens=4, temperature=5.0, top_k=2, seed=0)
    row = RowState(params)
    seen = {choose_next(logits[None], [row]).ids[0] for _ in range(200)}
    assert seen == {0, 1}


def test_min_p_drops_tokens_far_below_the_most_likely():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    row = RowState(SamplingParams(max_tokens=4, min_p=0.2, seed=1))
    seen = {choose_next(logits[None], [row]).ids[0] for _ in range(300)}
    assert seen == {0, 1, 2}  # 0.05 < 0.2 * 0.5


def test_top_p_and_min_p_and_top_k_combine():
    logits = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1]))
    row = RowState(SamplingParams(max_tokens=4, top_k=3, top_p=0.6, seed=2))
    seen = {choose_next(logits[None], [row]).ids[0] for _ in range(300)}
    # top_k leaves 0.4/0.9, 0.3/0.9, 0.2/0.9; the nucleus of 0.6 needs the first two.
    assert seen == {0, 1}


def test_temperature_sharpens_and_flattens_the_distribution():
    logits = torch.tensor([1.0, 0.0])
    cold = RowState(SamplingParams(max_tokens=4, temperature=0.05, seed=4))
    hot = RowState(SamplingParams(max_tokens=4, temperature=2.0, seed=4))
    assert sum(choose_next(logits[None], [cold]).ids[0] for _ in range(200)) == 0
    assert 40 < sum(choose_next(logits[None], [hot]).ids[0] for _ in range(200)) < 100


def test_a_seed_repeats_its_draws_and_choices_of_one_request_differ():
    logits = torch.randn(64, generator=torch.Generator().manual_seed(5))
    params = SamplingParams(max_tokens=8, temperature=1.5, seed=42)

    def draws(p):
        row = RowState(p)
        return [choose_next(logits[None], [row]).ids[0] for _ in range(12)]

    assert draws(params) == draws(params)
    assert draws(params.for_choice(1)) == draws(params.for_choice(1))
    assert draws(params.for_choice(1)) != draws(params)
    assert params.for_choice(0) is params
    assert SamplingParams(max_tokens=1, seed=-3).for_choice(0).seed == -3
    assert row_generator(SamplingParams(max_tokens=1, seed=-1), "cpu") is not None


def test_logprobs_are_the_raw_distributions_with_the_top_alternatives():
    logits = torch.randn(2, 30, generator=torch.Generator().manual_seed(6))
    rows = [
        RowState(SamplingParams(**GREEDY, logprobs=3, logit_bias=((7, 50.0),))),
        RowState(SamplingParams(max_tokens=4, logprobs=0, seed=1)),
    ]
    step = choose_next(logits, rows)
    raw = torch.log_softmax(logits, dim=-1)
    first, second = step.logprobs
    assert step.ids[0] == 7  # the bias decided, the logprob is still the model's
    assert first.token == 7 and abs(first.logprob - float(raw[0, 7])) < 1e-6
    top_ids = raw[0].topk(3).indices.tolist()
    assert [t for t, _ in first.top] == top_ids
    assert all(abs(v - float(raw[0, t])) < 1e-6 for t, v in first.top)
    assert second.top == () and abs(second.logprob - float(raw[1, step.ids[1]])) < 1e-6


def test_prompt_logprobs_equal_a_direct_log_softmax():
    generator = torch.Generator().manual_seed(7)
    prompt = torch.randint(0, 50, (300,), generator=generator).tolist()
    logits = torch.randn(300, 50, generator=generator) * 4
    scored = prompt_logprobs(logits, prompt, top=2, chunk=64)  # several chunks
    direct = torch.log_softmax(logits, dim=-1)
    exact = torch.log_softmax(logits.double(), dim=-1)
    assert scored[0] is None and len(scored) == len(prompt)
    for position in range(1, len(prompt)):
        entry = scored[position]
        expected = float(direct[position - 1, prompt[position]])
        assert entry.token == prompt[position]
        assert abs(entry.logprob - expected) < 1e-6
        assert abs(entry.logprob - float(exact[position - 1, prompt[position]])) < 1e-5
        best = direct[position - 1].topk(2)
        assert [t for t, _ in entry.top] == best.indices.tolist()
    assert prompt_logprobs(logits[:1], prompt[:1]) == [None]


def test_score_tokens_gives_each_targets_logprob_and_the_top_alternatives():
    logits = torch.randn(4, 20, generator=torch.Generator().manual_seed(8))
    targets = [3, 0, 19, 3]
    scored = score_tokens(logits, targets, top=2)
    direct = torch.log_softmax(logits, dim=-1)
    for row, (entry, target) in enumerate(zip(scored, targets, strict=True)):
        assert entry.token == target
        assert abs(entry.logprob - float(direct[row, target])) < 1e-6
        assert [t for t, _ in entry.top] == direct[row].topk(2).indices.tolist()
    assert score_tokens(logits[:0], []) == []
    assert all(entry.top == () for entry in score_tokens(logits, targets))


def test_a_row_with_nothing_allowed_ends_instead_of_drawing_from_nothing():
    class Nothing:
        def start(self):
            return self

        def allowed(self, vocab_size, device):
            return torch.zeros(vocab_size, dtype=torch.bool)

        def accept(self, token):
            pass

    row = RowState(SamplingParams(max_tokens=4, constraint=Nothing()), eos_ids=(2,))
    assert choose_next(torch.randn(1, 8), [row]).ids == [2]


def test_rows_stop_on_eos_unless_ignored_and_on_stop_tokens():
    row = RowState(SamplingParams(4, stop_token_ids=(9,)), eos_ids=(2,))
    assert row.stops_on(2) and row.stops_on(9) and not row.stops_on(3)
    assert not RowState(SamplingParams(4, ignore_eos=True), eos_ids=(2,)).stops_on(2)


@pytest.mark.parametrize(
    "bad",
    [
        dict(max_tokens=-1),
        dict(max_tokens=1, top_p=0.0),
        dict(max_tokens=1, top_k=-1),
        dict(max_tokens=1, repetition_penalty=0.0),
        dict(max_tokens=1, logprobs=-1),
    ],
)
def test_impossible_settings_fail_when_made(bad):
    with pytest.raises(ValueError, match="SamplingParams needs"):
        SamplingParams(**bad)


# -- defaults from generation_config -----------------------------------------------------------


def test_generation_config_values_become_the_defaults():
    from transformers import GenerationConfig

    config = GenerationConfig(
        temperature=0.6, top_p=0.9, top_k=40, repetition_penalty=1.2, max_new_tokens=99
    )
    defaults = sampling_defaults(config)
    assert defaults == SamplingDefaults(
        temperature=0.6, top_p=0.9, top_k=40, min_p=0.0, repetition_penalty=1.2, max_tokens=99
    )
    assert sampling_defaults(None) == SamplingDefaults()
    assert sampling_defaults(GenerationConfig()) == SamplingDefaults()  # nothing set, nothing taken
    assert sampling_defaults({"min_p": 0.1, "do_sample": True}).min_p == 0.1


def test_a_models_generation_config_is_read(tmp_path):
    from transformers import GenerationConfig

    from lingualift.testing import save_tiny_causal_lm

    folder = save_tiny_causal_lm(tmp_path / "m", "llama", hidden_size=16, num_layers=1)
    GenerationConfig(do_sample=True, temperature=0.3, top_k=20).save_pretrained(folder)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    defaults = sampling_defaults(model)
    assert (defaults.temperature, defaults.top_k) == (0.3, 20)


# -- text settings -----------------------------------------------------------------------------


def test_any_number_of_stop_strings_work():
    stops = [f"<{i}>" for i in range(40)]
    stream = TextStream(byte_tokenizer(), stop=stops)
    feed(stream, "abc<3")
    assert not stream.stopped
    feed(stream, "9>tail")
    assert stream.stopped and stream.text == "abc"


def test_the_stop_string_can_be_kept():
    stream = TextStream(byte_tokenizer(), stop=("END",), include_stop=True)
    feed(stream, "okEND more")
    assert stream.stopped and stream.text == "okEND"


def test_stop_strings_count_only_from_min_tokens_on():
    stream = TextStream(byte_tokenizer(), stop=("x",), min_tokens=3)
    feed(stream, "x")  # token 1: too early
    assert not stream.stopped
    feed(stream, "ax")
    assert stream.stopped and stream.text == "xa"


def test_special_tokens_can_be_kept_in_the_text():
    tokenizer = byte_tokenizer()
    eos = tokenizer.eos_token_id
    kept = TextStream(tokenizer, skip_special_tokens=False)
    skipped = TextStream(tokenizer)
    for stream in (kept, skipped):
        stream.add(tokenizer("a", add_special_tokens=False)["input_ids"][0])
        stream.add(eos)
    assert kept.text == "a<eos>" and skipped.text == "a"


def test_a_stream_takes_its_settings_from_the_params():
    params = SamplingParams(4, stop=("a",), include_stop_str_in_output=True, min_tokens=2)
    stream = TextStream.for_params(byte_tokenizer(), params)
    assert (stream.stop, stream.include_stop, stream.min_tokens) == (("a",), True, 2)
