"""A thin routing front: language identification picks ``model``, an upstream server answers.

In front of vLLM (or of another lingualift server) clients keep sending
``model=auto`` (or the base model's id): the front identifies the language of
the prompt (for chat, of the last user message), rewrites ``model`` to that
language's adapter id when the upstream serves one (it reads the upstream's
``/v1/models``, refreshed every ``refresh_s``), or to the base model's id, and
forwards the request unchanged otherwise, streaming the answer back byte for
byte. Requests that name a language are passed through as they are.

It writes the same traffic log as the server, so the drift monitor works at
scale too. The adapter of a row is the upstream's ``X-Lingualift-Adapter``
header when it sends one (a lingualift server: ``sw/v3``), else the adapter id
the request was routed to (vLLM: ``sw``, it does not report versions).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from lingualift.errors import LingualiftError
from lingualift.langid import LanguageIdentifier
from lingualift.languages import normalize_language
from lingualift.serving import protocol as oa
from lingualift.serving.app import ADAPTER_HEADER
from lingualift.serving.config import ServeConfig
from lingualift.serving.http import check_bearer, install_error_handlers, read_limited_body
from lingualift.serving.routing import AUTO, IDENTIFY_CHARS
from lingualift.serving.traffic import TrafficLog, traffic_row

ROUTE_HEADER = "X-Lingualift-Route"
_KEEP_HEADERS = ("content-type", "x-request-id", ADAPTER_HEADER.lower())
_MAX_TEED = 4 * 1024 * 1024  # bytes of an answer kept to read its usage for the log


class RoutingFront:
    """The front's state and handlers (build it with :func:`create_front_app`)."""

    def __init__(
        self,
        upstream: str,
        *,
        base_model: str,
        identifier: LanguageIdentifier,
        api_key: str | None = None,
        traffic: TrafficLog | None = None,
        log_text: bool = True,
        max_body_bytes: int = 1_048_576,
        refresh_s: float = 30.0,
        timeout_s: float = 600.0,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.base_model = base_model
        self.identifier = identifier
        self.api_key = api_key
        self.traffic = traffic
        self.log_text = log_text
        self.max_body_bytes = max_body_bytes
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
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
                response = await self.client.get(f"{self.upstream}/v1/models", headers=headers)
                response.raise_for_status()
                ids = [str(m.get("id")) for m in response.json().get("data", [])]
            except (httpx.HTTPError, ValueError, AttributeError):
                return self._langs  # keep the last known set; the request itself will tell
            self._langs = {i for i in ids if i not in (AUTO, self.base_model) and _is_code(i)}
            self._langs_at = time.monotonic()
            return self._langs

    async def forward(self, request: Request, path: str) -> Response:
        started, received = time.perf_counter(), dt.datetime.now(dt.UTC)
        raw = await read_limited_body(request, self.max_body_bytes)
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise oa.ApiError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(data, dict) or not isinstance(data.get("model"), str):
            raise oa.ApiError(
                400, "The request body must be a JSON object with a model.", param="model"
            )
        text = _routing_text(data)
        requested = data["model"]
        lang, detected, confidence, target = None, False, None, requested
        if requested in (AUTO, self.base_model):
            found = self.identifier.identify((text or "")[:IDENTIFY_CHARS])
            lang, detected, confidence = found.lang, True, found.confidence
            served = await self.upstream_languages(request.headers.get("authorization"))
            target = found.lang if found.lang in served else self.base_model
            data["model"] = target
        elif _is_code(requested):
            lang = requested
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

        async def relay() -> AsyncIterator[bytes]:
            kept = bytearray()
            status = 499
            try:
                async for piece in response.aiter_raw():
                    if len(kept) < _MAX_TEED:
                        kept.extend(piece)
                    if b"data: [DONE]" in piece:  # complete: a client may hang up right after it
                        status = response.status_code
                    yield piece
                status = response.status_code
            finally:
                self._log(
                    received,
                    started,
                    requested,
                    lang,
                    detected,
                    confidence,
                    _served_adapter(response, target, self.base_model),
                    text,
                    bytes(kept),
                    status,
                )

        return StreamingResponse(
            relay(),
            status_code=response.status_code,
            headers=out_headers,
            background=BackgroundTask(response.aclose),
        )

    def _log(
        self,
        received: dt.datetime,
        started: float,
        model: str,
        lang: str | None,
        detected: bool,
        confidence: float | None,
        adapter: str | None,
        text: str | None,
        body: bytes,
        status: int,
    ) -> None:
        if self.traffic is None:
            return
        usage = _usage_of(body)
        self.traffic.write(
            traffic_row(
                request_id=f"front-{uuid.uuid4().hex}",
                received=received,
                model=model,
                lang=lang,
                lang_detected=detected,
                lang_confidence=confidence,
                adapter=adapter,
                text=text,
                log_text=self.log_text,
                prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"),
                latency_ms=(time.perf_counter() - started) * 1000.0,
                status=status,
            )
        )

    async def models(self, request: Request) -> Response:
        assert self.client is not None
        headers = {}
        if "authorization" in request.headers:
            headers["authorization"] = request.headers["authorization"]
        try:
            response = await self.client.get(f"{self.upstream}/v1/models", headers=headers)
        except httpx.HTTPError as exc:
            raise oa.ApiError(
                502,
                f"The upstream server did not answer ({type(exc).__name__}).",
                type="server_error",
            ) from None
        body = response.json()
        if response.status_code == 200 and not any(
            m.get("id") == AUTO for m in body.get("data", [])
        ):
            body["data"].append(
                {"id": AUTO, "object": "model", "created": 0, "owned_by": "lingualift"}
            )
        return JSONResponse(body, status_code=response.status_code)

    async def check_key(self, request: Request) -> None:
        check_bearer(request, self.api_key)


def create_front_app(front: RoutingFront) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        front.client = httpx.AsyncClient(timeout=httpx.Timeout(front.timeout_s, connect=5.0))
        try:
            yield
        finally:
            await front.client.aclose()
            if front.traffic is not None:
                await asyncio.to_thread(front.traffic.close)

    app = FastAPI(
        title="lingualift routing front", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    install_error_handlers(app)
    guarded = [Depends(front.check_key)]

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "upstream": front.upstream}

    @app.get("/v1/models", dependencies=guarded)
    async def models(request: Request) -> Response:
        return await front.models(request)

    @app.post("/v1/completions", dependencies=guarded)
    async def completions(request: Request) -> Response:
        return await front.forward(request, "/v1/completions")

    @app.post("/v1/chat/completions", dependencies=guarded)
    async def chat(request: Request) -> Response:
        return await front.forward(request, "/v1/chat/completions")

    return app


def build_front(config: ServeConfig) -> FastAPI:
    """The front for ``serve engine=route`` (same log, key and language settings as the server)."""
    from lingualift.serving.job import traffic_folder

    assert config.upstream
    traffic = None
    if config.log_traffic:
        traffic = TrafficLog(
            traffic_folder(config),
            max_bytes=config.log_max_bytes,
            max_seconds=config.log_max_seconds,
            queue_size=config.log_queue_size,
        )
    front = RoutingFront(
        config.upstream,
        base_model=config.served_model_name,
        identifier=LanguageIdentifier(config.lang_min_confidence),
        api_key=config.resolved_api_key(),
        traffic=traffic,
        log_text=config.log_text,
        max_body_bytes=config.max_body_bytes,
        refresh_s=config.reload_interval_s,
    )
    return create_front_app(front)


def _served_adapter(response: httpx.Response, target: str, base_model: str) -> str | None:
    """The adapter that answered: the upstream's header (lingualift), else the adapter id the
    request went to (vLLM does not report versions); None for the base model and for errors."""
    if response.status_code != 200:
        return None
    header = response.headers.get(ADAPTER_HEADER)
    if header:
        return None if header == "base" else header
    return target if target != base_model and _is_code(target) else None


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
