"""The OpenAI-compatible HTTP API (FastAPI) in front of the batching engine.

Routes (:mod:`~lingualift.serving.api_router`, shared with the routing front):
``POST /v1/completions``, ``POST /v1/chat/completions`` (both with ``stream``),
``GET /v1/models`` and ``/v1/models/{id}``, ``GET /health`` and ``GET /metrics``
(Prometheus). Every answer is JSON in OpenAI's shapes, errors included
(``{"error": {"message", "type", "param", "code"}}``), plus a ``lingualift``
field and an ``X-Lingualift-Adapter`` header naming the adapter version that
served it (``sw/v3``, or ``base``).

The event loop never runs the model: a handler validates, tokenizes, picks
the language, submits to the :class:`~lingualift.serving.engine.Engine` and
awaits its events, which the worker thread hands over with
``call_soon_threadsafe``. Each generation request becomes one traffic-log row
when it ends (errors included, with what was known).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from lingualift.chat import ChatTemplate, resolve_chat_template
from lingualift.langid import LanguageIdentifier
from lingualift.serving import protocol as oa
from lingualift.serving.answers import Answer, Kind
from lingualift.serving.api_router import (
    ADAPTER_HEADER,
    CHAT_COMPLETIONS,
    CHAT_TEMPLATE_HEADER,
    COMPLETIONS,
    openai_app,
)
from lingualift.serving.constraints import (
    JsonConstraints,
    NoJsonConstraints,
    load_json_constraints,
)
from lingualift.serving.decoding import SamplingParams, sampling_defaults
from lingualift.serving.engine import (
    Engine,
    EngineStoppedError,
    Event,
    Failed,
    Finished,
    GenerationRequest,
    QueueFullError,
    Started,
    TextDelta,
)
from lingualift.serving.http import check_bearer, known_fields, read_limited_body, relative_text
from lingualift.serving.metrics import ServingMetrics
from lingualift.serving.routing import AUTO, choose_language
from lingualift.serving.traffic import RequestRecord, TrafficLog

ROUTES = {"completion": COMPLETIONS, "chat": CHAT_COMPLETIONS}


class AsyncEvents:
    """An event sink for the engine that delivers into an asyncio queue on the server's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def __call__(self, event: Event) -> None:  # runs on the worker thread
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    async def get(self) -> Event:
        return await self.queue.get()


