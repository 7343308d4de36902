"""The OpenAI-compatible route table, defined once for the server and the routing front.

:func:`openai_router` builds a FastAPI ``APIRouter`` whose endpoints call a
handler object (:class:`OpenAIHandler`), the way vLLM attaches a router per
endpoint group to its app: the server's handlers
(:class:`~lingualift.serving.app.ServingApp`) answer with the engine, the
front's (:class:`~lingualift.serving.front.RoutingFront`) forward upstream.
:func:`openai_app` puts a router into an app with the shared plumbing of
:mod:`lingualift.serving.http` (errors in OpenAI's shape, request counting).

Every route but ``/health`` requires the API key when one is set, ``/openapi.json``
included. The schema publishes the typed request bodies
(:class:`~lingualift.serving.protocol.CompletionRequest`,
:class:`~lingualift.serving.protocol.ChatCompletionRequest`) and the error
answers, so client generators and fuzzers can use it; FastAPI does not parse
those bodies itself (``openapi_extra`` only describes them): the handlers read
the bytes with the protocol's depth, encoding and surrogate checks first.
There are no interactive docs (``/docs``, ``/redoc``): FastAPI's pages load
their JavaScript from a CDN, which an offline server cannot reach; load
``/openapi.json`` into any OpenAPI viewer instead.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from lingualift.serving import protocol as oa
from lingualift.serving.http import RequestCounter, install_error_handlers
from lingualift.serving.metrics import ServingMetrics

COMPLETIONS = "/v1/completions"
CHAT_COMPLETIONS = "/v1/chat/completions"
MODELS = "/v1/models"
HEALTH = "/health"
METRICS = "/metrics"
OPENAPI = "/openapi.json"
COUNTED_PATHS = (HEALTH, METRICS, MODELS, COMPLETIONS, CHAT_COMPLETIONS)
"""Paths counted under their own name in ``lingualift_requests``; any other is 'other'."""

ADAPTER_HEADER = "X-Lingualift-Adapter"
"""Names the adapter version that answered ('sw/v3', or 'base')."""
CHAT_TEMPLATE_HEADER = "X-Lingualift-Chat-Template"
"""On chat answers rendered with the default template because the model has none."""

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
"""OpenAI's error body, the shape of every 4xx and 5xx answer."""


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_SCHEMA}}}


_JSON = {"application/json": {"schema": {"type": "object"}}}
_AUTH = {401: _error("Missing or wrong API key (invalid_api_key).")}
_GENERATION_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The completion, or with stream: true server-sent events of chunks.",
        "content": {**_JSON, "text/event-stream": {"schema": {"type": "string"}}},
    },
    400: _error("Malformed or refused request; param names the field."),
    **_AUTH,
    404: _error("Unknown model (model_not_found)."),
    413: _error("Body over max_body_bytes (request_too_large)."),
    429: _error("The queue is full (rate_limit_exceeded); retry after Retry-After seconds."),
    503: _error("The server is shutting down."),
}

Answer = Response | dict[str, Any]


class OpenAIHandler(Protocol):
    """What an app answers the OpenAI routes with."""

    async def check_key(self, request: Request) -> None:
        """Raise a 401 ``ApiError`` unless the request carries the API key (when one is set)."""

    async def health(self) -> Answer:
        """``GET /health``: liveness and what is served (no key needed)."""

    async def prometheus(self) -> Answer:
        """``GET /metrics``: the metrics in Prometheus' text format."""

    async def models(self, request: Request) -> Answer:
        """``GET /v1/models``: the model ids a request may name."""

    async def model(self, request: Request, model_id: str) -> Answer:
        """``GET /v1/models/{id}``: one entry of the list, or a 404."""

    async def completions(self, request: Request) -> Answer:
        """``POST /v1/completions``."""

    async def chat_completions(self, request: Request) -> Answer:
        """``POST /v1/chat/completions``."""


def openai_router(handler: OpenAIHandler) -> APIRouter:
    """The route table, each endpoint calling ``handler``."""
    router = APIRouter()
    guarded = [Depends(handler.check_key)]

    # response_model=None: the handlers return Responses or plain dicts, never a model.
    @router.get(
        HEALTH,
        response_model=None,
        responses={200: {"description": "Serving."}, 503: {"description": "Stopped."}},
    )
    async def health() -> Answer:
        return await handler.health()

    @router.get(
        METRICS,
        dependencies=guarded,
        response_model=None,
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **_AUTH},
    )
    async def metrics() -> Answer:
        return await handler.prometheus()

    @router.get(OPENAPI, dependencies=guarded, include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(request.app.openapi())

    @router.get(MODELS, dependencies=guarded, response_model=None, responses={**_AUTH})
    async def models(request: Request) -> Answer:
        return await handler.models(request)

    @router.get(
        MODELS + "/{model_id:path}",
        dependencies=guarded,
        response_model=None,
        responses={**_AUTH, 404: _error("Unknown model (model_not_found).")},
    )
    async def model(request: Request, model_id: str) -> Answer:
        return await handler.model(request, model_id)

    # The handlers read their bodies themselves (depth, encoding and surrogate checks before
    # pydantic); openapi_extra publishes the typed request models all the same, as vLLM does.
    @router.post(
        COMPLETIONS,
        dependencies=guarded,
        response_model=None,
        responses=_GENERATION_ANSWERS,
        openapi_extra={"requestBody": oa.openapi_request_body(oa.CompletionRequest)},
    )
    async def completions(request: Request) -> Answer:
        return await handler.completions(request)

    @router.post(
        CHAT_COMPLETIONS,
        dependencies=guarded,
        response_model=None,
        responses=_GENERATION_ANSWERS,
        openapi_extra={"requestBody": oa.openapi_request_body(oa.ChatCompletionRequest)},
    )
    async def chat_completions(request: Request) -> Answer:
        return await handler.chat_completions(request)

    return router


def openai_app(
    handler: OpenAIHandler,
    *,
    title: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    metrics: ServingMetrics,
) -> FastAPI:
    """An app serving :func:`openai_router` for ``handler``: errors in OpenAI's shape, every
    request counted in ``metrics``, the schema behind the key, no interactive docs."""
    # openapi_url=None: FastAPI's own /openapi.json would skip the key; the router serves it.
    app = FastAPI(title=title, lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    app.add_middleware(RequestCounter, metrics=metrics, known=COUNTED_PATHS)
    app.include_router(openai_router(handler))
    return app
