"""The batching engine: one worker thread owns the model, requests wait in a bounded queue.

torch modules are not safe to run from several threads at once, and PEFT's
adapter switches are global state, so a single worker thread does every
forward pass, every adapter load and delete, and every ShifCon hook. The
server's event loop only tokenizes, :meth:`Engine.submit` s and awaits events.

**Batching.** The worker takes the first waiting request, waits up to
``batch_wait_ms`` for more (up to ``max_batch_size``), and decodes them
together: rows of several languages in one forward per step, each row through
its own adapter (:meth:`~lingualift.adapters.registry.AdapterRegistry.batch`:
every adapter's matrices stacked per layer and gathered per row, or PEFT's
``adapter_names`` for adapter kinds that cannot be stacked; one active adapter,
or adapters off, when every row agrees, so single-language traffic pays nothing
for routing).
The queue is bounded: :meth:`~Engine.submit` raises :class:`QueueFullError`
instead of letting it grow (the server answers 429).

**Why our own decoding loop, not** ``model.generate`` **with a streamer.** A
``BaseStreamer`` would see each step's tokens, but ``generate`` fixes one
``temperature``/``top_p``/``max_new_tokens`` and one random generator for the
whole batch, keeps computing rows that already ended until the last one ends,
and cannot pick up a reloaded adapter between steps. The loop here is the
same few lines ``generate`` runs (a prefill with left padding and explicit
position ids, then one token per step on the KV cache, only the last
position's logits), plus per row: its own sampling settings and seeded
generator (:mod:`~lingualift.serving.decoding`), stop strings, ``max_tokens``,
and removal from the batch (and from the KV cache) the moment it finishes or
its client goes away. Tokens reach each request's event sink as they are
generated. Rows do not join a batch that is already decoding: a new request
waits for the next batch (static batching, simple and exact; continuous
batching is what vLLM is for, see :mod:`~lingualift.serving.vllm`).

**Hot reload.** Between batches, and between decoding steps, the worker polls
the :class:`~lingualift.adapters.registry.AdapterRegistry` every
``reload_interval_s``. A request pins the adapter version current when its
batch starts and releases it when it ends; replaced versions are deleted once
released.
"""

from __future__ import annotations

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
from lingualift.serving.decoding import SamplingParams, TextStream, next_tokens, row_generator

logger = logging.getLogger(__name__)

FinishReason = Literal["stop", "length"]
Fallback = Literal["no_adapter", "lang_unsure"]


@dataclasses.dataclass
class Started:
    """The request joined a batch: which adapter serves it, and after how long a wait."""

    adapter: str | None
    """Adapter version label ('sw/v3'), or None for the base model."""
    fallback: Fallback | None
    """Why the base model serves it, when it does."""
    prompt_tokens: int
    queued_s: float


@dataclasses.dataclass
class TextDelta:
    """New text of the completion (never half a character, never part of a stop string)."""

    text: str


@dataclasses.dataclass
class Finished:
    """The completion ended."""

    text: str
    completion_tokens: int
    finish_reason: FinishReason


@dataclasses.dataclass
class Failed:
    """The batch failed (the server keeps running)."""

    message: str


Event = Started | TextDelta | Finished | Failed
EventSink = Callable[[Event], None]
"""Called on the worker thread for each event; must return at once (hand it to a queue)."""


class QueueFullError(Exception):
    """The waiting queue is at ``max_queue``; try again later."""


class EngineStoppedError(Exception):
    """The engine is shutting down and accepts no new requests."""


@dataclasses.dataclass(eq=False)
class GenerationRequest:
    """One prompt to complete, with where its events go."""

    prompt_ids: list[int]
    sampling: SamplingParams
    sink: EventSink
    lang: str | None = None
    """Language of the request: its current adapter serves it (the base model when it has none
    or when None), and ShifCon shifts it when its vectors know the language."""
    id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    submitted: float = dataclasses.field(default_factory=time.monotonic)
    cancelled: bool = False
    """Set by the server when the client went away: the row leaves its batch at the next step."""

    def cancel(self) -> None:
        self.cancelled = True