class ServingApp:
    """The API's handlers (an :class:`~lingualift.serving.api_router.OpenAIHandler`) and the
    components they use (build it with :func:`create_app`)."""

    def __init__(
        self,
        engine: Engine,
        *,
        model_name: str,
        identifier: LanguageIdentifier,
        metrics: ServingMetrics,
        traffic: TrafficLog | None,
        api_key: str | None,
        max_tokens_limit: int,
        default_max_tokens: int,
        max_body_bytes: int,
        log_text: bool,
        chat_template: ChatTemplate,
    ) -> None:
        self.engine = engine
        self.model_name = model_name
        self.identifier = identifier
        self.metrics = metrics
        self.traffic = traffic
        self.api_key = api_key
        self.max_tokens_limit = max_tokens_limit
        self.default_max_tokens = default_max_tokens
        self.max_body_bytes = max_body_bytes
        self.log_text = log_text
        self.chat_template = chat_template
        self.created = int(time.time())
        self.defaults = sampling_defaults(engine.model)
        """What a request leaves out: the model's generation_config, as vLLM reads it."""
        self.token_strings = oa.TokenStrings(engine.tokenizer)
        self._constraints: JsonConstraints | NoJsonConstraints | None = None
        self._constraints_lock = asyncio.Lock()

    # -- guards -------------------------------------------------------------------------

    async def check_key(self, request: Request) -> None:
        check_bearer(request, self.api_key)

    async def read_body(self, request: Request) -> bytes:
        raw = await read_limited_body(request, self.max_body_bytes)
        request.state.raw_body = raw  # what the traffic-log row of a refused request can tell
        return raw

    # -- simple routes ------------------------------------------------------------------

    async def model(self, request: Request, model_id: str) -> dict[str, Any]:
        """One entry of :meth:`models` (``GET /v1/models/{id}``), or a 404."""
        for entry in self.model_list()["data"]:
            if entry["id"] == model_id:
                return entry
        raise oa.ApiError(
            404,
            f"The model {model_id!r} does not exist on this server.",
            param="model",
            code="model_not_found",
        )

    async def models(self, request: Request) -> dict[str, Any]:
        return self.model_list()

    def model_list(self) -> dict[str, Any]:
        """The base model's id, each served language, and 'auto'.

        Entries carry vLLM's ``root`` and ``parent``: an adapter's root is its version in the
        store (``sw/v3``, store-relative like everything the API shows) and its parent the base
        model's id; the base model and ``auto`` have the base model's id as root and no parent.
        """

        def entry(
            model_id: str, info: dict[str, Any], root: str, parent: str | None = None
        ) -> dict[str, Any]:
            return {
                "id": model_id,
                "object": "model",
                "created": self.created,
                "owned_by": "lingualift",
                "root": root,
                "parent": parent,
                "lingualift": info,
            }

        base = self.model_name
        adapters = self.engine.registry.snapshot()
        data = [entry(base, {"adapter": None, "routes": "auto"}, base)]
        data += [
            entry(lang, {"adapter": label, "lang": lang, "parent": base}, label, base)
            for lang, label in adapters.items()
        ]
        data.append(entry(AUTO, {"adapter": None, "routes": "auto"}, base))
        return {"object": "list", "data": data}

    async def prometheus(self) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def health(self) -> JSONResponse:
        """Liveness and what is served, in store-relative names only: /health needs no key, so
        it shows no absolute path (a refusal's message is cut to its path in the store)."""
        registry = self.engine.registry
        root = registry.store.root if registry.store is not None else None
        body = {
            "status": "ok" if self.engine.alive else "stopped",
            "model": relative_text(self.model_name, root),
            "adapters": registry.snapshot(),
            "loaded": registry.loaded_names(),
            "refused": {lang: relative_text(why, root) for lang, why in registry.failures.items()},
            "queue_depth": self.engine.queue_depth,
            "active": self.engine.active_requests,
        }
        return JSONResponse(body, status_code=200 if self.engine.alive else 503)

    # -- generation ---------------------------------------------------------------------

    async def completions(self, request: Request) -> Response:
        return await self.generate(request, "completion")

    async def chat_completions(self, request: Request) -> Response:
        return await self.generate(request, "chat")

    async def generate(self, request: Request, kind: Kind) -> Response:
        record = RequestRecord(
            ("cmpl-" if kind == "completion" else "chatcmpl-") + uuid.uuid4().hex, ROUTES[kind]
        )
        try:
            return await self._generate(request, kind, record)
        except oa.ApiError as exc:
            record.status = exc.status
            self._log_refused(request, record)
            raise
        except Exception:  # a bug: still one row (status 500), and the error handler answers
            record.status = 500
            self._log_refused(request, record)
            raise

    def _log_refused(self, request: Request, record: RequestRecord) -> None:
        """The row of a request that ended before its answer, with what was known: a body
        that failed validation still names its model and prompt when those parts were sound."""
        if record.model is None:
            model, text = known_fields(getattr(request.state, "raw_body", b""))
            record.model = model
            record.text = record.text if record.text is not None else text
        self._finish(record)

    def _chat_prompt(self, body: oa.ChatCompletionRequest) -> str:
        """The conversation through the chat template (the model's, the one chosen with
        ``chat_template=``, or the default), or a 400 when the template refuses the turns."""
        try:
            return self.chat_template.render(self.engine.tokenizer, body.template_messages())
        except Exception as exc:  # jinja raises for turns a template does not accept
            raise oa.ApiError(
                400,
                f"The model's chat template cannot render these messages ({exc}).",
                param="messages",
            ) from None

    def _template_headers(self, kind: Kind) -> dict[str, str]:
        """Says so on a chat answer when the default template stood in for a missing one."""
        if kind == "chat" and self.chat_template.is_default:
            return {CHAT_TEMPLATE_HEADER: self.chat_template.describe()}
        return {}

    async def _generate(self, request: Request, kind: Kind, record: RequestRecord) -> Response:
        raw = await self.read_body(request)
        body: oa.CompletionRequest | oa.ChatCompletionRequest
        if kind == "completion":
            body = oa.parse_request(oa.CompletionRequest, raw)
        else:
            body = oa.parse_request(oa.ChatCompletionRequest, raw)
        record.model, record.user = body.model, body.end_user()
        prompt_ids, prompt_texts = self._prompts(body)
        record.text = prompt_texts[0]  # what routing reads and the monitor sees
        record.prompt_tokens = sum(len(ids) for ids in prompt_ids)
        choice = choose_language(
            body.model,
            record.text,
            served=self.engine.registry.served_languages(),
            auto_names=(AUTO, self.model_name),
            identifier=self.identifier,
        )
        record.lang, record.lang_detected = choice.lang, choice.detected
        record.lang_confidence = choice.confidence
        n = body.choices_per_prompt
        if len(prompt_ids) * n > oa.MAX_CHOICES:
            raise oa.ApiError(
                400,
                f"This request asks for {len(prompt_ids) * n} choices (prompts x n); this server "
                f"answers at most {oa.MAX_CHOICES} per request. Split it.",
                param="n" if n > 1 else "prompt",
            )
        max_tokens = self._max_tokens(body, max(len(ids) for ids in prompt_ids))
        limit = self.engine.max_positions
        longest = max(len(ids) for ids in prompt_ids)
        if limit is not None and longest + max_tokens > limit:
            raise oa.ApiError(
                400,
                f"This model's maximum context length is {limit} tokens; the prompt has "
                f"{longest} and max_tokens asks for {max_tokens} more. Shorten the prompt "
                "or lower max_tokens.",
                param="messages" if kind == "chat" else "prompt",
                code="context_length_exceeded",
            )
        sampling = await self._sampling(body, max_tokens)
        if kind == "chat" and self.chat_template.stop:
            # A chat turn also ends where the template's turns end (the default's "\nUser:").
            sampling = dataclasses.replace(
                sampling, stop=(*sampling.stop, *self.chat_template.stop)
            )
        events = AsyncEvents(asyncio.get_running_loop())
        job = GenerationRequest(prompt_ids, sampling, events, lang=choice.lang, n=n)
        try:
            self.engine.submit(job)
        except QueueFullError:
            self.metrics.rejected.inc()
            raise oa.ApiError(
                429,
                f"The server is busy ({self.engine.queue_depth} requests waiting); retry shortly.",
                type="rate_limit_error",
                code="rate_limit_exceeded",
                headers={"Retry-After": "1"},
            ) from None
        except EngineStoppedError:
            raise oa.ApiError(503, "The server is shutting down.", type="server_error") from None
        try:
            started = await events.get()
        except asyncio.CancelledError:
            job.cancel()
            raise
        if isinstance(started, Failed):
            raise oa.ApiError(started.status, started.message, type="server_error")
        assert isinstance(started, Started)
        self._count_route(record, started)
        info = {
            "adapter": started.adapter,
            "lang": choice.lang,
            "lang_detected": choice.detected,
            "lang_confidence": choice.confidence,
            "fallback": started.fallback,
        }
        answer = Answer(
            kind=kind,
            request_id=record.request_id,
            created=oa.created_now(),
            model=body.model,
            prompt_ids=prompt_ids,
            prompt_texts=prompt_texts,
            n=n,
            echo=isinstance(body, oa.CompletionRequest) and bool(body.echo),
            logprobs=sampling.logprobs,
            info=info,
            fingerprint=started.adapter or "base",
            strings=self.token_strings,
            lock=self.engine.tokenizer_lock,
        )
        headers = {ADAPTER_HEADER: started.adapter or "base", "X-Request-Id": record.request_id}
        headers.update(self._template_headers(kind))
        if body.stream:
            stream = self._stream(answer, job, events, record, started, body.include_usage())
            return StreamingResponse(stream, media_type="text/event-stream", headers=headers)
        return JSONResponse(
            await self._collect(answer, job, events, record, started), headers=headers
        )

    def _prompts(
        self, body: oa.CompletionRequest | oa.ChatCompletionRequest
    ) -> tuple[list[list[int]], list[str]]:
        """Each prompt's token ids and text: completions' prompts (text is tokenized with the
        model's special tokens, ids are used as given), or the rendered conversation."""
        if isinstance(body, oa.CompletionRequest):
            ids: list[list[int]] = []
            texts: list[str] = []
            skip = body.skip_special_tokens is not False
            for row in body.rows(self.engine.vocab_size)[:: body.choices_per_prompt]:
                if isinstance(row.prompt, str):
                    ids.append(self.engine.encode(row.prompt))
                    texts.append(row.prompt)
                else:
                    ids.append(list(row.prompt))
                    texts.append(self.engine.decode(row.prompt, skip_special_tokens=skip))
            return ids, texts
        prompt = self._chat_prompt(body)
        # The template writes the special tokens itself; routing reads the last user message.
        return [self.engine.encode(prompt, add_special_tokens=False)], [body.routing_text()]

    def _max_tokens(self, body: oa.OpenAIRequest, prompt_tokens: int) -> int:
        """The request's max_tokens (400 above the limit); without one, the model's
        generation_config max_new_tokens or the server's default, cut to what the context has
        left (as vLLM does)."""
        asked = body.requested_max_tokens()
        if asked is None:
            default = min(
                self.defaults.max_tokens or self.default_max_tokens, self.max_tokens_limit
            )
            room = self.engine.max_positions
            left = None if room is None else room - prompt_tokens
            return default if left is None or left < 1 else min(default, left)
        if asked > self.max_tokens_limit:
            raise oa.ApiError(
                400,
                f"max_tokens is {asked}; this server allows at most {self.max_tokens_limit}.",
                param="max_completion_tokens"
                if getattr(body, "max_completion_tokens", None)
                else "max_tokens",
                code="max_tokens_too_large",
            )
        return asked

    async def _sampling(self, body: oa.OpenAIRequest, max_tokens: int) -> SamplingParams:
        """The rows' sampling settings (400s for what the model cannot take); JSON mode's
        grammar is built off the event loop (the first one reads the whole vocabulary)."""
        vocab = self.engine.vocab_size or len(self.engine.tokenizer)
        if body.json_schema() is None:
            return oa.sampling_params(
                body, max_tokens=max_tokens, vocab_size=vocab, defaults=self.defaults
            )
        constraints = await self._json_constraints()
        return await asyncio.to_thread(
            oa.sampling_params,
            body,
            max_tokens=max_tokens,
            vocab_size=vocab,
            defaults=self.defaults,
            constraints=constraints,
        )

    async def _json_constraints(self) -> JsonConstraints | NoJsonConstraints:
        """JSON mode for the model's tokenizer, made on first use and kept."""
        async with self._constraints_lock:
            if self._constraints is None:

                def load() -> JsonConstraints | NoJsonConstraints:
                    with self.engine.tokenizer_lock:
                        return load_json_constraints(
                            self.engine.tokenizer,
                            self.engine.vocab_size or len(self.engine.tokenizer),
                            sorted(self.engine.eos_ids),
                        )

                self._constraints = await asyncio.to_thread(load)
            return self._constraints

    async def _collect(
        self,
        answer: Answer,
        job: GenerationRequest,
        events: AsyncEvents,
        record: RequestRecord,
        started: Started,
    ) -> dict[str, Any]:
        finished: list[Finished] = []
        first = True
        try:
            while len(finished) < answer.choices:
                event = await events.get()
                if isinstance(event, TextDelta) and first:
                    first = False
                    self.metrics.first_token.observe(time.perf_counter() - record.started)
                elif isinstance(event, Failed):
                    raise oa.ApiError(event.status, event.message, type="server_error")
                elif isinstance(event, Finished):
                    finished.append(event)
        except asyncio.CancelledError:
            job.cancel()
            raise
        record.completion_tokens = sum(done.completion_tokens for done in finished)
        self._finish(record)
        return answer.whole(started, finished)

    async def _stream(
        self,
        answer: Answer,
        job: GenerationRequest,
        events: AsyncEvents,
        record: RequestRecord,
        started: Started,
        include_usage: bool,
    ) -> AsyncIterator[bytes]:
        record.status = 499  # until the stream ends: the client went away
        try:
            for chunk in answer.opening(started):
                yield chunk
            first, ended, completion_tokens = True, 0, 0
            while ended < answer.choices:
                event = await events.get()
                if isinstance(event, TextDelta):
                    if first:
                        first = False
                        self.metrics.first_token.observe(time.perf_counter() - record.started)
                    yield answer.delta(event)
                elif isinstance(event, Finished):
                    ended += 1
                    completion_tokens += event.completion_tokens
                    yield answer.finish(event)
                elif isinstance(event, Failed):
                    record.status = event.status
                    yield oa.sse(oa.error_body(event.message, "server_error"))
                    return
            record.completion_tokens = completion_tokens
            if include_usage:
                yield answer.usage_chunk(started.prompt_tokens, completion_tokens)
            record.status = 200  # complete: a client may hang up right after [DONE]
            yield oa.SSE_DONE
        finally:
            if record.status == 499:
                job.cancel()
            self._finish(record)

    def _count_route(self, record: RequestRecord, started: Started) -> None:
        record.adapter = started.adapter
        self.metrics.by_language.labels(record.lang or "unknown").inc()
        self.metrics.by_adapter.labels(started.adapter or "base").inc()
        if started.fallback:
            self.metrics.fallbacks.labels(started.fallback).inc()
        self.metrics.queue_wait.observe(started.queued_s)

    def _finish(self, record: RequestRecord) -> None:
        """Tokens, latency and the traffic-log row of a generation request that ended."""
        self.metrics.latency.labels(record.route).observe(record.latency_s)
        if record.status == 200:
            self.metrics.prompt_tokens.inc(record.prompt_tokens or 0)
            self.metrics.completion_tokens.inc(record.completion_tokens or 0)
        if self.traffic is not None and self.traffic.write(record.row(self.log_text)):
            self.metrics.log_rows.inc()


