"""HTTP plumbing shared by the server and the routing front: auth, body limit, errors, counting.

Every error leaves in OpenAI's JSON shape (``{"error": {message, type, param,
code}}``), whether it comes from our checks, from routing (unknown path,
wrong method, a body FastAPI itself could not read) or from a bug.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lingualift.serving import protocol as oa
from lingualift.serving.metrics import ServingMetrics

logger = logging.getLogger(__name__)


def check_bearer(request: Request, api_key: str | None) -> None:
    """``Authorization: Bearer <key>`` must match ``api_key`` (no check when it is None)."""
    if api_key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), api_key.encode()
    ):
        raise oa.ApiError(
            401,
            "Incorrect or missing API key; send 'Authorization: Bearer <key>'.",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The request body, or a 413 once it passes ``limit`` bytes.

    An oversized body is still read (up to 16 times the limit) before the
    answer, so the client gets the 413 rather than a reset connection.
    """
    total, chunks = 0, []
    async for chunk in request.stream():
        total += len(chunk)
        if total <= limit:
            chunks.append(chunk)
        elif total > 16 * limit:
            break
    if total > limit:
        raise oa.ApiError(
            413,
            f"The request body is larger than this server's limit of {limit} bytes.",
            code="request_too_large",
        )
    return b"".join(chunks)


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s'\"/]+/)+([^\s'\"/]*)")
"""An absolute POSIX path inside a message (not the path part of a URL)."""
_SURROGATE = re.compile("[\ud800-\udfff]")


def relative_text(text: str, root: Path | None) -> str:
    """``text`` without absolute paths: those under ``root`` become relative to it
    (``sw/v3/adapter_model.safetensors``), any other is cut to its last part (``.../name``).

    For what anyone may read (``/health`` needs no key): where the store and the model live on
    the server's disk is not the client's business.
    """
    if root is not None:
        for prefix in {str(root), str(Path(root).resolve())}:
            text = text.replace(prefix.rstrip("/") + "/", "")
    return _ABSOLUTE_PATH.sub(lambda match: ".../" + match.group(1), text)


def known_fields(raw: bytes) -> tuple[str | None, str | None]:
    """``model`` and the routing text (the prompt, or the last user message) of a request body
    that failed validation, when those parts are sound; (None, None) for what cannot be read.

    The traffic log keeps a row for every refused request "with what was known": a body with
    ``"max_tokens": "10"`` still says which model and prompt it was for. Text holding a lone
    surrogate is left out (it cannot be written as UTF-8).
    """
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
        return None, None
    if not isinstance(data, dict):
        return None, None

    def clean(value: Any) -> str | None:
        return value if isinstance(value, str) and not _SURROGATE.search(value) else None

    prompt = data.get("prompt")
    if isinstance(prompt, list) and prompt:
        prompt = prompt[0]
    text = clean(prompt)
    messages = data.get("messages")
    if text is None and isinstance(messages, list):
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            text = clean(users[-1].get("content"))
    return clean(data.get("model")), text


def install_error_handlers(app: FastAPI) -> None:
    """Every error in OpenAI's JSON shape, from our checks and from routing alike."""

    @app.exception_handler(oa.ApiError)
    async def api_error(request: Request, exc: oa.ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = "Not found." if exc.status_code == 404 else str(exc.detail)
        return JSONResponse(
            oa.error_body(message, "invalid_request_error"), status_code=exc.status_code
        )

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s", request.url.path)
        return JSONResponse(
            oa.error_body("Internal server error.", "server_error"), status_code=500
        )


class RequestCounter:
    """ASGI middleware: ``lingualift_requests{route, status}`` for every HTTP request.

    Paths in ``known`` are counted under their own name; everything else (404s,
    ``/v1/models/<id>``) as 'other', so a scanner cannot grow the label set.
    """

    def __init__(self, app: Any, metrics: ServingMetrics, known: Collection[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.known = frozenset(known)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in self.known else "other"  # bounded label values
        status = 500

        async def counting_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.metrics.requests.labels(route, str(status)).inc()
