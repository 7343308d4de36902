"""A thin routing front: language identification picks ``model``, an upstream server answers.

In front of vLLM (or of another lingualift server) clients keep sending
``model=auto`` (or the base model's id): the front identifies the language of
the prompt (for chat, of the last user message), rewrites ``model`` to that
language's adapter id when the upstream serves one (it reads the upstream's
``/v1/models``, refreshed every ``refresh_s``), or to the base model's id, and
forwards the request unchanged otherwise, streaming the answer back byte for
byte. Requests that name a language are passed through as they are.

It answers the same routes as the server (:mod:`~lingualift.serving.api_router`),
with the same key, body limit and error shapes, counts its requests in its own
``/metrics`` (requests, latency, languages, adapters, log rows), and writes the
same traffic log as the server, so the drift monitor works at scale too. The adapter of a row is the upstream's ``X-Lingualift-Adapter``
header when it sends one (a lingualift server: ``sw/v3``), else the adapter id
the request was routed to (vLLM: ``sw``, it does not report versions).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.background import BackgroundTask

from lingualift.errors import LingualiftError
from lingualift.langid import LanguageIdentifier
from lingualift.languages import normalize_language
from lingualift.serving import protocol as oa
from lingualift.serving.api_router import (
    ADAPTER_HEADER,
    CHAT_COMPLETIONS,
    COMPLETIONS,
    MODELS,
    openai_app,
)
from lingualift.serving.http import check_bearer, read_limited_body
from lingualift.serving.metrics import ServingMetrics
from lingualift.serving.routing import AUTO, IDENTIFY_CHARS
from lingualift.serving.traffic import RequestRecord, TrafficLog
from lingualift.serving.vllm_sync import VllmAdapter, VllmAdapterSync

ROUTE_HEADER = "X-Lingualift-Route"
_KEEP_HEADERS = ("content-type", "x-request-id", ADAPTER_HEADER.lower())
_MAX_TEED = 4 * 1024 * 1024  # bytes of an answer kept to read its usage for the log


class RoutingFront:
    """The front's state and handlers (an :class:`~lingualift.serving.api_router.OpenAIHandler`;
    build its app with :func:`create_front_app`)."""

    def __init__(
        self,
        upstream: str,
        *,
        base_model: str,
        identifier: LanguageIdentifier,
        api_key: str | None = None,
        traffic: TrafficLog | None = None,
        metrics: ServingMetrics | None = None,
        log_text: bool = True,
        max_body_bytes: int = 1_048_576,
        refresh_s: float = 30.0,
        timeout_s: float = 600.0,
        sync: VllmAdapterSync | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.base_model = base_model
        self.identifier = identifier
        self.api_key = api_key
        self.traffic = traffic
        self.metrics = metrics or ServingMetrics()
        self.log_text = log_text
        self.max_body_bytes = max_body_bytes
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self.sync = sync
        """Keeps vLLM's adapters in step with the store and names where each language goes
        (None: route to the language ids the upstream lists)."""
        self.client: httpx.AsyncClient | None = None
        self._langs: set[str] = set()
        self._langs_at = -float("inf")
        self._langs_lock = asyncio.Lock()

    async def upstream_languages(self, authorization: str | None) -> set[str]:
        """Adapter ids the upstream serves (its /v1/models entries that are language codes)."""
        async with self._langs_lock:
            if time.monotonic() - self._langs_at < self.refresh_s:
                return self._langs
            headers = {"authorization": authorization} if authorization else {}
            assert self.client is not None
            try:
                response = await self.client.get(f"{self.upstream}{MODELS}", headers=headers)
                response.raise_for_status()
                ids = [str(m.get("id")) for m in response.json().get("data", [])]
            except (httpx.HTTPError, ValueError, AttributeError):
                return self._langs  # keep the last known set; the request itself will tell
            self._langs = {i for i in ids if i not in (AUTO, self.base_model) and _is_code(i)}
            self._langs_at = time.monotonic()
            return self._langs

    # -- routes -------------------------------------------------------------------------

    async def check_key(self, request: Request) -> None:
        check_bearer(request, self.api_key)

    async def health(self) -> dict[str, Any]:
        if self.sync is None:
            return {"status": "ok", "upstream": self.upstream}
        return {
            "status": "ok",
            "upstream": self.upstream,
            "adapters": self.sync.snapshot(),
            "refused": dict(self.sync.failures),
        }

    async def prometheus(self) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def models(self, request: Request) -> Response:
        """The upstream's models, plus 'auto' (which only the front resolves)."""
        status, body = await self._upstream_models(request)
        return JSONResponse(body, status_code=status)

    async def model(self, request: Request, model_id: str) -> Response:
        status, body = await self._upstream_models(request)
        if status != 200:
            return JSONResponse(body, status_code=status)
        for entry in body.get("data", []):
            if isinstance(entry, dict) and entry.get("id") == model_id:
                return JSONResponse(entry)
        raise oa.ApiError(
            404,
            f"The model {model_id!r} does not exist on this server.",
            param="model",
            code="model_not_found",
        )

    async def completions(self, request: Request) -> Response:
        return await self.forward(request, COMPLETIONS)

    async def chat_completions(self, request: Request) -> Response:
        return await self.forward(request, CHAT_COMPLETIONS)

    # -- forwarding ---------------------------------------------------------------------

    async def forward(self, request: Request, path: str) -> Response:
        record = RequestRecord(f"front-{uuid.uuid4().hex}", path)
        raw = await read_limited_body(request, self.max_body_bytes)
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise oa.ApiError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(data, dict) or not isinstance(data.get("model"), str):
            raise oa.ApiError(
                400, "The request body must be a JSON object with a model.", param="model"
            )
        record.text = _routing_text(data)
        record.model = data["model"]
        served = await self._route(data, record, request.headers.get("authorization"))
        try:
            return await self._send(path, data, record, served, request)
        except BaseException:
            if self.sync is not None:
                self.sync.release(served)
            raise

    async def _route(
        self, data: dict[str, Any], record: RequestRecord, authorization: str | None
    ) -> VllmAdapter | None:
        """Rewrite ``data['model']`` to where the request goes; with a sync, the adapter it
        holds (released when the request ends)."""
        requested = data["model"]
        if requested in (AUTO, self.base_model):
            found = self.identifier.identify((record.text or "")[:IDENTIFY_CHARS])
            record.lang, record.lang_detected, record.lang_confidence = (
                found.lang,
                True,
                found.confidence,
            )
            if self.sync is not None:
                served = self.sync.acquire(found.lang)
                data["model"] = served.name if served is not None else self.base_model
                return served
            langs = await self.upstream_languages(authorization)
            data["model"] = found.lang if found.lang in langs else self.base_model
            return None
        if self.sync is not None:
            code = _language_of(requested)
            served = self.sync.acquire(code)
            if served is not None:
                record.lang = code
                data["model"] = served.name
                return served
        if _is_code(requested):
            record.lang = requested
        return None

    async def _send(
        self,
        path: str,
        data: dict[str, Any],
        record: RequestRecord,
        served: VllmAdapter | None,
        request: Request,
    ) -> Response:
        target = data["model"]
        headers = {"content-type": "application/json"}
        if "authorization" in request.headers:
            headers["authorization"] = request.headers["authorization"]
        assert self.client is not None
        upstream_request = self.client.build_request(
            "POST", f"{self.upstream}{path}", content=json.dumps(data).encode(), headers=headers
        )
        try:
            response = await self.client.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            raise oa.ApiError(
                502,
                f"The upstream server {self.upstream} did not answer ({type(exc).__name__}).",
                type="server_error",
            ) from None
        out_headers = {k: v for k, v in response.headers.items() if k.lower() in _KEEP_HEADERS}
        out_headers[ROUTE_HEADER] = target
        if self.sync is not None:
            ok = response.status_code == 200
            record.adapter = served.label if ok and served is not None else None
            if ADAPTER_HEADER.lower() not in out_headers:  # vLLM does not name versions
                out_headers[ADAPTER_HEADER] = served.label if served is not None else "base"
        else:
            record.adapter = _served_adapter(response, target, self.base_model)
        ended = _Once(lambda: self.sync.release(served) if self.sync is not None else None)

        async def relay() -> AsyncIterator[bytes]:
            kept = bytearray()
            record.status = 499
            try:
                async for piece in response.aiter_raw():
                    if len(kept) < _MAX_TEED:
                        kept.extend(piece)
                    if b"data: [DONE]" in piece:  # complete: a client may hang up right after it
                        record.status = response.status_code
                    yield piece
                record.status = response.status_code
            finally:
                ended()
                usage = _usage_of(bytes(kept))
                record.prompt_tokens = usage.get("prompt_tokens")
                record.completion_tokens = usage.get("completion_tokens")
                self._finish(record)

        async def close() -> None:
            ended()  # also when the answer was never streamed (the client left first)
            await response.aclose()

        return StreamingResponse(
            relay(),
            status_code=response.status_code,
            headers=out_headers,
            background=BackgroundTask(close),
        )

    def _finish(self, record: RequestRecord) -> None:
        """Latency, routing counts and the traffic-log row of a forwarded request."""
        self.metrics.latency.labels(record.route).observe(record.latency_s)
        if record.status == 200:
            self.metrics.by_language.labels(record.lang or "unknown").inc()
            self.metrics.by_adapter.labels(record.adapter or "base").inc()
        if self.traffic is not None and self.traffic.write(record.row(self.log_text)):
            self.metrics.log_rows.inc()

    async def _upstream_models(self, request: Request) -> tuple[int, dict[str, Any]]:
        assert self.client is not None
        headers = {}
        if "authorization" in request.headers:
            headers["authorization"] = request.headers["authorization"]
        try:
            response = await self.client.get(f"{self.upstream}{MODELS}", headers=headers)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise oa.ApiError(
                502,
                f"The upstream server did not answer ({type(exc).__name__}).",
                type="server_error",
            ) from None
        if response.status_code == 200 and isinstance(body.get("data"), list):
            if self.sync is not None:
                body["data"] = self.sync.client_models(body["data"])
            if not any(isinstance(m, dict) and m.get("id") == AUTO for m in body["data"]):
                body["data"].append(
                    {"id": AUTO, "object": "model", "created": 0, "owned_by": "lingualift"}
                )
        return response.status_code, body


