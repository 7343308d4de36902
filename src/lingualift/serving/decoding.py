"""From logits to tokens and from tokens to text, one batch row at a time.

Rows of one batch belong to different requests, so each keeps its own
:class:`SamplingParams` and its own state (:class:`RowState`: prompt and
generated ids for the penalties, a seeded generator, a JSON constraint).
:func:`choose_next` picks every row's next token from the batch's
last-position logits and, where asked, its logprobs; :func:`score_tokens`
scores given tokens from their logits (the prompt of ``echo`` + ``logprobs``,
from the prefill's);
:class:`TextStream` turns a row's tokens into text deltas that are safe to
send: never half a UTF-8 character, never the start of a stop string that
may still complete.

Per row, in vLLM's order: the JSON constraint's mask, ``min_tokens`` (no
end-of-sequence or stop token yet), ``logit_bias``, the repetition, frequency
and presence penalties; then the argmax for greedy rows, or temperature,
``min_p``, ``top_k``, ``top_p`` and a draw. Logprobs are those of the model's
raw distribution (``log_softmax`` of the logits before any of this), as vLLM
returns by default. Greedy rows without any of it take one argmax for the
whole batch, so plain traffic pays nothing for the parameters it does not use.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from lingualift.serving import logits as lp

REPLACEMENT_CHAR = "\ufffd"  # what a tokenizer decodes an incomplete UTF-8 sequence to
_MASK64 = (1 << 64) - 1


class ConstraintState(Protocol):
    """Where one row is in a grammar (:mod:`~lingualift.serving.constraints`)."""

    def allowed(self, vocab_size: int, device: Any) -> Any:
        """A bool tensor over the vocabulary: the tokens the grammar allows next."""

    def accept(self, token: int) -> None:
        """Advance past the chosen token."""

    @property
    def finished(self) -> bool:
        """The grammar is complete: nothing but end-of-sequence may follow."""


class Constraint(Protocol):
    """A compiled grammar that rows start from (immutable, shared by the rows of a request)."""

    def start(self) -> ConstraintState: ...


GREEDY_BELOW = 1e-5
"""A temperature below this decodes greedily (vLLM's sampling epsilon)."""


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How one row's tokens are chosen and when it stops."""

    max_tokens: int
    """Most new tokens (0: none, the prompt is only scored)."""
    temperature: float = 1.0
    """0 (below 1e-5) is greedy (argmax); above it samples from softmax(logits / temperature)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""
    top_k: int = 0
    """Sample among the k most likely tokens; 0 keeps all."""
    min_p: float = 0.0
    """Drop tokens less likely than min_p times the most likely one; 0 keeps all."""
    presence_penalty: float = 0.0
    """Subtracted from the logit of every token generated at least once."""
    frequency_penalty: float = 0.0
    """Subtracted from a token's logit once per time it was generated."""
    repetition_penalty: float = 1.0
    """CTRL's penalty on tokens of the prompt or the output (1 is off)."""
    logit_bias: tuple[tuple[int, float], ...] = ()
    """(token id, bias) pairs added to the logits."""
    min_tokens: int = 0
    """No end-of-sequence or stop token (and no stop string) before this many tokens."""
    logprobs: int | None = None
    """Return each chosen token's logprob and this many most likely alternatives; None: no
    logprobs."""
    prompt_logprobs: int | None = None
    """Also score the prompt's tokens (with this many alternatives): the engine keeps the full
    prefill logits of such rows for :func:`prompt_logprobs`. None: no prompt scores."""
    stop: tuple[str, ...] = ()
    """Stop strings: generation ends at the first one, which is not returned."""
    stop_token_ids: tuple[int, ...] = ()
    """Tokens that end the row like end-of-sequence (not part of the text)."""
    include_stop_str_in_output: bool = False
    """Keep the stop string that ended the text."""
    skip_special_tokens: bool = True
    """Leave special tokens out of the text."""
    seed: int | None = None
    """Seed of this row's own random generator (same seed, same prompt, same text)."""
    ignore_eos: bool = False
    """Keep generating past end-of-sequence tokens (benchmarks want fixed lengths)."""
    constraint: Constraint | None = None
    """A grammar the output must follow (JSON mode), or None."""

    def __post_init__(self) -> None:
        checks = {
            "max_tokens >= 0": self.max_tokens >= 0,
            "temperature >= 0": self.temperature >= 0.0,
            "0 < top_p <= 1": 0.0 < self.top_p <= 1.0,
            "top_k >= 0": self.top_k >= 0,
            "0 <= min_p <= 1": 0.0 <= self.min_p <= 1.0,
            "repetition_penalty > 0": self.repetition_penalty > 0.0,
            "min_tokens >= 0": self.min_tokens >= 0,
            "logprobs >= 0": self.logprobs is None or self.logprobs >= 0,
            "prompt_logprobs >= 0": self.prompt_logprobs is None or self.prompt_logprobs >= 0,
        }
        broken = [rule for rule, holds in checks.items() if not holds]
        if broken:
            raise ValueError(f"SamplingParams needs {', '.join(broken)}.")

    @property
    def greedy(self) -> bool:
        # vLLM's rule (_SAMPLING_EPS): below 1e-5, logits / temperature overflow to inf and
        # the softmax to NaN (a 500 the fuzzer found at 1e-162); the limit of sampling is argmax.
        return self.temperature < GREEDY_BELOW

    @property
    def needs_history(self) -> bool:
        """Whether choosing a token depends on the row's earlier tokens (a :class:`RowState`)."""
        return bool(
            self.presence_penalty
            or self.frequency_penalty
            or self.repetition_penalty != 1.0
            or self.min_tokens
            or self.constraint is not None
        )

    @property
    def plain_greedy(self) -> bool:
        """Greedy with nothing to do per row: the batch's argmax is this row's token."""
        return self.greedy and not (
            self.needs_history or self.logit_bias or self.logprobs is not None
        )

    def for_choice(self, index: int) -> SamplingParams:
        """The settings of choice ``index`` of a request: choice 0 keeps the seed, the others
        get seeds derived from it, so n seeded choices differ and each repeats."""
        if self.seed is None or index == 0:
            return self
        return dataclasses.replace(self, seed=_mix_seed(self.seed, index))


def _mix_seed(seed: int, index: int) -> int:
    """A 64-bit seed for choice ``index`` (splitmix64's finalizer, so nearby seeds spread)."""
    z = (seed + 0x9E3779B97F4A7C15 * index) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


@dataclasses.dataclass(frozen=True)
class SamplingDefaults:
    """What a request that does not set a parameter gets (the model's generation_config)."""

    temperature: float = 1.0
    """OpenAI's default, unless the model's generation_config sets one."""
    top_p: float = 1.0
    """Keep all tokens unless the generation_config sets top_p."""
    top_k: int = 0
    """Keep all tokens unless the generation_config sets top_k."""
    min_p: float = 0.0
    """Keep all tokens unless the generation_config sets min_p."""
    repetition_penalty: float = 1.0
    """No penalty unless the generation_config sets one."""
    max_tokens: int | None = None
    """The generation_config's max_new_tokens; None: the server's default."""


def sampling_defaults(source: Any) -> SamplingDefaults:
    """Default sampling settings from a model's generation config, as vLLM does.

    ``source`` is a model (its ``generation_config``), a ``GenerationConfig``, a dict (a
    ``generation_config.json``), or None. As vLLM's ``--generation-config auto``: the values
    the config sets for temperature, top_p, top_k, min_p, repetition_penalty and
    max_new_tokens become the defaults; ``do_sample`` is not read (a request's temperature
    says whether it samples).
    """
    config = getattr(source, "generation_config", source)
    if config is None:
        return SamplingDefaults()
    if isinstance(config, Mapping):
        values = dict(config)
    elif hasattr(config, "to_diff_dict"):  # only what differs from transformers' defaults
        values = config.to_diff_dict()
    else:
        values = vars(config)
    found: dict[str, Any] = {}
    for key, name, kind in (
        ("temperature", "temperature", float),
        ("top_p", "top_p", float),
        ("top_k", "top_k", int),
        ("min_p", "min_p", float),
        ("repetition_penalty", "repetition_penalty", float),
        ("max_new_tokens", "max_tokens", int),
    ):
        value = values.get(key)
        if value is not None and not isinstance(value, bool):
            found[name] = kind(value)
    if found.get("top_k", 0) < 0:
        found["top_k"] = 0
    return SamplingDefaults(**found)


def row_generator(params: SamplingParams, device: Any):
    """A seeded ``torch.Generator`` for a sampling row with a seed, else None (global RNG)."""
    import torch

    if params.greedy or params.seed is None:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(params.seed & _MASK64)  # negative seeds: their two's complement
    return generator


@dataclasses.dataclass(frozen=True)
class TokenLogprobs:
    """The logprob of one chosen (or prompt) token and the most likely alternatives."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()
    """(token id, logprob) of the most likely tokens, most likely first."""


class RowState:
    """One row's decoding state: settings, prompt and generated ids, generator, constraint.

    :func:`choose_next` records every chosen token here, which the penalties, ``min_tokens``
    and the constraint read at the next step.
    """

    def __init__(
        self,
        params: SamplingParams,
        prompt_ids: Sequence[int] = (),
        *,
        eos_ids: Sequence[int] = (),
        device: Any = "cpu",
    ) -> None:
        self.params = params
        self.prompt_ids = list(prompt_ids)
        self.output_ids: list[int] = []
        self.generator = row_generator(params, device)
        self.constraint = params.constraint.start() if params.constraint is not None else None
        # Tokens that may not come before min_tokens: they would end the row.
        stoppers = [] if params.ignore_eos else list(eos_ids)
        self.end_ids = tuple(dict.fromkeys([*stoppers, *params.stop_token_ids]))
        self.eos_ids = tuple(eos_ids)
        # Distinct tokens so far, for the penalties (sparse: a step touches only these ids).
        self._counts: Counter[int] = Counter()  # generated tokens, times each
        self._seen: set[int] = set(self.prompt_ids)  # prompt or generated tokens

    def stops_on(self, token: int) -> bool:
        """Whether ``token`` ends this row (end-of-sequence unless ignored, or a stop token)."""
        return token in self.params.stop_token_ids or (
            not self.params.ignore_eos and token in self.eos_ids
        )

    @property
    def generated(self) -> int:
        """Tokens chosen so far."""
        return len(self.output_ids)

    @property
    def constraint_finished(self) -> bool:
        """The row's grammar is complete (JSON mode: the answer parses), so it can end."""
        return self.constraint is not None and self.constraint.finished

    def record(self, token: int) -> None:
        """Take ``token`` as this row's next one."""
        self.output_ids.append(token)
        self._counts[token] += 1
        self._seen.add(token)
        if self.constraint is not None:
            self.constraint.accept(token)

    def process(self, raw: Any) -> Any:
        """This row's scores from its raw logits: constraint, min_tokens, bias, penalties."""
        import torch

        params = self.params
        scores = raw.float().clone()
        vocab = scores.shape[-1]
        if self.constraint is not None:
            lp.keep_allowed(scores, self.constraint.allowed(vocab, scores.device))
        if len(self.output_ids) < params.min_tokens:
            lp.mask_tokens(scores, [t for t in self.end_ids if 0 <= t < vocab])
        lp.add_logit_bias(scores, params.logit_bias)
        if params.repetition_penalty != 1.0:
            seen = torch.tensor([t for t in self._seen if 0 <= t < vocab], dtype=torch.long)
            lp.penalize_repetition(scores, seen.to(scores.device), params.repetition_penalty)
        if params.frequency_penalty or params.presence_penalty:
            counted = [(t, c) for t, c in self._counts.items() if 0 <= t < vocab]
            ids = torch.tensor([t for t, _ in counted], dtype=torch.long, device=scores.device)
            counts = torch.tensor([c for _, c in counted], device=scores.device)
            lp.penalize_frequency_presence(
                scores, ids, counts, params.frequency_penalty, params.presence_penalty
            )
        return scores

    def pick(self, scores: Any) -> int:
        """The next token from processed ``scores``: argmax, or a draw after the filters."""
        import torch

        params = self.params
        if not torch.isfinite(scores).any():
            # Only masks combine to rule out everything (a finished grammar under min_tokens):
            # end the row rather than draw from nothing.
            return self.eos_ids[0] if self.eos_ids else int(scores.argmax())
        if params.greedy:
            return int(scores.argmax())
        probs = torch.softmax(scores / params.temperature, dim=-1)
        filtered = lp.filter_top_k(lp.filter_min_p(probs, params.min_p), params.top_k)
        if filtered is not probs:  # top_p reads a distribution that sums to 1
            filtered = filtered / filtered.sum()
        filtered = lp.filter_top_p(filtered, params.top_p)
        return int(torch.multinomial(filtered, 1, generator=self.generator)[0])


@dataclasses.dataclass
class Step:
    """The tokens :func:`choose_next` chose for a batch."""

    tokens: Any
    """A (rows,) long tensor on the logits' device (the next forward's input)."""
    ids: list[int]
    """The same as Python ints."""
    logprobs: list[TokenLogprobs | None]
    """Per row: the chosen token's logprobs where its params ask for them, else None."""


def choose_next(logits: Any, rows: Sequence[RowState]) -> Step:
    """Every row's next token from ``logits`` of shape (rows, vocab), recorded in its row.

    One argmax serves every plain greedy row; the others are processed one by one, each
    with its own settings, history and generator (a handful of small ops per row next to a
    full forward pass).
    """
    chosen = logits.argmax(dim=-1)
    logprobs: list[TokenLogprobs | None] = [None] * len(rows)
    for i, row in enumerate(rows):
        params = row.params
        if params.plain_greedy:
            continue
        raw = logits[i]
        if params.needs_history or params.logit_bias or not params.greedy:
            chosen[i] = row.pick(row.process(raw))
        if params.logprobs is not None:
            logprobs[i] = score_tokens(raw[None], [int(chosen[i])], params.logprobs)[0]
    ids = chosen.tolist()
    for row, token in zip(rows, ids, strict=True):
        row.record(token)
    return Step(chosen, ids, logprobs)


def score_tokens(logits: Any, targets: Sequence[int], top: int = 0) -> list[TokenLogprobs]:
    """The logprob of ``targets[i]`` under ``logits[i]`` (shape (len(targets), vocab)), with the
    ``top`` most likely alternatives of each position."""
    import torch

    if not len(targets):
        return []
    scores = torch.log_softmax(logits.float(), dim=-1)
    ids = torch.as_tensor(list(targets), device=logits.device)
    chosen = scores.gather(1, ids[:, None])[:, 0].tolist()
    if top:
        values, alternatives = scores.topk(min(top, scores.shape[-1]), dim=-1)
        tops = [
            tuple(zip(a, v, strict=True))
            for a, v in zip(alternatives.tolist(), values.tolist(), strict=True)
        ]
    else:
        tops = [()] * len(chosen)
    return [
        TokenLogprobs(token, logprob, alt)
        for token, logprob, alt in zip(ids.tolist(), chosen, tops, strict=True)
    ]


def prompt_logprobs(
    logits: Any, prompt_ids: Sequence[int], top: int = 0, chunk: int = 256
) -> list[TokenLogprobs | None]:
    """The logprob of every prompt token given the tokens before it (the first has none).

    ``logits`` are the prefill's logits at the prompt's positions, shape (len(prompt_ids),
    vocab) (the last position predicts the first new token and is not used here). Positions
    are scored ``chunk`` at a time so a long prompt over a large vocabulary never holds its
    whole log-softmax at once.
    """
    out: list[TokenLogprobs | None] = [None]
    for start in range(0, len(prompt_ids) - 1, chunk):
        end = min(start + chunk, len(prompt_ids) - 1)
        out.extend(score_tokens(logits[start:end], prompt_ids[start + 1 : end + 1], top))
    return out


class TextStream:
    """Incremental detokenization with stop strings for one row.

    Decoding the whole sequence at every step costs O(n^2); decoding each token
    alone breaks characters that span tokens and the spacing rules of
    SentencePiece tokenizers. This keeps a short window instead (the approach
    of text-generation-inference): the text of ``tokens[prefix:read]`` is
    already known, so the new text is ``decode(tokens[prefix:]) - that``, and
    it is released only when it does not end in an incomplete character.
    Stop strings are looked for from the ``min_tokens``-th token on (vLLM's rule).
    """

    def __init__(
        self,
        tokenizer: Any,
        stop: Sequence[str] = (),
        *,
        skip_special_tokens: bool = True,
        include_stop: bool = False,
        min_tokens: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.skip_special_tokens = skip_special_tokens
        self.include_stop = include_stop
        self.min_tokens = min_tokens
        self.tokens: list[int] = []
        self.text = ""
        """All text decoded so far (cut at the stop string once one is found)."""
        self.sent = 0
        """How many characters of ``text`` were handed out by :meth:`releasable`."""
        self.stopped = False
        """True once a stop string appeared."""
        self._prefix = 0
        self._read = 0

    @classmethod
    def for_params(cls, tokenizer: Any, params: SamplingParams) -> TextStream:
        """The stream for a row with ``params`` (its stop strings and text settings)."""
        return cls(
            tokenizer,
            params.stop,
            skip_special_tokens=params.skip_special_tokens,
            include_stop=params.include_stop_str_in_output,
            min_tokens=params.min_tokens,
        )

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip_special_tokens)

    def add(self, token: int) -> None:
        """Append a token; sets :attr:`stopped` when a stop string is now complete."""
        if self.stopped:  # the text ended at the stop string
            return
        self.tokens.append(token)
        before = self._decode(self.tokens[self._prefix : self._read])
        after = self._decode(self.tokens[self._prefix :])
        if len(after) > len(before) and not after.endswith(REPLACEMENT_CHAR):
            start = len(self.text)
            self.text += after[len(before) :]
            self._prefix, self._read = self._read, len(self.tokens)
            self._check_stop(start)

    def _check_stop(self, start: int) -> None:
        if not self.stop or len(self.tokens) < self.min_tokens:
            return
        longest = max(len(s) for s in self.stop)
        window_start = max(0, start - longest + 1)  # a stop string may straddle the old text
        hits = [(i, s) for s in self.stop if (i := self.text.find(s, window_start)) >= 0]
        if hits:
            at, stop = min(hits)
            self.text = self.text[: at + len(stop) if self.include_stop else at]
            self.stopped = True

    def releasable(self, final: bool = False) -> str:
        """New text that can be sent now; with ``final`` everything that is left.

        While not final, a tail that could be the start of a stop string is held
        back until the next tokens show whether the stop string completes.
        """
        end = len(self.text)
        if not final and not self.stopped and self.stop:
            end -= _stop_prefix_overlap(self.text, self.stop)
        if final and not self.stopped:
            # Flush a last incomplete character as the tokenizer renders it.
            tail = self._decode(self.tokens[self._prefix :])
            known = self._decode(self.tokens[self._prefix : self._read])
            if len(tail) > len(known):
                self.text += tail[len(known) :]
                self._check_stop(len(self.text) - (len(tail) - len(known)))
                end = len(self.text)
        delta = self.text[self.sent : max(end, self.sent)]
        self.sent += len(delta)
        return delta


def _stop_prefix_overlap(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
    best = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:size]):
                best = size
                break
    return best
