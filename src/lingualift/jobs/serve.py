"""The ``serve`` job: a :class:`ServeConfig` in, a running server (or a vLLM command) out.

``lingualift serve`` and its recipe (``recipes/serve.yaml``) fill the config;
:func:`serve` runs what ``engine`` asks for: this package's server
(:func:`build_server`: the model, the adapter registry, the batching engine, the
traffic log and the app), the vLLM command for the same adapters (printed, or run
behind the routing front with live adapter updates), or the routing front before an
upstream server. Components in :mod:`lingualift.serving` never
see the config: this module reads it and passes typed arguments on. Unlike the
file-making verbs it is not a stage: a server has no output to resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lingualift.adapters.store import AdapterStore
from lingualift.chat import check_chat_template
from lingualift.errors import LingualiftError
from lingualift.paths import lingualift_home
from lingualift.placement import ModelSettings
from lingualift.planning import check_fits

if TYPE_CHECKING:  # the serving stack (FastAPI, torch) loads only when a server is built
    from fastapi import FastAPI

    from lingualift.adapters.registry import AdapterRegistry
    from lingualift.serving.engine import Engine
    from lingualift.serving.metrics import ServingMetrics
    from lingualift.serving.traffic import TrafficLog
    from lingualift.serving.vllm import VllmPlan

logger = logging.getLogger(__name__)

API_KEY_ENV = "LINGUALIFT_API_KEY"
"""The environment variable that holds the API key when ``api_key`` is not given."""


@dataclasses.dataclass
class ServeConfig(ModelSettings):
    """An OpenAI-compatible server for one base model (the one the adapters were trained on,
    held as dtype, device, attn_implementation and quantization say) and every language's
    current adapter."""

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
    chat_template: str | None = None
    """Chat template of /v1/chat/completions: a built-in name ('plain', 'chatml'), a Jinja file,
    a tokenizer's chat_template.json, or the template itself; default: the tokenizer's own, and
    for a model without one the 'plain' transcript (said once in the log and in the
    X-Lingualift-Chat-Template header), as vLLM's --chat-template."""
    engine: Literal["lingualift", "vllm", "route"] = "lingualift"
    """'lingualift': this package's server; 'vllm': print (or with run=true, run) the vLLM
    command serving the same adapters; 'route': a routing front that identifies the language and
    forwards to 'upstream'."""
    run: bool = False
    """With engine=vllm: run vLLM (on 127.0.0.1:vllm_port) behind a routing front on host:port
    that writes the traffic log and loads promoted or rolled-back versions into vLLM live;
    without it the command is printed."""
    upstream: str | None = None
    """With engine=route: the OpenAI-compatible server to forward to, e.g. http://127.0.0.1:8000."""
    sync_adapters: bool = False
    """With engine=route in front of vLLM: load each promoted or rolled-back version into it
    through its runtime LoRA endpoints and route to it (engine=vllm run=true always does)."""
    vllm_port: int | None = None
    """With engine=vllm run=true: the port vLLM listens on, on 127.0.0.1 behind the front
    (default: a free one)."""
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
    """How long an idle batcher waits for more requests after the first one arrives."""
    batching: Literal["continuous", "static"] = "continuous"
    """'continuous': a request joins the running batch at the next decoding step; 'static':
    it waits until the whole batch has finished (kept for comparisons)."""
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
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Log level of the server and uvicorn."""

    def __post_init__(self) -> None:
        super().__post_init__()
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
        if self.vllm_port is not None and not 1 <= self.vllm_port <= 65535:
            raise LingualiftError(f"vllm_port must be in 1..65535, got {self.vllm_port}.")
        if self.max_body_bytes < 1024:
            raise LingualiftError(
                f"max_body_bytes must be at least 1024, got {self.max_body_bytes}."
            )
        if self.log_max_bytes < 1 or self.log_max_seconds <= 0:
            raise LingualiftError("log_max_bytes and log_max_seconds must be positive.")
        check_chat_template(self.chat_template)  # a wrong name or file: before the model loads

    @property
    def served_model_name(self) -> str:
        """The base model's id in the API."""
        return self.model_name or str(self.model)

    def resolved_api_key(self) -> str | None:
        """The configured key, else $LINGUALIFT_API_KEY, else None (no authentication)."""
        return self.api_key or os.environ.get(API_KEY_ENV) or None