def create_front_app(front: RoutingFront) -> FastAPI:
    """The front's app; its lifespan opens the upstream client and starts the sync (if any) and,
    at shutdown, stops them and closes the traffic log."""
    if front.traffic is not None:
        front.traffic.on_drop = front.metrics.log_dropped.inc

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        front.client = httpx.AsyncClient(timeout=httpx.Timeout(front.timeout_s, connect=5.0))
        syncing = asyncio.create_task(front.sync.run(front.refresh_s)) if front.sync else None
        try:
            yield
        finally:
            if syncing is not None:
                syncing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await syncing
            await front.client.aclose()
            if front.traffic is not None:
                await asyncio.to_thread(front.traffic.close)

    return openai_app(
        front, title="lingualift routing front", lifespan=lifespan, metrics=front.metrics
    )


def _served_adapter(response: httpx.Response, target: str, base_model: str) -> str | None:
    """The adapter that answered: the upstream's header (lingualift), else the adapter id the
    request went to (vLLM does not report versions); None for the base model and for errors."""
    if response.status_code != 200:
        return None
    header = response.headers.get(ADAPTER_HEADER)
    if header:
        return None if header == "base" else header
    return target if target != base_model and _is_code(target) else None


class _Once:
    """Call ``action`` the first time the object is called, never again."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.action: Callable[[], None] | None = action

    def __call__(self) -> None:
        action, self.action = self.action, None
        if action is not None:
            action()


def _language_of(value: str) -> str | None:
    """The language code a model id names (``sw``, ``swa``, ``Swahili``), or None."""
    try:
        return normalize_language(value)
    except LingualiftError:
        return None


def _is_code(value: str) -> bool:
    try:
        return normalize_language(value) == value
    except LingualiftError:
        return False


def _routing_text(data: dict[str, Any]) -> str | None:
    if isinstance(data.get("prompt"), str):
        return data["prompt"]
    if (
        isinstance(data.get("prompt"), list)
        and data["prompt"]
        and isinstance(data["prompt"][0], str)
    ):
        return data["prompt"][0]
    messages = data.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):
                    return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return None


def _usage_of(body: bytes) -> dict[str, Any]:
    """``usage`` of a JSON answer, or of the last SSE chunk that carries one."""
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        data = json.loads(body)
        if isinstance(data, dict) and isinstance(data.get("usage"), dict):
            return data["usage"]
    for line in reversed(body.decode("utf-8", "replace").splitlines()):
        if line.startswith("data: {") and '"usage"' in line:
            with contextlib.suppress(ValueError):
                usage = json.loads(line[6:]).get("usage")
                if isinstance(usage, dict):
                    return usage
    return {}
