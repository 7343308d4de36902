"""Token-weighted perplexity with sliding-window striding, overall and per language.

Texts longer than the model's window are cut into windows of ``max_length``
tokens that start every ``stride`` tokens; each window scores only the tokens
the previous window did not, and sees up to ``max_length - stride`` earlier
tokens as context (the recipe of the transformers perplexity guide). Every
token except the first of a text is therefore scored exactly once, and the
result is the mean negative log-likelihood over all scored tokens of all texts
(token-weighted, not an average of per-text perplexities).

Windows of all texts are pooled, sorted by length and run in padded batches;
the log-likelihood of the targets is one ``cross_entropy`` call per batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from lingualift.errors import LingualiftError, require


@dataclasses.dataclass
class PerplexityResult:
    """Summed negative log-likelihood (nats) over the scored tokens of some texts."""

    nll_sum: float
    """Total negative log-likelihood of the scored tokens, in nats."""
    n_tokens: int
    """How many tokens were scored (every token but the first of each text)."""
    n_texts: int
    """How many texts contributed."""
    per_text: list[tuple[float, int]] = dataclasses.field(default_factory=list, repr=False)
    """``(nll_sum, n_tokens)`` of each non-empty text, in input order (for paired statistics)."""

    @property
    def nll(self) -> float:
        """Mean negative log-likelihood per token (nats)."""
        return self.nll_sum / self.n_tokens if self.n_tokens else float("nan")

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll) if self.n_tokens else float("nan")

    @property
    def bits_per_token(self) -> float:
        return self.nll / math.log(2) if self.n_tokens else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "perplexity": self.perplexity,
            "nll": self.nll,
            "bits_per_token": self.bits_per_token,
            "n_tokens": self.n_tokens,
            "n_texts": self.n_texts,
        }


def model_max_length(model: Any) -> int | None:
    """The longest sequence the model's position encoding supports, if it says."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_context_length(model: Any, length: int, what: str = "max_length") -> None:
    """Refuse a context longer than the model's position limit, in one sentence."""
    limit = model_max_length(model)
    if limit is not None and length > limit:
        raise LingualiftError(
            f"{what}={length} tokens is above the model's limit of {limit} tokens; "
            f"use {what}={limit} or less."
        )


def _windows(ids: list[int], max_length: int, stride: int) -> list[tuple[list[int], int]]:
    """(window ids, number of leading context tokens not scored) for one text."""
    out = []
    prev_end = 0
    for begin in range(0, len(ids), stride):
        end = min(begin + max_length, len(ids))
        n_new = end - prev_end
        window = ids[begin:end]
        # Tokens before position ``len - n_new`` were scored by an earlier window;
        # the first token of a text has no left context and is never scored.
        skip = max(len(window) - n_new, 1)
        if len(window) > skip:
            out.append((window, skip))
        prev_end = end
        if end == len(ids):
            break
    return out


def perplexity(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int | None = None,
    stride: int | None = None,
    batch_size: int = 4,
    add_bos: bool = True,
    progress: bool = False,
) -> PerplexityResult:
    """Token-weighted perplexity of ``model`` on ``texts``.

    ``max_length`` defaults to the model's position limit (capped at 2048);
    ``stride`` defaults to half of ``max_length``. With ``add_bos`` the
    tokenizer's BOS token (if it has one) starts every text, so the first real
    token is scored too.
    """
    import torch
    import torch.nn.functional as F

    texts = [t for t in texts if t and t.strip()]
    require(texts, "No non-empty texts to score; pass held-out text in the language to measure.")
    limit = model_max_length(model)
    if max_length is None:
        max_length = min(limit or 2048, 2048)
    require(max_length >= 2, f"max_length must be at least 2 tokens, got {max_length}.")
    check_context_length(model, max_length)
    stride = stride or max(max_length // 2, 1)
    require(
        0 < stride <= max_length,
        f"stride must be between 1 and max_length ({max_length}); got {stride}.",
    )
    require(batch_size >= 1, f"batch_size must be at least 1, got {batch_size}.")

    bos = getattr(tokenizer, "bos_token_id", None) if add_bos else None
    windows: list[tuple[list[int], int, int]] = []  # (ids, tokens to skip, text index)
    for index, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if bos is not None:
            ids = [bos, *ids]
        windows.extend((w, skip, index) for w, skip in _windows(ids, max_length, stride))
    windows.sort(key=lambda w: len(w[0]), reverse=True)
    per_text = [[0.0, 0] for _ in texts]

    pad_id = getattr(tokenizer, "pad_token_id", None)
    pad_id = 0 if pad_id is None else pad_id
    device = next(model.parameters()).device
    # A model straight out of training is in train mode: dropout would perturb the scores.
    was_training = model.training
    model.eval()
    batches = range(0, len(windows), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="perplexity", unit="batch")
    try:
        with torch.inference_mode():
            for start in batches:
                chunk = windows[start : start + batch_size]
                width = len(chunk[0][0])
                input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
                attention = torch.zeros((len(chunk), width), dtype=torch.long)
                # -100 marks positions whose next token is context or padding.
                labels = torch.full((len(chunk), width), -100, dtype=torch.long)
                for row, (ids, skip, _) in enumerate(chunk):
                    tensor = torch.tensor(ids, dtype=torch.long)
                    input_ids[row, : len(ids)] = tensor
                    attention[row, : len(ids)] = 1
                    labels[row, skip : len(ids)] = tensor[skip:]
                logits = model(
                    input_ids=input_ids.to(device), attention_mask=attention.to(device)
                ).logits.float()
                targets = labels[:, 1:].to(device)
                losses = F.cross_entropy(
                    logits[:, :-1].transpose(1, 2), targets, ignore_index=-100, reduction="none"
                )
                row_sums = losses.sum(dim=1).double().tolist()
                row_counts = (targets != -100).sum(dim=1).tolist()
                for (_, _, index), row_sum, count in zip(chunk, row_sums, row_counts, strict=True):
                    per_text[index][0] += row_sum
                    per_text[index][1] += count
    finally:
        model.train(was_training)
    nll_sum = sum(total for total, _ in per_text)
    n_tokens = sum(count for _, count in per_text)
    return PerplexityResult(nll_sum, n_tokens, len(texts), [(t, c) for t, c in per_text])


def perplexity_by_language(
    model: Any,
    tokenizer: Any,
    records: Iterable[Any],
    context: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None,
    **kwargs: Any,
) -> dict[str, PerplexityResult]:
    """Perplexity per language of lingualift :class:`~lingualift.data.Record` s.

    ``context(lang)`` (optional) wraps each language's scoring, e.g.
    ``lambda lang: shifcon.apply(model, lang)`` to measure with ShifCon on.
    Languages come out in sorted order; records without a language are refused.
    """
    groups: dict[str, list[str]] = defaultdict(list)
    for record in records:
        require(
            record.lang,
            f"Record {record.id!r} has no language; set lang (or default_lang when reading).",
        )
        groups[record.lang].append(record.text)
    require(groups, "No records to score; pass held-out text records with a language.")
    results = {}
    for lang in sorted(groups):
        manager = context(lang) if context is not None else contextlib.nullcontext()
        with manager:
            results[lang] = perplexity(model, tokenizer, groups[lang], **kwargs)
    return results
