"""The OpenAI-compatible route table, defined once for the server and the routing front.

:func:`openai_router` builds a FastAPI ``APIRouter`` whose endpoints call a
handler object (:class:`OpenAIHandler`), the way vLLM attaches a router per
endpoint group to its app: the server's handlers
(:class:`~lingualift.serving.app.ServingApp`) answer with the engine, the
front's (:class:`~lingualift.serving.front.RoutingFront`) forward upstream.
:func:`openai_app` puts a router into an app with the shared plumbing of
:mod:`lingualift.serving.http` (errors in OpenAI's shape, request counting).

Every route but ``/health`` requires the API key when one is set.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from lingualift.serving.http import RequestCounter, install_error_handlers
from lingualift.serving.metrics import ServingMetrics

COMPLETIONS = "/v1/completions"
CHAT_COMPLETIONS = "/v1/chat/completions"
MODELS = "/v1/models"
HEALTH = "/health"
METRICS = "/metrics"
COUNTED_PATHS = (HEALTH, METRICS, MODELS, COMPLETIONS, CHAT_COMPLETIONS)
"""Paths counted under their own name in ``lingualift_requests``; any other is 'other'."""

ADAPTER_HEADER = "X-Lingualift-Adapter"
"""Names the adapter version that answered ('sw/v3', or 'base')."""

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
    @router.get(HEALTH, response_model=None)
    async def health() -> Answer:
        return await handler.health()

    @router.get(METRICS, dependencies=guarded, response_model=None)
    async def metrics() -> Answer:
        return await handler.prometheus()

    @router.get(MODELS, dependencies=guarded, response_model=None)
    async def models(request: Request) -> Answer:
        return await handler.models(request)

    @router.get(MODELS + "/{model_id:path}", dependencies=guarded, response_model=None)
    async def model(request: Request, model_id: str) -> Answer:
        return await handler.model(request, model_id)

    @router.post(COMPLETIONS, dependencies=guarded, response_model=None)
    async def completions(request: Request) -> Answer:
        return await handler.completions(request)

    @router.post(CHAT_COMPLETIONS, dependencies=guarded, response_model=None)
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
    request counted in ``metrics``, no interactive docs."""
    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    app.add_middleware(RequestCounter, metrics=metrics, known=COUNTED_PATHS)
    app.include_router(openai_router(handler))
    return app
