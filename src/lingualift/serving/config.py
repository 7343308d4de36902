"""The config of ``lingualift serve``: one dataclass, a docstring under every field.

A recipe (``recipes/serve.yaml``) and ``key=value`` overrides fill it;
``lingualift serve --help`` lists it. Components never see this class: the job
(:func:`lingualift.serving.job.serve`) reads it and passes typed arguments on.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Literal

from lingualift.errors import LingualiftError
from lingualift.models import DEFAULT_MODEL

API_KEY_ENV = "LINGUALIFT_API_KEY"


@dataclasses.dataclass
class ServeConfig:
    """An OpenAI-compatible server for one base model and every language's current adapter."""

    model: str = DEFAULT_MODEL
    """Base model: an embedded name, a hub id or a local folder (the one the adapters were
    trained on)."""
    model_name: str | None = None
    """Id of the base model in the API (/v1/models, the 'model' field); default: the model spec.
    Requests naming it are routed like 'auto'."""
    store: str | None = None
    """Adapter store root (default $LINGUALIFT_HOME/adapters)."""
    langs: list[str] | None = None
    """Languages to serve (default: every language of the store, including languages that get a
    first version while the server runs)."""
    allow_empty_store: bool = False
    """Start even when the store holds no adapter (the base model serves everything)."""
    shifcon: str | None = None
    """A ShifCon folder (vectors + layer area); when given, each request is shifted for its
    language (our engine only; vLLM has no hooks)."""
    engine: Literal["lingualift", "vllm", "route"] = "lingualift"
    """'lingualift': this package's server; 'vllm': print (or with run=true, run) the vLLM
    command serving the same adapters; 'route': a routing front that identifies the language and
    forwards to 'upstream'."""
    run: bool = False
    """With engine=vllm: run the command when vllm is installed (otherwise it is printed)."""
    upstream: str | None = None
    """With engine=route: the OpenAI-compatible server to forward to, e.g. http://127.0.0.1:8000."""
    host: str = "127.0.0.1"
    """Interface to bind; only this machine can connect unless you give another (e.g. 0.0.0.0)."""
    port: int = 8000
    """TCP port to listen on (0 picks a free one)."""
    api_key: str | None = None
    """Key every request but /health must send as 'Authorization: Bearer <key>'; default: the
    LINGUALIFT_API_KEY environment variable, and no key when neither is set."""
    max_batch_size: int = 8
    """Most requests decoded together in one mixed-language batch."""
    batch_wait_ms: float = 10.0
    """How long the batcher waits for more requests after the first one arrives."""
    max_queue: int = 64
    """Most requests waiting for a batch; beyond it the server answers 429 instead of queueing."""
    max_tokens_limit: int = 1024
    """Largest max_tokens a request may ask for (400 above it)."""
    default_max_tokens: int = 128
    """max_tokens of a request that gives none."""
    max_body_bytes: int = 1_048_576
    """Largest request body accepted (413 above it)."""
    log_dir: str | None = None
    """Folder of traffic-log segments, what the drift monitor reads (default
    $LINGUALIFT_HOME/traffic)."""
    log_traffic: bool = True
    """Write the traffic log at all."""
    log_text: bool = True
    """Keep each prompt's text in the traffic log (false: only its SHA-1)."""
    log_max_bytes: int = 64 * 1024 * 1024
    """Close a traffic-log segment once it holds this many bytes."""
    log_max_seconds: float = 3600.0
    """Close a traffic-log segment once it has been open this long."""
    log_queue_size: int = 10_000
    """Rows waiting for the log writer; when full, rows are dropped and counted, never waited on."""
    reload_interval_s: float = 2.0
    """How often the server checks the store for promoted or rolled-back versions."""
    lang_min_confidence: float | None = None
    """Language identification below this confidence counts as unsure (base model); None: the
    identifier's threshold calibrated in docs/langid.md (95% precision on short queries)."""
    dtype: str = "float32"
    """Model weights dtype: float32, bfloat16 or float16."""
    device: str | None = None
    """torch device (cpu, cuda, cuda:1); default: the model's load device (CPU)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Log level of the server and uvicorn."""

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_queue", "max_tokens_limit", "default_max_tokens"):
            if getattr(self, name) < 1:
                raise LingualiftError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.default_max_tokens > self.max_tokens_limit:
            raise LingualiftError(
                f"default_max_tokens ({self.default_max_tokens}) is above max_tokens_limit "
                f"({self.max_tokens_limit}); lower it or raise the limit."
            )
        if self.batch_wait_ms < 0 or self.reload_interval_s < 0:
            raise LingualiftError("batch_wait_ms and reload_interval_s must not be negative.")
        if not 0 <= self.port <= 65535:
            raise LingualiftError(f"port must be in 0..65535, got {self.port}.")
        if self.max_body_bytes < 1024:
            raise LingualiftError(
                f"max_body_bytes must be at least 1024, got {self.max_body_bytes}."
            )
        if self.log_max_bytes < 1 or self.log_max_seconds <= 0:
            raise LingualiftError("log_max_bytes and log_max_seconds must be positive.")

    @property
    def served_model_name(self) -> str:
        """The base model's id in the API."""
        return self.model_name or self.model

    def resolved_api_key(self) -> str | None:
        """The configured key, else $LINGUALIFT_API_KEY, else None (no authentication)."""
        return self.api_key or os.environ.get(API_KEY_ENV) or None
