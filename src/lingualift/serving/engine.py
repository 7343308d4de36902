"""The batching engine: one worker thread owns the model, requests wait in a bounded queue.

torch modules are not safe to run from several threads at once, and PEFT's
adapter switches are global state, so a single worker thread does every
forward pass, every adapter load and delete, and every ShifCon hook. The
server's event loop only tokenizes, :meth:`Engine.submit` s and awaits events.

**Rows.** A request is one or more prompts (token ids) with ``n`` choices each;
every choice is a row of the batch, answered as choice ``prompt * n + choice``
(OpenAI's numbering). The rows of one prompt share its prefill: the prompt is
run once and its KV cache row copied for each choice. Each row decodes with its
own :class:`~lingualift.serving.decoding.RowState` (settings, seeded generator,
penalties' history, JSON constraint) and :class:`~lingualift.serving.decoding.TextStream`
(stop strings, text safe to send), and leaves the batch (and the KV cache) the
moment it finishes or its client goes away.

**Continuous batching** (the default). Between two decoding steps the worker
admits waiting requests while the batch has room (``max_batch_size`` rows, in
arrival order; a request larger than that runs when the batch is empty): it
prefills them in a forward of their own, with their own adapters, and joins
their KV cache to the running batch's (:class:`~lingualift.serving.kvcache.PaddedBatch`:
right-aligned left padding and explicit position ids, so every row computes what
it computes alone). A short request no longer waits for the longest one of the
batch before it. ``batching="static"`` keeps the earlier behaviour for
comparison (``benchmarks/serve_load.py``): a batch is gathered (the first
request, then up to ``batch_wait_ms`` for more) and decoded until its last row
ends before the next one starts. Models whose cache cannot be joined in place
(see :func:`~lingualift.serving.kvcache.unsupported`) are served statically.

**Mixed adapters.** Each forward runs its rows through their own adapters
(:meth:`~lingualift.adapters.registry.AdapterRegistry.batch`: stacked LoRA,
one gathered matmul per layer, when rows mix plain LoRA adapters; PEFT's
``adapter_names`` otherwise; one active adapter, or adapters off, when every
row agrees). PEFT's switches walk every layer, so the context is kept while the
next forward fits it (one adapter: however rows come and go), and a stacked
batch takes new rows by regathering them. ShifCon shifts each row for its
language.

**Prompt logprobs** (``echo`` with ``logprobs``, lm-eval's loglikelihood
requests) need the logits at every prompt position; those prompts are
prefilled apart from the others, in chunks of columns sized so that one
chunk's logits stay within ``prefill_logits_budget`` floats (Gemma 3's
vocabulary makes a whole 500-token prompt's logits half a gigabyte).

**Why our own decoding loop, not** ``model.generate``. ``generate`` fixes one
sampling configuration and one random generator for the whole batch, keeps
computing rows that already ended, cannot take rows in mid-flight and cannot
pick up a reloaded adapter between steps. The loop here is the same few lines
(a prefill with left padding and explicit position ids, then one token per step
on the KV cache, only the last position's logits), plus the rows' own state.
Plain greedy rows take one argmax for the whole batch.

**Hot reload.** Between steps the worker polls the
:class:`~lingualift.adapters.registry.AdapterRegistry` every
``reload_interval_s``. A row pins the adapter version current when it is
admitted and releases it when it ends; replaced versions are deleted once
released, so rows in flight finish on the version they started with.

The queue is bounded: :meth:`~Engine.submit` raises :class:`QueueFullError`
instead of letting it grow (the server answers 429).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal

from lingualift.adapters.registry import AdapterRegistry, LoadedAdapter
from lingualift.errors import first_line
from lingualift.serving.decoding import (
    RowState,
    SamplingParams,
    TextStream,
    TokenLogprobs,
    choose_next,
    score_tokens,
)
from lingualift.serving.kvcache import PaddedBatch, unsupported

logger = logging.getLogger(__name__)

FinishReason = Literal["stop", "length"]
Fallback = Literal["no_adapter", "lang_unsure"]
Batching = Literal["continuous", "static"]
BATCHING_MODES: tuple[Batching, ...] = ("continuous", "static")


@dataclasses.dataclass
class Started:
    """The request's prompts were prefilled: which adapter serves it, after how long a wait."""

    adapter: str | None
    """Adapter version label ('sw/v3'), or None for the base model."""
    fallback: Fallback | None
    """Why the base model serves it, when it does."""
    prompt_tokens: int
    """Tokens of all its prompts."""
    queued_s: float
    """Seconds from submission to admission into the batch."""
    prompt_logprobs: dict[int, list[TokenLogprobs | None]] = dataclasses.field(default_factory=dict)
    """Per prompt index, each prompt token's logprob (the first is None), when the request's
    sampling asks for them (``SamplingParams.prompt_logprobs``)."""


