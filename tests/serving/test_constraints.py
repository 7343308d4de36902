"""JSON mode: llguidance masks keep every row's output valid JSON (following its schema)."""

from __future__ import annotations

import json

import pytest
import torch

from lingualift.serving.constraints import (
    ConstraintError,
    JsonConstraints,
    NoJsonConstraints,
    load_json_constraints,
)
from lingualift.serving.decoding import RowState, SamplingParams, choose_next
from lingualift.testing import byte_tokenizer, tiny_causal_lm

pytest.importorskip("llguidance")

SCHEMA = {
    "type": "object",
    "properties": {
        "n": {"type": "integer", "minimum": 0, "maximum": 999},
        "ok": {"type": "boolean"},
        "lang": {"enum": ["sw", "fr"]},
    },
    "required": ["n", "ok", "lang"],
    "additionalProperties": False,
}
MODEL_VOCAB = 262  # the tiny models' logits have two more rows than the byte tokenizer's 260


def sentencepiece_tokenizer():
    """A Llama/Gemma-style tokenizer: BPE over '▁'-joined pieces with byte fallback."""
    from tokenizers import Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    vocab.update({f"<0x{b:02X}>": 4 + b for b in range(256)})
    for piece in ["▁", "h", "a", "b", "r", "i", "▁h", "ha", "ri", "▁ha", '{"', '":', "true"]:
        vocab.setdefault(piece, len(vocab))
    merges = [("▁", "h"), ("h", "a"), ("r", "i"), ("▁h", "a")]
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True, fuse_unk=True))
    backend.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    )
    backend.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )


def generate(constraints, tokenizer, schema, next_logits, vocab, seed=0, **settings):
    """Decode one constrained row from ``next_logits(ids)`` until end-of-sequence; its text."""
    eos = tokenizer.eos_token_id
    params = SamplingParams(
        max_tokens=120, seed=seed, constraint=constraints.compile(schema), **settings
    )
    row = RowState(params, eos_ids=[eos])
    out: list[int] = []
    for _ in range(params.max_tokens):
        token = choose_next(next_logits(out)[None, :vocab], [row]).ids[0]
        if token == eos:
            assert row.constraint.finished
            return tokenizer.decode(out)
        out.append(token)
    raise AssertionError(
        f"no end-of-sequence after {params.max_tokens} tokens: {tokenizer.decode(out)!r}"
    )


@pytest.mark.parametrize("make_tokenizer", [byte_tokenizer, sentencepiece_tokenizer])
def test_sampled_rows_follow_the_schema_on_byte_level_and_sentencepiece_tokenizers(make_tokenizer):
    tokenizer = make_tokenizer()
    vocab = max(len(tokenizer), MODEL_VOCAB)
    constraints = JsonConstraints(tokenizer, vocab, [tokenizer.eos_token_id])
    generator = torch.Generator().manual_seed(0)
    for seed in range(4):
        text = generate(
            constraints,
            tokenizer,
            SCHEMA,
            lambda ids: torch.randn(vocab, generator=generator) * 3,
            vocab,
            seed=seed,
        )
        value = json.loads(text)
        assert set(value) == {"n", "ok", "lang"} and value["lang"] in ("sw", "fr")
        assert 0 <= value["n"] <= 999 and isinstance(value["ok"], bool)


def test_json_object_mode_gives_an_object_from_a_real_model():
    tokenizer = byte_tokenizer()
    model, _ = tiny_causal_lm("llama", hidden_size=32, num_layers=2)
    constraints = JsonConstraints(tokenizer, MODEL_VOCAB, [tokenizer.eos_token_id])
    prompt = tokenizer("Answer in JSON:", add_special_tokens=False)["input_ids"]

    def next_logits(ids):
        with torch.inference_mode():
            return model(torch.tensor([prompt + ids])).logits[0, -1]

    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,  # a random model would otherwise add keys forever
    }
    text = generate(constraints, tokenizer, schema, next_logits, MODEL_VOCAB, temperature=0.0)
    assert isinstance(json.loads(text)["ok"], bool)


def test_tokens_beyond_the_tokenizer_are_never_allowed():
    tokenizer = byte_tokenizer()
    constraints = JsonConstraints(tokenizer, MODEL_VOCAB, [tokenizer.eos_token_id])
    state = constraints.compile({"type": "object"}).start()
    allowed = state.allowed(MODEL_VOCAB, "cpu")
    assert allowed.shape == (MODEL_VOCAB,) and not allowed[len(tokenizer) :].any()
    assert allowed[tokenizer.convert_tokens_to_ids("{")] and allowed.sum() < 10


def test_min_tokens_cannot_keep_a_finished_answer_going():
    tokenizer = byte_tokenizer()
    constraints = JsonConstraints(tokenizer, MODEL_VOCAB, [tokenizer.eos_token_id])
    text = generate(
        constraints,
        tokenizer,
        {"enum": ["a"]},
        lambda ids: torch.zeros(MODEL_VOCAB),
        MODEL_VOCAB,
        temperature=0.0,
        min_tokens=50,
    )
    assert text == '"a"'


@pytest.mark.parametrize(
    "schema", [{"type": "nonsense"}, {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}]
)
def test_a_schema_that_cannot_be_enforced_says_why(schema):
    tokenizer = byte_tokenizer()
    constraints = JsonConstraints(tokenizer, MODEL_VOCAB, [tokenizer.eos_token_id])
    with pytest.raises(ConstraintError, match="cannot be enforced"):
        constraints.compile(schema)


def test_a_tokenizer_llguidance_cannot_read_leaves_json_mode_off_with_the_reason():
    from tokenizers import SentencePieceBPETokenizer
    from transformers import PreTrainedTokenizerFast

    backend = SentencePieceBPETokenizer()  # Metaspace without byte fallback
    backend.train_from_iterator(["habari ya asubuhi"] * 5, vocab_size=40, special_tokens=["</s>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>")
    constraints = load_json_constraints(tokenizer, 40, [tokenizer.eos_token_id])
    assert isinstance(constraints, NoJsonConstraints) and not constraints.available
    assert "cannot read this model's tokenizer" in constraints.reason
    with pytest.raises(ConstraintError, match="JSON mode is off"):
        constraints.compile({"type": "object"})
