"""Rows joining and leaving a left-padded KV cache decode exactly what each prompt decodes alone."""

from __future__ import annotations

import pytest
import torch

from lingualift.serving.kvcache import PaddedBatch, unsupported
from lingualift.testing import tiny_causal_lm

SHAPE = dict(hidden_size=32, num_heads=2, num_kv_heads=1, initializer_range=0.2)
ARCHS = {
    "llama": dict(num_layers=2),
    "qwen2": dict(num_layers=2),
    # The embedded model's shape: sliding-window layers (a window of 8 here, which the rows
    # outgrow) around a full-attention one.
    "gemma3": dict(num_layers=7, sliding_window=8),
}


def prefill(model, prompts):
    width = max(map(len, prompts))
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    attention = torch.zeros(len(prompts), width, dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt) :] = torch.tensor(prompt)
        attention[i, width - len(prompt) :] = 1
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=ids,
        attention_mask=attention,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
    )
    return PaddedBatch(out.past_key_values, attention, positions[:, -1] + 1, out.logits[:, -1])


def alone(model, prompt, steps):
    """Greedy tokens without a cache or a batch: the obvious loop."""
    ids = list(prompt)
    for _ in range(steps):
        ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt) :]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_rows_joining_at_different_steps_and_leaving_decode_as_alone(arch):
    model, _ = tiny_causal_lm(arch, **SHAPE, **ARCHS[arch])
    generator = torch.Generator().manual_seed(0)
    lengths = (12, 3, 20, 1, 7)
    prompts = [torch.randint(3, 200, (n,), generator=generator).tolist() for n in lengths]
    budgets = (16, 5, 14, 9, 12)  # rows leave at different steps
    joins = {0: [0, 1], 3: [2], 5: [3], 9: [4]}  # step -> prompts that join then
    got: dict[int, list[int]] = {i: [] for i in range(len(prompts))}
    trimmed = 0
    with torch.inference_mode():
        batch, rows = None, []
        for step in range(60):
            if step in joins:
                part = prefill(model, [prompts[i] for i in joins[step]])
                if batch is None:
                    batch = part
                else:
                    batch.join(part)
                rows += joins[step]
            if not rows:
                continue
            tokens = batch.logits.argmax(-1)
            for row, token in zip(rows, tokens.tolist(), strict=True):
                got[row].append(token)
            keep = [k for k, row in enumerate(rows) if len(got[row]) < budgets[row]]
            if len(keep) < len(rows):
                index = torch.tensor(keep, dtype=torch.long)
                batch.select(index)
                trimmed += batch.trim()
                tokens, rows = tokens[index], [rows[k] for k in keep]
            if not rows:
                if step > max(joins):
                    break
                batch = None
                continue
            batch.decode(model, tokens)
            assert batch.cache.get_seq_length() == batch.width
    assert trimmed > 0  # the 20-token prompt left before the others: its padding went with it
    for i, prompt in enumerate(prompts):
        assert got[i] == alone(model, prompt, budgets[i]), f"prompt {i}"


def test_select_copies_rows_for_choices_that_share_a_prefill():
    model, _ = tiny_causal_lm("gemma3", **SHAPE, **ARCHS["gemma3"])
    prompt = list(range(5, 17))
    with torch.inference_mode():
        batch = prefill(model, [prompt])
        batch.select(torch.tensor([0, 0, 0]))
        assert batch.rows == 3 and batch.cache.layers[0].keys.shape[0] == 3
        batch.decode(model, batch.logits.argmax(-1))
    logits = batch.logits
    assert torch.equal(logits[0], logits[1]) and torch.equal(logits[1], logits[2])


def test_caches_that_cannot_be_joined_in_place_are_named():
    from transformers.cache_utils import DynamicCache, StaticCache

    model, _ = tiny_causal_lm("llama", **SHAPE, **ARCHS["llama"])
    with torch.inference_mode():
        batch = prefill(model, [[5, 6, 7]])
    assert unsupported(batch.cache) is None
    static = StaticCache(config=model.config, max_cache_len=16)
    assert "StaticCache" in unsupported(static)
    assert "no keys" in unsupported(DynamicCache(config=model.config))
