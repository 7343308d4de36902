"""The embedded defaults loaded for real (about a minute the first time, seconds after)."""

import time

import numpy as np
import pytest
import torch

from lingualift.assets import embedded_assets
from lingualift.data import ParallelCorpus
from lingualift.embed import get_encoder
from lingualift.models import decoder_layers, load_causal_lm

pytestmark = pytest.mark.integration


def test_embedded_gemma_loads_and_scores_text():
    model, tokenizer = load_causal_lm("embedded:gemma-3-270m")
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert len(decoder_layers(model)) == 18
    assert model.config.hidden_size == 640
    english = "For God so loved the world, that he gave his only begotten Son."
    shuffled = " ".join(sorted(english.split()))
    losses = []
    for text in (english, shuffled):
        batch = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            losses.append(model(**batch, labels=batch["input_ids"]).loss.item())
    assert losses[0] < losses[1]  # a real language model prefers real word order
    start = time.perf_counter()
    load_causal_lm("embedded:gemma-3-270m")
    assert time.perf_counter() - start < 30  # the cached reload takes seconds
    assert all(asset["available"] for asset in embedded_assets())


def test_embedded_encoder_aligns_translations_of_the_corpus():
    pairs = ParallelCorpus().parallel("en", "sw", books="43", limit=40)
    encoder = get_encoder("e5-nano")
    english = encoder.encode([p[0].text for p in pairs])
    swahili = encoder.encode([p[1].text for p in pairs])
    similarity = english @ swahili.T
    # Each English verse is closer to its own translation than to the average other verse.
    assert np.mean(np.diag(similarity)) > np.mean(similarity) + 0.05
    assert np.mean(similarity.argmax(axis=1) == np.arange(len(pairs))) > 0.5