@dataclasses.dataclass(eq=False)
class _Row:
    request: GenerationRequest
    adapter: LoadedAdapter | None
    stream: TextStream
    generator: Any
    generated: int = 0
    done: bool = False


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
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
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
        self.on_batch = on_batch
        self.tokenizer_lock = threading.Lock()
        """Held around every tokenizer call: the Rust tokenizer is not shared across threads."""
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_poll = time.monotonic() + reload_interval_s
        self._active = 0
        self.eos_ids = _eos_ids(registry.model, tokenizer)
        self.max_positions = _max_positions(registry.model)

    # -- the server's side --------------------------------------------------------------

    @property
    def model(self) -> Any:
        return self.registry.model

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch."""
        return self._queue.qsize()

    @property
    def active_requests(self) -> int:
        """Requests in the batch being decoded."""
        return self._active

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        with self.tokenizer_lock:
            return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        """The chat template applied to ``messages``, ending where the assistant's turn begins."""
        with self.tokenizer_lock:
            return self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

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
        """Finish the running batch, fail what still waits, and end the worker."""
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
        self._fail_waiting("the server is shutting down")

    # -- the worker ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._poll_if_due()
            wait = min(0.25, max(0.02, self._next_poll - time.monotonic()))
            try:
                first = self._queue.get(timeout=wait)
            except queue.Empty:
                continue
            if first is _STOP:
                break
            try:
                self._run_batch(self._gather(first))
            except Exception:  # never let the worker die: the server would hang
                logger.exception("batch failed")
        self._fail_waiting("the server is shutting down")

    def _gather(self, first: GenerationRequest) -> list[GenerationRequest]:
        batch = [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.max_batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is _STOP:
                self._stopping.set()
                break
            batch.append(item)
        return batch

    def _fail_waiting(self, message: str) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                _send(item, Failed(message))

    def _poll_if_due(self) -> bool:
        """Check the store for new versions when the interval is over; True on a change."""
        if time.monotonic() < self._next_poll:
            return False
        changed = False
        try:
            changed = self.registry.poll()
            changed |= self.registry.collect()
        except Exception:
            logger.exception("checking the adapter store failed")
        self._next_poll = time.monotonic() + self.reload_interval_s
        return changed

    def _run_batch(self, requests: list[GenerationRequest]) -> None:
        rows: list[_Row] = []
        device = _device(self.model)
        now = time.monotonic()
        for request in requests:
            if request.cancelled:
                continue
            adapter = self.registry.acquire(request.lang)
            fallback: Fallback | None = None
            if adapter is None:
                fallback = "lang_unsure" if request.lang is None else "no_adapter"
            rows.append(
                _Row(
                    request,
                    adapter,
                    TextStream(self.tokenizer, request.sampling.stop),
                    row_generator(request.sampling, device),
                )
            )
            started = Started(
                adapter.label if adapter else None,
                fallback,
                len(request.prompt_ids),
                now - request.submitted,
            )
            _send(request, started)
        if not rows:
            return
        self._active = len(rows)
        if self.on_batch is not None:
            self.on_batch(len(rows))
        try:
            self._decode(rows, device)
        except Exception as exc:
            logger.exception("decoding a batch of %d failed", len(rows))
            for row in rows:
                if not row.done:
                    _send(row.request, Failed(f"generation failed: {first_line(exc)}"))
        finally:
            for row in rows:
                if not row.done:
                    row.done = True
                    self.registry.release(row.adapter)
            self._active = 0
            with contextlib.suppress(Exception):
                self.registry.collect()

    def _decode(self, rows: list[_Row], device: Any) -> None:
        import torch

        pad_id = self.tokenizer.pad_token_id
        width = max(len(row.request.prompt_ids) for row in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):  # left padding: new tokens follow every prompt directly
            ids = row.request.prompt_ids
            input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[i, width - len(ids) :] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        stack = contextlib.ExitStack()
        try:
            extra = self._enter_row_context(stack, rows)
            with torch.inference_mode():
                out = self.model(
                    input_ids=input_ids,
                    attention_mask=attention,
                    position_ids=positions,
                    use_cache=True,
                    logits_to_keep=1,
                    **extra,
                )
                cache, logits = out.past_key_values, out.logits[:, -1, :]
                next_position = positions[:, -1] + 1
            while True:
                with torch.inference_mode():
                    tokens = next_tokens(
                        logits,
                        [row.request.sampling for row in rows],
                        [row.generator for row in rows],
                    )
                with self.tokenizer_lock:
                    keep = [
                        i
                        for i, (row, token) in enumerate(zip(rows, tokens.tolist(), strict=True))
                        if not self._advance(row, token)
                    ]
                if not keep:
                    return
                changed = len(keep) < len(rows)
                with torch.inference_mode():
                    if changed:  # finished rows leave the batch and the KV cache
                        index = torch.tensor(keep, device=device)
                        cache.batch_select_indices(index)
                        attention, next_position = attention[index], next_position[index]
                        tokens = tokens[index]
                        rows = [rows[i] for i in keep]
                if self._poll_if_due() or changed:
                    stack.close()
                    extra = self._enter_row_context(stack, rows)
                with torch.inference_mode():
                    attention = torch.cat([attention, attention.new_ones((len(rows), 1))], dim=1)
                    out = self.model(
                        input_ids=tokens[:, None],
                        attention_mask=attention,
                        position_ids=next_position[:, None],
                        past_key_values=cache,
                        use_cache=True,
                        logits_to_keep=1,
                        **extra,
                    )
                    cache, logits = out.past_key_values, out.logits[:, -1, :]
                    next_position = next_position + 1
        finally:
            stack.close()

    def _advance(self, row: _Row, token: int) -> bool:
        """Take one new token for a row; True when the row is finished."""
        if row.request.cancelled:
            self._finish(row, None)
            return True
        row.generated += 1
        params = row.request.sampling
        if token in self.eos_ids and not params.ignore_eos:
            self._finish(row, "stop")
            return True
        row.stream.add(token)
        if row.stream.stopped:
            self._finish(row, "stop")
        elif row.generated >= params.max_tokens or (
            self.max_positions is not None
            and len(row.request.prompt_ids) + row.generated >= self.max_positions
        ):
            self._finish(row, "length")
        else:
            delta = row.stream.releasable()
            if delta:
                _send(row.request, TextDelta(delta))
            return False
        return True

    def _finish(self, row: _Row, reason: FinishReason | None) -> None:
        row.done = True
        self.registry.release(row.adapter)  # a replaced version can go as soon as nobody uses it
        if reason is None:  # cancelled: nobody listens
            return
        delta = row.stream.releasable(final=True)
        if delta:
            _send(row.request, TextDelta(delta))
        _send(row.request, Finished(row.stream.text, row.generated, reason))

    def _enter_row_context(self, stack: contextlib.ExitStack, rows: list[_Row]) -> dict[str, Any]:
        """Adapters and ShifCon shifts for the batch's rows; returns extra forward kwargs."""
        extra = stack.enter_context(self.registry.batch([row.adapter for row in rows]))
        if self.shifcon is not None:
            known = set(self.shifcon.languages)
            langs = [
                row.request.lang if row.request.lang in known else self.shifcon.dominant
                for row in rows
            ]
            stack.enter_context(self.shifcon.apply(self.model, langs))
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


def _max_positions(model: Any) -> int | None:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    text_config = getattr(config, "text_config", None) or config
    value = getattr(text_config, "max_position_embeddings", None)
    return int(value) if value else None
