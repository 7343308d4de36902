"""``lingualift quickstart``: the first job a user runs, on the embedded defaults only.

This first version prepares and checks the three embedded assets for one target
language: it converts the base model once (later runs reuse the cache), reads
held-out verses of the target language and their English translations from the
embedded corpus, embeds them, and measures how well the encoder aligns the two
languages (translation retrieval accuracy) and how well the base model predicts
each language (mean token NLL). The report lands in ``out_dir/report.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from lingualift.atomic import atomic_write_text
from lingualift.languages import normalize_language


@dataclasses.dataclass
class QuickstartConfig:
    """Settings of the quickstart job."""

    lang: str = "sw"
    """Target (non-dominant) language, any code or name the corpus has."""
    model: str = "embedded:gemma-3-270m"
    """Base model: an embedded name, a hub id or a local folder."""
    encoder: str = "e5-nano"
    """Sentence encoder spec (see lingualift.embed.get_encoder)."""
    books: str = "43"
    """Held-out book(s) of the embedded corpus to read verses from."""
    n_verses: int = 64
    """Number of aligned verses to use."""
    out_dir: str = "runs/quickstart"
    """Where the report is written."""


def _mean_nll(model, tokenizer, texts: list[str], batch_size: int = 8) -> float:
    import torch

    total, count = 0.0, 0
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                          truncation=True, max_length=128)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        with torch.inference_mode():
            logits = model(**batch).logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
            ignore_index=-100, reduction="sum",
        )
        total += loss.item()
        count += int((labels[:, 1:] != -100).sum())
    return total / max(count, 1)


def run_quickstart(config: QuickstartConfig) -> Path:
    from lingualift.data import ParallelCorpus
    from lingualift.embed import get_encoder
    from lingualift.models import load_causal_lm

    lang = normalize_language(config.lang)
    started = time.perf_counter()
    pairs = ParallelCorpus().parallel("en", lang, config.books, limit=config.n_verses)
    english, target = [p[0].text for p in pairs], [p[1].text for p in pairs]

    encoder = get_encoder(config.encoder)
    en_vectors, target_vectors = encoder.encode(english), encoder.encode(target)
    retrieval = float(np.mean((target_vectors @ en_vectors.T).argmax(1) == np.arange(len(pairs))))

    model, tokenizer = load_causal_lm(config.model)
    report = {
        "lang": lang,
        "model": config.model,
        "encoder": encoder.name,
        "n_verses": len(pairs),
        "translation_retrieval_accuracy": retrieval,
        "base_nll": {"en": _mean_nll(model, tokenizer, english),
                     lang: _mean_nll(model, tokenizer, target)},
        "seconds": round(time.perf_counter() - started, 1),
    }
    out = Path(config.out_dir) / "report.json"
    atomic_write_text(out, json.dumps(report, indent=2, ensure_ascii=False))
    return out
