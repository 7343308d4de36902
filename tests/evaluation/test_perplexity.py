import math

import pytest
import torch

from lingualift.data import Record
from lingualift.errors import LingualiftError
from lingualift.evaluation import perplexity, perplexity_by_language
from lingualift.evaluation.perplexity import _windows
from lingualift.testing import tiny_causal_lm


@pytest.fixture(scope="module")
def lm():
    return tiny_causal_lm("llama", hidden_size=32, num_layers=2, max_positions=256)


def _reference_nll(model, tokenizer, text):
    ids = torch.tensor(
        [[tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]]
    )
    with torch.no_grad():
        logits = model(ids).logits[0, :-1]
    return torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item(), ids.shape[
        1
    ] - 1


def test_windows_score_every_token_once():
    ids = list(range(100))
    scored = []
    for window, skip in _windows(ids, max_length=32, stride=10):
        start = ids.index(window[0])
        scored.extend(range(start + skip, start + len(window)))
    assert scored == list(range(1, 100))


def test_matches_single_forward_when_text_fits(lm):
    model, tokenizer = lm
    texts = [
        "Habari ya asubuhi, rafiki yangu.",
        "Hello world, a slightly longer line of text here.",
    ]
    result = perplexity(model, tokenizer, texts, max_length=128, batch_size=2)
    ref = [_reference_nll(model, tokenizer, t) for t in texts]
    assert result.n_tokens == sum(n for _, n in ref)
    assert result.nll_sum == pytest.approx(sum(s for s, _ in ref), rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(result.nll))


def test_striding_long_text_counts_all_tokens(lm):
    model, tokenizer = lm
    text = "maneno mengi " * 40  # 480 bytes: longer than the window
    result = perplexity(model, tokenizer, [text], max_length=64, stride=32, batch_size=8)
    assert result.n_tokens == len(text.encode())
    assert math.isfinite(result.perplexity)


def test_context_above_model_limit_is_one_sentence(lm):
    model, tokenizer = lm
    with pytest.raises(LingualiftError, match="above the model's limit of 256"):
        perplexity(model, tokenizer, ["abc"], max_length=1024)


def test_by_language_and_errors(lm):
    model, tokenizer = lm
    records = [Record("1", "jambo", "sw"), Record("2", "hello", "en"), Record("3", "habari", "sw")]
    entered = []

    class Ctx:
        def __init__(self, lang):
            self.lang = lang

        def __enter__(self):
            entered.append(self.lang)

        def __exit__(self, *exc):
            return False

    out = perplexity_by_language(model, tokenizer, records, context=Ctx, max_length=64)
    assert list(out) == ["en", "sw"] and entered == ["en", "sw"]
    assert out["sw"].n_texts == 2
    with pytest.raises(LingualiftError, match="No records"):
        perplexity_by_language(model, tokenizer, [])
    with pytest.raises(LingualiftError, match="No non-empty texts"):
        perplexity(model, tokenizer, ["  "])


def test_per_text_sums_add_up_and_match_each_text_alone():
    model, tokenizer = tiny_causal_lm("llama", hidden_size=32, num_layers=2)
    texts = ["habari ya asubuhi rafiki", "jambo", "a much longer text about the market " * 3]
    together = perplexity(model, tokenizer, texts, max_length=16, stride=8, batch_size=2)
    assert len(together.per_text) == 3
    assert sum(t for t, _ in together.per_text) == pytest.approx(together.nll_sum, rel=1e-9)
    assert sum(c for _, c in together.per_text) == together.n_tokens
    for text, (total, count) in zip(texts, together.per_text, strict=True):
        alone = perplexity(model, tokenizer, [text], max_length=16, stride=8)
        assert (total, count) == (pytest.approx(alone.nll_sum, rel=1e-5), alone.n_tokens)


def test_scores_without_dropout_and_restores_train_mode():
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny_causal_lm("llama", hidden_size=32, num_layers=2)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.5, target_modules=["q_proj", "v_proj"])
    model = get_peft_model(model, config)
    torch.nn.init.normal_(
        model.base_model.model.model.layers[0].self_attn.q_proj.lora_B.default.weight
    )
    texts = ["Habari ya asubuhi, rafiki yangu.", "Hello world, a line of text."]
    model.eval()
    expected = perplexity(model, tokenizer, texts, max_length=64).nll_sum
    model.train()  # as a model comes out of training
    scores = [perplexity(model, tokenizer, texts, max_length=64).nll_sum for _ in range(2)]
    assert scores == pytest.approx([expected, expected], rel=1e-6)
    assert model.training
