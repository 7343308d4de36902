"""Batched log-likelihood of (context, continuation) pairs, the engine under MCQ scoring.

Conventions follow lm-evaluation-harness's ``hf`` backend exactly (trailing
spaces of the context move to the continuation; the continuation's tokens are
the tail of the tokenized whole; an empty context is replaced by the BOS/EOS
token), so that per-sample log-likelihoods match it to float rounding.

What makes it faster:

* Requests that share ``context + continuation[:-1]`` (every answer letter of
  one question) are one sequence, run once; the options differ only in the
  last token, read from the same logits row.
* Sequences are sorted by length, so padded batches waste little.
* Only the positions that predict continuation tokens go through the LM head
  (``logits_to_keep`` with the union of those positions in the batch), instead
  of a ``[batch, length, vocab]`` tensor; with a 262k vocabulary that head is
  most of the cost of a short prompt.
* Gathering, summing and the greedy check are tensor ops over the whole
  batch: no Python loop per token.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from lingualift.errors import LingualiftError
from lingualift.evaluation.perplexity import model_max_length

ApplyFn = Callable[[list[str]], contextlib.AbstractContextManager[Any]]


@dataclasses.dataclass
class _Group:
    tokens: list[int]
    """context + continuation[:-1]: what the model reads."""
    lang: str | None
    members: list[tuple[int, list[int]]] = dataclasses.field(default_factory=list)
    """(request index, continuation tokens) of every request this sequence answers."""


class LoglikelihoodScorer:
    """Score ``log P(continuation | context)`` for many pairs with one model.

    ``apply`` (optional) is called with the language of every row of a batch
    and must return a context manager active during that forward, e.g.
    ``lambda langs: shifcon.apply(model, langs)``.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        batch_size: int = 16,
        max_length: int | None = None,
        apply: ApplyFn | None = None,
    ) -> None:
        if batch_size < 1:
            raise LingualiftError(f"batch_size must be at least 1, got {batch_size}.")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length or model_max_length(model) or 2048
        self.apply = apply

    # -- tokenization (lm-eval's convention) ---------------------------------
    @property
    def prefix_token_id(self) -> int:
        tok = self.tokenizer
        return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        if not context:
            return [self.prefix_token_id], self.tokenizer.encode(
                continuation, add_special_tokens=False
            )
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = self.encode(context + continuation)
        context_enc = self.encode(context)
        return context_enc, whole[len(context_enc) :]

    def loglikelihood(
        self,
        pairs: Sequence[tuple[str, str]],
        langs: Sequence[str | None] | None = None,
        progress: bool = False,
    ) -> list[tuple[float, bool]]:
        """(log-likelihood, continuation is the greedy decode) for each pair."""
        encoded = [self.encode_pair(c, x) for c, x in pairs]
        return self.loglikelihood_tokens(encoded, langs, progress=progress)

    # -- the batched forward --------------------------------------------------
    def loglikelihood_tokens(
        self,
        requests: Sequence[tuple[list[int], list[int]]],
        langs: Sequence[str | None] | None = None,
        progress: bool = False,
    ) -> list[tuple[float, bool]]:
        import torch

        if langs is not None and len(langs) != len(requests):
            raise LingualiftError(
                f"Got {len(langs)} languages for {len(requests)} requests; give one per request."
            )
        groups: dict[tuple[str | None, tuple[int, ...]], _Group] = {}
        for index, (context, continuation) in enumerate(requests):
            if not continuation:
                raise LingualiftError(
                    f"Request {index} has an empty continuation; every option needs text."
                )
            tokens = list(context) + list(continuation[:-1])
            if len(tokens) > self.max_length:
                raise LingualiftError(
                    f"A prompt of {len(tokens) + 1} tokens is above the model's limit of "
                    f"{self.max_length} tokens; use fewer shots or shorter inputs."
                )
            lang = langs[index] if langs is not None else None
            key = (lang, tuple(tokens))
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(tokens=tokens, lang=lang)
            group.members.append((index, list(continuation)))

        # Longest first (an OOM shows at once); same language together for ``apply``.
        ordered = sorted(groups.values(), key=lambda g: (g.lang or "", -len(g.tokens)))
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        device = next(self.model.parameters()).device
        pad_id = self.tokenizer.pad_token_id
        pad_id = 0 if pad_id is None else pad_id
        starts = range(0, len(ordered), self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="loglikelihood", unit="batch")
        with torch.inference_mode():
            for start in starts:
                batch = ordered[start : start + self.batch_size]
                self._run_batch(batch, results, device, pad_id)
        return results  # type: ignore[return-value]

    def _run_batch(self, batch: list[_Group], results: list, device: Any, pad_id: int) -> None:
        import torch

        width = max(len(g.tokens) for g in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        # Flattened index of every continuation token: (row, position, target, request).
        rows, positions, targets, owners = [], [], [], []
        for row, group in enumerate(batch):
            length = len(group.tokens)
            input_ids[row, :length] = torch.tensor(group.tokens, dtype=torch.long)
            for request, continuation in group.members:
                n = len(continuation)
                # The logits at position p predict token p + 1.
                rows.extend([row] * n)
                positions.extend(range(length - n, length))
                targets.extend(continuation)
                owners.extend([request] * n)
        keep = sorted(set(positions))
        slot = {p: i for i, p in enumerate(keep)}
        langs = [g.lang for g in batch]
        manager = (
            self.apply(langs)
            if self.apply is not None and any(lang is not None for lang in langs)
            else contextlib.nullcontext()
        )
        # No attention mask with right padding, as lm-eval does: causal attention
        # never lets a real token see the padding after it.
        with manager:
            logits = self.model(
                input_ids=input_ids.to(device),
                logits_to_keep=torch.tensor(keep, dtype=torch.long, device=device),
            ).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        row_t = torch.tensor(rows, device=device)
        slot_t = torch.tensor([slot[p] for p in positions], device=device)
        target_t = torch.tensor(targets, device=device)
        token_lp = logprobs[row_t, slot_t, target_t]
        greedy = logprobs[row_t, slot_t].argmax(dim=-1) == target_t
        unique, owner_idx = torch.unique(torch.tensor(owners, device=device), return_inverse=True)
        sums = torch.zeros(len(unique), dtype=torch.float64, device=device)
        sums.index_add_(0, owner_idx, token_lp.double())
        all_greedy = torch.ones(len(unique), dtype=torch.long, device=device)
        all_greedy.scatter_reduce_(0, owner_idx, greedy.long(), reduce="amin")
        for request, value, is_greedy in zip(
            unique.tolist(), sums.tolist(), all_greedy.tolist(), strict=True
        ):
            results[request] = (value, bool(is_greedy))