@dataclasses.dataclass
class TextDelta:
    """New text of one choice (never half a character, never part of a stop string)."""

    text: str
    index: int = 0
    """The choice it belongs to."""
    logprobs: list[TokenLogprobs] = dataclasses.field(default_factory=list)
    """Logprobs of the tokens generated since the choice's previous delta (when asked)."""


@dataclasses.dataclass
class Finished:
    """One choice ended (a request ends when all its choices did)."""

    text: str
    completion_tokens: int
    finish_reason: FinishReason
    index: int = 0
    token_ids: list[int] = dataclasses.field(default_factory=list)
    """Every generated token, the one that ended the choice included."""
    logprobs: list[TokenLogprobs] | None = None
    """One entry per generated token when logprobs were asked."""


@dataclasses.dataclass
class Failed:
    """The request failed (the server keeps running)."""

    message: str
    status: int = 500
    """The HTTP status it deserves: 500 for a failed forward, 503 when the server stops."""


Event = Started | TextDelta | Finished | Failed
EventSink = Callable[[Event], None]
"""Called on the worker thread for each event; must return at once (hand it to a queue)."""


class QueueFullError(Exception):
    """The waiting queue is at ``max_queue``; try again later."""


class EngineStoppedError(Exception):
    """The engine is shutting down and accepts no new requests."""


@dataclasses.dataclass(eq=False)
class GenerationRequest:
    """Prompts to complete, ``n`` choices each, with where their events go."""

    prompts: list[list[int]]
    """Token ids of each prompt (at least one token each)."""
    sampling: SamplingParams
    """How every choice decodes; choice j of a prompt uses ``sampling.for_choice(j)``."""
    sink: EventSink
    lang: str | None = None
    """Language of the request: its current adapter serves it (the base model when it has none
    or when None), and ShifCon shifts it when its vectors know the language."""
    n: int = 1
    """Choices per prompt."""
    id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    submitted: float = dataclasses.field(default_factory=time.monotonic)
    cancelled: bool = False
    """Set by the server when the client went away: the rows leave the batch at the next step."""

    def __post_init__(self) -> None:
        if not self.prompts or not all(self.prompts) or self.n < 1:
            raise ValueError("A generation request needs non-empty prompts and n >= 1.")

    @property
    def rows(self) -> int:
        """Rows it takes in a batch (choices of all prompts)."""
        return len(self.prompts) * self.n

    def cancel(self) -> None:
        self.cancelled = True


@dataclasses.dataclass(eq=False)
class _Row:
    request: GenerationRequest
    index: int
    """The choice's index in the answer."""
    prompt_len: int
    adapter: LoadedAdapter | None
    state: RowState
    stream: TextStream
    logprobs: list[TokenLogprobs] | None
    sent_logprobs: int = 0
    done: bool = False


@dataclasses.dataclass(eq=False)
class _Prompt:
    """One prompt of an admitted request, prefilled once for all its choices."""

    request: GenerationRequest
    index: int
    ids: list[int]
    adapter: LoadedAdapter | None


_STOP = object()


