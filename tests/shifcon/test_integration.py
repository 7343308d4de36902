"""ShifCon on the embedded Gemma 3 270M: real vectors, and the shift leaves English alone."""

import pytest
import torch

from lingualift.models import load_causal_lm
from lingualift.shifcon import ShifCon
from lingualift.shifcon.corpus import corpus_texts
from lingualift.shifcon.vectors import compute_language_vectors

pytestmark = pytest.mark.integration


def test_embedded_gemma_vectors_and_shift():
    model, tokenizer = load_causal_lm("embedded:gemma-3-270m")
    texts = corpus_texts(["sw"], books="43", per_language=24)
    vectors = compute_language_vectors(
        model,
        tokenizer,
        texts,
        "embedded:gemma-3-270m",
        batch_size=12,
        max_length=48,
        subspace_rank=4,
        progress=False,
    )
    assert vectors.means["sw"].shape == (19, 640)
    # Different languages have different mean states in the middle of the stack.
    assert not torch.allclose(vectors.means["sw"][9], vectors.means["en"][9], atol=1e-2)
    shifcon = ShifCon.from_vectors(vectors, 6, 9)
    batch = tokenizer(
        ["In the beginning was the Word", "Hapo mwanzo kulikuwako Neno"],
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        base = model(**batch).logits
        with shifcon.apply(model, ["en", "sw"]):
            shifted = model(**batch).logits
    torch.testing.assert_close(shifted[0], base[0])
    assert not torch.allclose(shifted[1], base[1], atol=1e-3)