def create_app(
    engine: Engine,
    *,
    model_name: str,
    identifier: LanguageIdentifier | None = None,
    metrics: ServingMetrics | None = None,
    traffic: TrafficLog | None = None,
    api_key: str | None = None,
    max_tokens_limit: int = 1024,
    default_max_tokens: int = 128,
    max_body_bytes: int = 1_048_576,
    log_text: bool = True,
    chat_template: ChatTemplate | None = None,
) -> FastAPI:
    """The FastAPI app; its lifespan starts the engine and, at shutdown, stops it and closes
    the traffic log (so the last segment is flushed and renamed).

    ``chat_template`` renders chat requests; without one, the tokenizer's own, else the
    documented default (:func:`lingualift.chat.resolve_chat_template`).
    """
    from lingualift.langid import default_identifier

    metrics = metrics or ServingMetrics()
    metrics.track(
        lambda: engine.queue_depth,
        lambda: engine.active_requests,
        lambda: len(engine.registry.loaded_names()),
    )
    if traffic is not None:
        traffic.on_drop = metrics.log_dropped.inc
    service = ServingApp(
        engine,
        model_name=model_name,
        identifier=identifier or default_identifier(),
        metrics=metrics,
        traffic=traffic,
        api_key=api_key,
        max_tokens_limit=max_tokens_limit,
        default_max_tokens=default_max_tokens,
        max_body_bytes=max_body_bytes,
        log_text=log_text,
        chat_template=chat_template or resolve_chat_template(engine.tokenizer),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            await asyncio.to_thread(engine.stop)
            if traffic is not None:
                await asyncio.to_thread(traffic.close)

    app = openai_app(service, title="lingualift", lifespan=lifespan, metrics=metrics)
    app.state.service = service
    return app