class Engine:
    """Batches requests onto one model with per-row adapters (see the module docstring)."""

    def __init__(
        self,
        registry: AdapterRegistry,
        tokenizer: Any,
        *,
        shifcon: Any = None,
        max_batch_size: int = 8,
        batch_wait_ms: float = 10.0,
        max_queue: int = 64,
        reload_interval_s: float = 2.0,
        batching: Batching = "continuous",
        prefill_logits_budget: int = 1 << 25,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if batching not in BATCHING_MODES:
            raise ValueError(f"batching must be one of {BATCHING_MODES}, got {batching!r}.")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.registry = registry
        self.tokenizer = tokenizer
        self.shifcon = shifcon
        if shifcon is not None:
            shifcon.vectors.check_model(registry.model)
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_ms / 1000.0
        self.reload_interval_s = reload_interval_s
        self.batching: Batching = batching
        self.prefill_logits_budget = prefill_logits_budget
        self.on_batch = on_batch
        self.tokenizer_lock = threading.Lock()
        """Held around every tokenizer call: the Rust tokenizer is not shared across threads."""
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._pending: collections.deque[GenerationRequest] = collections.deque()
        """Taken from the queue but not admitted yet (the batch had no room for it)."""
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_poll = time.monotonic() + reload_interval_s
        self._batch: PaddedBatch | None = None
        self._rows: list[_Row] = []
        self._context: contextlib.ExitStack | None = None
        """The adapter and ShifCon context of the last forward, kept open while it still fits."""
        self._context_key: tuple[Any, ...] = ()
        self._context_extra: dict[str, Any] = {}
        self._context_regathers = False
        self._joinable: bool | None = None
        self.eos_ids = _eos_ids(registry.model, tokenizer)
        self.max_positions = _max_positions(registry.model)
        self.vocab_size = _vocab_size(registry.model)

    # -- the server's side --------------------------------------------------------------

    @property
    def model(self) -> Any:
        return self.registry.model

    @property
    def queue_depth(self) -> int:
        """Requests waiting to join the batch."""
        return self._queue.qsize() + len(self._pending)

    @property
    def active_requests(self) -> int:
        """Requests with rows in the batch being decoded."""
        return len({id(row.request) for row in list(self._rows)})

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        with self.tokenizer_lock:
            return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        with self.tokenizer_lock:
            return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def submit(self, request: GenerationRequest) -> None:
        """Queue a request; its events go to ``request.sink`` from the worker thread."""
        if self._stopping.is_set():
            raise EngineStoppedError("the server is shutting down")
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise QueueFullError(f"{self._queue.maxsize} requests are already waiting") from None

    def start(self) -> None:
        if self.alive:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="lingualift-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the rows being decoded, fail what still waits, and end the worker."""
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
        self._fail_waiting("the server is shutting down")

    # -- the worker: admission ----------------------------------------------------------

    def _run(self) -> None:
        while self._rows or not self._stopping.is_set():
            self._poll_if_due()
            try:
                newcomers = self._admit()
            except Exception:  # never let the worker die: the server would hang
                logger.exception("admitting requests failed")
                newcomers = []
            if newcomers:
                self._start_rows(newcomers)
            if self._rows:
                self._step_or_fail()
        self._close_context()
        self._fail_waiting("the server is shutting down")

    def _take(self, timeout: float | None) -> GenerationRequest | None:
        """The next waiting request (None when none came within ``timeout``; 0: do not wait)."""
        if self._pending:
            return self._pending.popleft()
        try:
            item = self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is _STOP:
            self._stopping.set()
            return None
        return item

    def _admit(self) -> list[GenerationRequest]:
        """Waiting requests that join the batch now, in arrival order, while it has room."""
        if self._stopping.is_set() or (self._rows and self.batching == "static"):
            return []
        rows = len(self._rows)
        deadline = None
        if not rows:  # an idle batch: wait for a first request, then briefly for company
            first = self._take(min(0.25, max(0.02, self._next_poll - time.monotonic())))
            if first is None:
                return []
            deadline = time.monotonic() + self.batch_wait_s
            admitted, rows = [first], first.rows
        else:
            admitted = []
        while rows < self.max_batch_size and not self._stopping.is_set():
            wait = None if deadline is None else deadline - time.monotonic()
            item = self._take(wait if wait and wait > 0 else 0)
            if item is None:
                break
            if rows + item.rows > self.max_batch_size:
                self._pending.appendleft(item)  # first in line for the next free rows
                break
            admitted.append(item)
            rows += item.rows
        return [request for request in admitted if not request.cancelled]

    def _fail_waiting(self, message: str) -> None:
        while self._pending:
            _send(self._pending.popleft(), Failed(message, 503))
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                _send(item, Failed(message, 503))

    def _poll_if_due(self) -> bool:
        """Check the store for new versions when the interval is over; True on a change."""
        if time.monotonic() < self._next_poll:
            return False
        self._close_context()  # PEFT adapters are loaded and deleted outside any batch context
        changed = False
        try:
            changed = self.registry.poll()
            changed |= self.registry.collect()
        except Exception:
            logger.exception("checking the adapter store failed")
        self._next_poll = time.monotonic() + self.reload_interval_s
        return changed

    # -- the worker: prefill ------------------------------------------------------------

    def _start_rows(self, requests: list[GenerationRequest]) -> None:
        """Prefill the newcomers' prompts and join their rows to the batch (or finish them)."""
        import torch

        now = time.monotonic()
        prompts: list[_Prompt] = []
        rows: list[_Row] = []
        for request in requests:
            for p, ids in enumerate(request.prompts):
                for choice in range(request.n):  # each row holds the version it started on
                    rows.append(self._new_row(request, p, ids, choice))
                prompts.append(_Prompt(request, p, ids, rows[-1].adapter))
        try:
            with torch.inference_mode():
                batch, row_of, scored = self._prefill(prompts)
                joined = self._join(prompts, rows, batch, row_of)
        except Exception as exc:
            logger.exception("starting %d rows failed", len(rows))
            self._close_context()
            for row in rows:
                if not row.done:
                    row.done = True
                    self.registry.release(row.adapter)
            for request in requests:
                _send(request, Failed(f"generation failed: {first_line(exc)}"))
            return
        for request in requests:
            adapter = next(p.adapter for p in prompts if p.request is request)
            fallback: Fallback | None = None
            if adapter is None:
                fallback = "lang_unsure" if request.lang is None else "no_adapter"
            started = Started(
                adapter.label if adapter else None,
                fallback,
                sum(len(ids) for ids in request.prompts),
                now - request.submitted,
                {
                    p.index: scored[i]
                    for i, p in enumerate(prompts)
                    if p.request is request and i in scored
                },
            )
            _send(request, started)
            for row in rows:  # choices that wanted only their prompt scored end at once
                if row.request is request and not row.done and request.sampling.max_tokens == 0:
                    self._finish(row, "length")
        if joined and self.on_batch is not None:
            self.on_batch(len(self._rows))

    def _join(
        self, prompts: list[_Prompt], rows: list[_Row], batch: PaddedBatch, row_of: list[int]
    ) -> int:
        """Make the rows that generate part of the running batch, each a copy of its prompt's
        prefilled row (``row_of``: the batch row of each prompt); returns how many joined."""
        import torch

        index: list[int] = []
        joining: list[_Row] = []
        starts = {(id(p.request), p.index): row_of[i] for i, p in enumerate(prompts)}
        for row in rows:
            if row.request.cancelled:
                self._finish(row, None)
            elif row.request.sampling.max_tokens > 0:
                joining.append(row)
                index.append(starts[(id(row.request), row.index // row.request.n)])
        if not joining:
            return 0
        batch.select(torch.tensor(index, dtype=torch.long, device=batch.logits.device))
        if self._batch is None:
            self._batch = batch
        else:
            self._batch.join(batch)
        self._rows += joining
        return len(joining)

    def _new_row(
        self, request: GenerationRequest, prompt: int, ids: list[int], choice: int
    ) -> _Row:
        params = request.sampling.for_choice(choice)
        state = RowState(params, ids, eos_ids=sorted(self.eos_ids), device=_device(self.model))
        return _Row(
            request,
            prompt * request.n + choice,
            len(ids),
            self.registry.acquire(request.lang),
            state,
            TextStream.for_params(self.tokenizer, params),
            [] if params.logprobs is not None else None,
        )

    def _prefill(
        self, prompts: list[_Prompt]
    ) -> tuple[PaddedBatch, list[int], dict[int, list[TokenLogprobs | None]]]:
        """One padded batch holding every prompt's row with its next-token logits; the batch row
        of each prompt; and the scored tokens of the prompts whose requests ask (by position).

        Prompts to score are run apart, in column chunks with every position's logits.
        """
        plain, scored = [], []
        for i, prompt in enumerate(prompts):
            (plain if prompt.request.sampling.prompt_logprobs is None else scored).append(i)
        batch: PaddedBatch | None = None
        order: list[int] = []
        logprobs: dict[int, list[TokenLogprobs | None]] = {}
        for members, score in ((plain, False), (scored, True)):
            if not members:
                continue
            part, scores = self._prefill_group([prompts[i] for i in members], score)
            logprobs.update(zip(members, scores or [], strict=False))
            order += members
            if batch is None:
                batch = part
            else:
                batch.join(part)
        assert batch is not None
        row_of = [0] * len(prompts)
        for row, position in enumerate(order):
            row_of[position] = row
        return batch, row_of, logprobs

    def _prefill_group(
        self, prompts: list[_Prompt], score: bool
    ) -> tuple[PaddedBatch, list[list[TokenLogprobs | None]] | None]:
        import torch

        device = _device(self.model)
        width = max(len(p.ids) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, prompt in enumerate(prompts):  # left padding: new tokens follow every prompt
            input_ids[i, width - len(prompt.ids) :] = torch.tensor(prompt.ids, dtype=torch.long)
            attention[i, width - len(prompt.ids) :] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        extra = self._context_for([p.adapter for p in prompts], [p.request.lang for p in prompts])
        if not score:
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **extra,
            )
            batch = PaddedBatch(
                out.past_key_values, attention, positions[:, -1] + 1, out.logits[:, -1, :]
            )
            self._check_joinable(batch)
            return batch, None
        scores: list[list[TokenLogprobs | None]] = [[None] for _ in prompts]
        vocab = self.vocab_size or 1
        chunk = max(1, self.prefill_logits_budget // (len(prompts) * vocab))
        cache = None
        for start in range(0, width, chunk):
            end = min(width, start + chunk)
            out = self.model(
                input_ids=input_ids[:, start:end],
                attention_mask=attention[:, :end],
                position_ids=positions[:, start:end],
                past_key_values=cache,
                use_cache=True,
                **extra,
            )
            cache = out.past_key_values
            for i, prompt in enumerate(prompts):
                first = width - len(prompt.ids)  # the column of the prompt's first token
                a, b = max(start, first), min(end, width - 1)
                if a < b:  # column c's logits score the token in column c + 1
                    targets = prompt.ids[a + 1 - first : b + 1 - first]
                    top = prompt.request.sampling.prompt_logprobs or 0
                    scores[i] += score_tokens(out.logits[i, a - start : b - start], targets, top)
        batch = PaddedBatch(cache, attention, positions[:, -1] + 1, out.logits[:, -1, :])
        self._check_joinable(batch)
        return batch, scores

    def _check_joinable(self, batch: PaddedBatch) -> None:
        if self._joinable is not None:
            return
        reason = unsupported(batch.cache)
        self._joinable = reason is None
        if reason and self.batching == "continuous":
            logger.warning(
                "continuous batching is off for this model (%s); batching statically", reason
            )
            self.batching = "static"

    # -- the worker: decoding -----------------------------------------------------------

    def _step_or_fail(self) -> None:
        import torch

        try:
            with torch.inference_mode():
                self._step()
        except Exception as exc:
            logger.exception("decoding a batch of %d rows failed", len(self._rows))
            failed: set[int] = set()
            for row in self._rows:
                if not row.done:
                    row.done = True
                    self.registry.release(row.adapter)
                    if id(row.request) not in failed:
                        failed.add(id(row.request))
                        _send(row.request, Failed(f"generation failed: {first_line(exc)}"))
            self._reset()

    def _reset(self) -> None:
        self._close_context()
        self._batch, self._rows = None, []
        with contextlib.suppress(Exception):
            self.registry.collect()

    def _step(self) -> None:
        """Choose every row's next token, let finished rows go, run the rest one token on."""
        import torch

        batch = self._batch
        assert batch is not None
        step = choose_next(batch.logits, [row.state for row in self._rows])
        with self.tokenizer_lock:
            keep = [
                i
                for i, row in enumerate(self._rows)
                if not self._advance(row, step.ids[i], step.logprobs[i])
            ]
        tokens = step.tokens
        if len(keep) < len(self._rows):
            if not keep:
                self._reset()
                return
            index = torch.tensor(keep, dtype=torch.long, device=tokens.device)
            batch.select(index)  # finished rows leave the batch and the KV cache
            batch.trim()
            tokens = tokens[index]
            self._rows = [self._rows[i] for i in keep]
        extra = self._context_for(
            [row.adapter for row in self._rows], [row.request.lang for row in self._rows]
        )
        batch.decode(self.model, tokens, **extra)

    def _advance(self, row: _Row, token: int, entry: TokenLogprobs | None) -> bool:
        """Take one new token for a row; True when the row is finished."""
        if row.request.cancelled:
            self._finish(row, None)
            return True
        if row.logprobs is not None and entry is not None:
            row.logprobs.append(entry)
        state, params = row.state, row.state.params
        if state.stops_on(token):
            self._finish(row, "stop")
            return True
        row.stream.add(token)
        if row.stream.stopped or state.constraint_finished:
            self._finish(row, "stop")
        elif state.generated >= params.max_tokens or (
            self.max_positions is not None
            and row.prompt_len + state.generated >= self.max_positions
        ):
            self._finish(row, "length")
        else:
            delta = row.stream.releasable()
            if delta:
                _send(row.request, TextDelta(delta, row.index, self._unsent_logprobs(row)))
            return False
        return True

    def _unsent_logprobs(self, row: _Row) -> list[TokenLogprobs]:
        if row.logprobs is None:
            return []
        entries = row.logprobs[row.sent_logprobs :]
        row.sent_logprobs = len(row.logprobs)
        return entries

    def _finish(self, row: _Row, reason: FinishReason | None) -> None:
        row.done = True
        self.registry.release(row.adapter)  # a replaced version can go as soon as nobody uses it
        if reason is None:  # cancelled: nobody listens
            return
        delta = row.stream.releasable(final=True)
        unsent = self._unsent_logprobs(row)
        if delta or unsent:
            _send(row.request, TextDelta(delta, row.index, unsent))
        _send(
            row.request,
            Finished(
                row.stream.text,
                row.state.generated,
                reason,
                row.index,
                list(row.state.output_ids),
                row.logprobs,
            ),
        )

    # -- adapters and ShifCon -----------------------------------------------------------

    def _close_context(self) -> None:
        if self._context is not None:
            self._context.close()
            self._context, self._context_key, self._context_extra = None, (), {}
            self._context_regathers = False

    def _context_for(
        self, adapters: Sequence[LoadedAdapter | None], langs: Sequence[str | None]
    ) -> dict[str, Any]:
        """Adapters and ShifCon shifts for a forward over these rows; returns extra kwargs.

        PEFT's adapter switches walk the whole model (tens of milliseconds for a small one),
        so the context stays open while the next forward needs the same one: rows that all
        use one adapter (or none) need the same context however many join or leave, and so
        does a prefill of newcomers on that adapter. Rows on several adapters go through
        stacked LoRA, gathered per row: once open, that context takes any later rows (a
        prefill, rows that joined or left) by regathering them, until a reload check closes
        it. ShifCon's shifts are per row: with ShifCon every change of rows re-enters.
        """
        names = tuple(a.peft_name if a is not None else None for a in adapters)
        if self.shifcon is not None:
            key: tuple[Any, ...] = (names, tuple(langs))
        elif self._context_regathers:
            key = names
        else:
            key = ("one", names[0]) if len(set(names)) == 1 else names
        if self._context is not None and key == self._context_key:
            return self._context_extra
        if self._context is not None and self._context_regathers:
            extra = self.registry.rebatch(adapters)
            if extra is not None:
                self._context_key, self._context_extra = names, extra
                return extra
        self._close_context()
        stack = contextlib.ExitStack()
        try:
            extra = stack.enter_context(self.registry.batch(list(adapters)))
            if self.shifcon is not None:
                known = set(self.shifcon.languages)
                shifts = [lang if lang in known else self.shifcon.dominant for lang in langs]
                stack.enter_context(self.shifcon.apply(self.model, shifts))
        except BaseException:
            stack.close()
            raise
        self._context, self._context_key, self._context_extra = stack, key, extra
        # A stacked batch (rows on several adapters) can take later rows by regathering.
        self._context_regathers = (
            self.shifcon is None
            and len(set(names)) > 1
            and self.registry.rebatch(adapters) is not None
        )
        if self._context_regathers:
            self._context_key = names
        return extra


def _send(request: GenerationRequest, event: Event) -> None:
    try:
        request.sink(event)
    except Exception:  # a broken sink (closed event loop) must not stop the worker
        logger.exception("dropping an event of request %s", request.id)
        request.cancel()


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    config = getattr(model, "generation_config", None)
    found = getattr(config, "eos_token_id", None)
    if isinstance(found, int):
        ids.add(found)
    elif isinstance(found, list | tuple):
        ids.update(int(x) for x in found)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)


def _text_config(model: Any) -> Any:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    return getattr(config, "text_config", None) or config


def _max_positions(model: Any) -> int | None:
    value = getattr(_text_config(model), "max_position_embeddings", None)
    return int(value) if value else None


def _vocab_size(model: Any) -> int | None:
    """Rows of the model's output layer (what logits and token ids range over)."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is not None and hasattr(embeddings, "num_embeddings"):
        return int(embeddings.num_embeddings)
    value = getattr(_text_config(model), "vocab_size", None)
    return int(value) if value else None