@dataclasses.dataclass
class ServerParts:
    """A built server: the app and the components behind it (tests and benchmarks use them)."""

    app: FastAPI
    engine: Engine
    registry: AdapterRegistry
    metrics: ServingMetrics
    traffic: TrafficLog | None
    """None when logging is off."""


def traffic_folder(config: ServeConfig) -> Path:
    """Where the traffic log goes: ``log_dir``, else $LINGUALIFT_HOME/traffic."""
    return Path(config.log_dir).expanduser() if config.log_dir else lingualift_home() / "traffic"


def check_traffic_folder(config: ServeConfig) -> None:
    """One sentence, before anything loads (and without creating anything), when the traffic
    log cannot go where it is asked to: ``log_dir`` names a file, lies under a file, or in a
    folder that is not writable."""
    if not config.log_traffic:
        return
    folder = traffic_folder(config)
    if folder.exists() and not folder.is_dir():
        raise LingualiftError(
            f"log_dir={folder} is a file, but the traffic log is a folder of segments; give a "
            "folder (it is created if missing) or log_traffic=false."
        )
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise LingualiftError(
            f"{existing} is a file, so the traffic-log folder {folder} cannot be made; give "
            "another log_dir= or log_traffic=false."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise LingualiftError(
            f"{existing} is not writable, so the traffic log cannot go to {folder}; give "
            "another log_dir= or log_traffic=false."
        )


def check_store(config: ServeConfig) -> AdapterStore:
    """The store, or one sentence when it holds nothing to serve (unless allowed)."""
    store = AdapterStore(config.store)
    if config.langs:
        for lang in config.langs:
            store.get(lang)  # a clear error for a language without a current, whole version
        return store
    serving = [lang for lang in store.languages() if store.current_version(lang) is not None]
    if not serving and not config.allow_empty_store:
        where = "does not exist" if not store.root.is_dir() else "holds no current adapter"
        raise LingualiftError(
            f"The adapter store {store.root} {where}; train one with 'lingualift train', point "
            "store= at another store, or pass allow_empty_store=true to serve the base model only."
        )
    return store


def build_server(config: ServeConfig, model: Any = None, tokenizer: Any = None) -> ServerParts:
    """Load the model and adapters and build the app (the socket is the caller's)."""
    from lingualift.adapters.registry import AdapterRegistry
    from lingualift.chat import resolve_chat_template
    from lingualift.langid import LanguageIdentifier
    from lingualift.models import load_causal_lm
    from lingualift.serving.app import create_app
    from lingualift.serving.engine import Engine
    from lingualift.serving.metrics import ServingMetrics

    store = check_store(config)
    shifcon = None
    if config.shifcon:
        from lingualift.shifcon import ShifCon

        shifcon = ShifCon.load(config.shifcon)
    check_traffic_folder(config)
    if model is None:
        # A full batch of the longest requests must fit: prompts planned as long as the
        # largest completion (a request's prompt is unknown until it arrives).
        check_fits(
            "serve", config, batch_size=config.max_batch_size,
            max_length=2 * config.max_tokens_limit,
        )  # fmt: skip
        model, tokenizer = load_causal_lm(config.model_settings())
    chat_template = resolve_chat_template(tokenizer, config.chat_template)
    if chat_template.is_default:
        logger.warning(
            "%s has no chat template: /v1/chat/completions renders chats with lingualift's "
            "default '%s' template (see docs/serving.md; chat_template= chooses another)",
            config.served_model_name,
            chat_template.name,
        )
    metrics = ServingMetrics()
    registry = AdapterRegistry(
        model,
        store,
        langs=config.langs,
        spec=config.model,
        strict=bool(config.langs),  # languages asked for by name must load
        on_event=metrics.on_reload_event,
    )
    _check_started_adapters(config, store, registry)
    engine = Engine(
        registry,
        tokenizer,
        shifcon=shifcon,
        max_batch_size=config.max_batch_size,
        batch_wait_ms=config.batch_wait_ms,
        max_queue=config.max_queue,
        reload_interval_s=config.reload_interval_s,
        batching=config.batching,
        on_batch=metrics.batch_size.observe,
    )
    traffic = _traffic_log(config)
    identifier = LanguageIdentifier(config.lang_min_confidence)
    identifier.identify("warm up")  # load the identifier's model now, not on the first request
    app = create_app(
        engine,
        model_name=config.served_model_name,
        identifier=identifier,
        metrics=metrics,
        traffic=traffic,
        api_key=config.resolved_api_key(),
        max_tokens_limit=config.max_tokens_limit,
        default_max_tokens=config.default_max_tokens,
        max_body_bytes=config.max_body_bytes,
        log_text=config.log_text,
        chat_template=chat_template,
    )
    return ServerParts(app, engine, registry, metrics, traffic)


def _check_started_adapters(
    config: ServeConfig, store: AdapterStore, registry: AdapterRegistry
) -> None:
    """At least one adapter of the store must load, unless allowed (languages asked for by
    name were loaded strictly)."""
    refused = registry.failures
    if refused and not registry.served_languages() and not config.allow_empty_store:
        raise LingualiftError(
            f"No adapter in {store.root} could be loaded ({next(iter(refused.values()))}); "
            "fix them or pass allow_empty_store=true to serve the base model only."
        )
    for lang, why in refused.items():
        logger.warning("not serving %s: %s", lang, why)


def serve(config: ServeConfig) -> int:
    """Run what ``config.engine`` asks for; returns the exit code."""
    if config.engine == "vllm" and not config.run:
        return _print_vllm(config)
    # Reloads, refusals and crash recoveries are what operators watch for: show them at log_level.
    for name in ("lingualift.serving", "lingualift.adapters.registry"):
        logging.getLogger(name).setLevel(config.log_level.upper())
    from lingualift.serving.server import bind_socket, run_app, socket_url

    check_traffic_folder(config)  # like a busy port: one sentence before anything loads
    if config.engine == "vllm":
        return _vllm_behind_front(config)
    sock = bind_socket(config.host, config.port)  # fail on a busy port before loading anything
    try:
        if config.engine == "route":
            if not config.upstream:
                raise LingualiftError(
                    "engine=route needs upstream=<url of an OpenAI-compatible server>."
                )
            app = build_front(config)
            print(f"routing front on {socket_url(sock)} -> {config.upstream}", flush=True)
        else:
            parts = build_server(config)
            adapters = ", ".join(parts.registry.snapshot().values()) or "none (base model only)"
            log = traffic_folder(config) if config.log_traffic else "off"
            print(
                f"serving {config.served_model_name} on {socket_url(sock)} with adapters {adapters}"
                f" (traffic log: {log})",
                flush=True,
            )
            app = parts.app
    except BaseException:
        sock.close()
        raise
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after shutting down
        run_app(app, sock, config.log_level)
    print("server stopped", flush=True)
    return 0


def build_front(
    config: ServeConfig,
    upstream: str | None = None,
    *,
    sync: bool | None = None,
    max_lora_rank: int | None = None,
) -> FastAPI:
    """The routing front (same log, key and language settings as the server) before
    ``upstream`` (default ``config.upstream``); with ``sync`` (default ``config.sync_adapters``)
    it keeps that vLLM's adapters in step with the store."""
    from lingualift.langid import LanguageIdentifier
    from lingualift.serving.front import RoutingFront, create_front_app
    from lingualift.serving.metrics import ServingMetrics
    from lingualift.serving.vllm_sync import VllmAdapterSync

    upstream = upstream or config.upstream
    assert upstream
    metrics = ServingMetrics()
    timeout_s = 600.0  # the front's wait for an upstream answer; also how long a replaced
    # version may wait for its requests before vLLM unloads it
    adapter_sync = None
    if config.sync_adapters if sync is None else sync:
        adapter_sync = VllmAdapterSync(
            upstream,
            AdapterStore(config.store),
            langs=config.langs,
            api_key=config.resolved_api_key(),
            max_lora_rank=max_lora_rank,
            drain_timeout_s=timeout_s,
            on_event=metrics.on_reload_event,
        )
    front = RoutingFront(
        upstream,
        base_model=config.served_model_name,
        identifier=LanguageIdentifier(config.lang_min_confidence),
        api_key=config.resolved_api_key(),
        traffic=_traffic_log(config),
        metrics=metrics,
        log_text=config.log_text,
        max_body_bytes=config.max_body_bytes,
        refresh_s=config.reload_interval_s,
        timeout_s=timeout_s,
        sync=adapter_sync,
    )
    return create_front_app(front)


def _traffic_log(config: ServeConfig) -> TrafficLog | None:
    """The traffic-log writer the config asks for (None when logging is off)."""
    if not config.log_traffic:
        return None
    from lingualift.serving.traffic import TrafficLog

    try:
        return TrafficLog(
            traffic_folder(config),
            max_bytes=config.log_max_bytes,
            max_seconds=config.log_max_seconds,
            queue_size=config.log_queue_size,
        )
    except OSError as exc:  # checked at start; the disk can still change under us
        raise LingualiftError(
            f"Cannot write the traffic log to {traffic_folder(config)} ({exc.strerror}); give "
            "another log_dir= or log_traffic=false."
        ) from None


def _vllm_plan(config: ServeConfig, host: str, port: int) -> VllmPlan:
    from lingualift.serving.vllm import vllm_plan

    plan = vllm_plan(
        config.model,
        AdapterStore(config.store),
        langs=config.langs,
        host=host,
        port=port,
        served_model_name=config.served_model_name,
    )
    if config.chat_template:
        # vLLM takes a file or the template itself, as chat_template= does here.
        from lingualift.chat import BUILTIN_TEMPLATES

        builtin = BUILTIN_TEMPLATES.get(config.chat_template.strip())
        plan.command += ["--chat-template", builtin.source if builtin else config.chat_template]
        if builtin is not None and builtin.stop:
            plan.notes.append(
                f"vLLM does not stop at the {config.chat_template} template's turn end by "
                f"itself; clients should send stop={list(builtin.stop)!r} with chat requests"
            )
    return plan


def _print_vllm(config: ServeConfig) -> int:
    """engine=vllm: print the command (and how to put the front before it)."""
    plan = _vllm_plan(config, config.host, config.port)
    if config.resolved_api_key():  # never printed: vLLM reads it from its environment
        plan.notes.append("the API key goes to vLLM as VLLM_API_KEY, not on the command line")
    plan.notes.append(
        "for model=auto, the traffic log and live adapter updates, run the routing front before "
        f"it: lingualift serve engine=route upstream=http://{config.host}:{config.port} "
        "sync_adapters=true port=<another port>; or let lingualift run both: run=true"
    )
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    print(plan.shell_command(), flush=True)
    return 0


def _vllm_behind_front(config: ServeConfig) -> int:
    """engine=vllm run=true: vLLM on 127.0.0.1:vllm_port, the routing front (traffic log, live
    adapter updates) on host:port; stopping one stops the other. Returns vLLM's exit code when
    it stopped first, else 0."""
    import threading

    from lingualift.serving.server import bind_socket, free_port, run_app, socket_url
    from lingualift.serving.vllm import VllmProcess, vllm_executable

    executable = vllm_executable()
    if executable is None:
        raise LingualiftError(
            "engine=vllm run=true needs vLLM installed on this machine (pip install vllm, on "
            "Linux with a GPU); without run=true lingualift prints the command to run where "
            "vLLM is."
        )
    check_store(config)  # as for the own server: an empty store is refused unless allowed
    sock = bind_socket(config.host, config.port)  # the front's port: fail before vLLM starts
    try:
        vllm_port = config.vllm_port or free_port("127.0.0.1")
        plan = _vllm_plan(config, "127.0.0.1", vllm_port)
        upstream = f"http://127.0.0.1:{vllm_port}"
        app = build_front(config, upstream, sync=True, max_lora_rank=plan.max_lora_rank)
    except BaseException:
        sock.close()
        raise
    for name in ("lingualift.serving", "lingualift.adapters"):
        logging.getLogger(name).setLevel(config.log_level.upper())
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    vllm = VllmProcess(plan, executable, config.resolved_api_key()).start()
    print(f"vLLM (pid {vllm.pid}): {plan.shell_command()}", flush=True)
    print(
        f"routing front on {socket_url(sock)} -> vLLM on {upstream} (traffic log: "
        f"{traffic_folder(config) if config.log_traffic else 'off'}; live adapter updates)",
        flush=True,
    )
    exited = threading.Event()
    threading.Thread(target=lambda: (vllm.wait(), exited.set()), daemon=True).start()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run_app(app, sock, config.log_level, until=exited)
        vllm_stopped_first = exited.is_set()  # read before stopping vLLM sets it too
    finally:
        code = vllm.stop()
    if vllm_stopped_first:
        print(f"vLLM exited (code {code}); the front stopped", file=sys.stderr, flush=True)
        return code
    print("server stopped", flush=True)
    return 0
