"""The ``serve`` job: a :class:`ServeConfig` in, a running server (or a vLLM command) out."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from lingualift.adapters.store import AdapterStore
from lingualift.errors import LingualiftError
from lingualift.paths import lingualift_home
from lingualift.serving.config import ServeConfig

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ServerParts:
    """A built server: the app and the components behind it (tests and benchmarks use them)."""

    app: Any
    engine: Any
    registry: Any
    metrics: Any
    traffic: Any
    """The TrafficLog, or None when logging is off."""


def traffic_folder(config: ServeConfig) -> Path:
    return Path(config.log_dir) if config.log_dir else lingualift_home() / "traffic"


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
    from lingualift.langid import LanguageIdentifier
    from lingualift.models import load_causal_lm
    from lingualift.serving.app import create_app
    from lingualift.serving.engine import Engine
    from lingualift.serving.metrics import ServingMetrics
    from lingualift.serving.reload import AdapterRegistry
    from lingualift.serving.traffic import TrafficLog

    store = check_store(config)
    shifcon = None
    if config.shifcon:
        from lingualift.shifcon import ShifCon

        shifcon = ShifCon.load(config.shifcon)
    if model is None:
        model, tokenizer = load_causal_lm(config.model, dtype=config.dtype, device=config.device)
    metrics = ServingMetrics()
    registry = AdapterRegistry(
        model, store, langs=config.langs, spec=config.model, on_event=metrics.on_reload_event
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
        on_batch=metrics.batch_size.observe,
    )
    traffic = None
    if config.log_traffic:
        traffic = TrafficLog(
            traffic_folder(config),
            max_bytes=config.log_max_bytes,
            max_seconds=config.log_max_seconds,
            queue_size=config.log_queue_size,
        )
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
    )
    return ServerParts(app, engine, registry, metrics, traffic)


def _check_started_adapters(config: ServeConfig, store: AdapterStore, registry: Any) -> None:
    """Languages asked for by name must load; otherwise at least one must, unless allowed."""
    refused = registry.failures
    if config.langs and refused:
        lang, why = next(iter(refused.items()))
        raise LingualiftError(why if lang in why else f"{lang}: {why}")
    if refused and not registry.served_languages() and not config.allow_empty_store:
        raise LingualiftError(
            f"No adapter in {store.root} could be loaded ({next(iter(refused.values()))}); "
            "fix them or pass allow_empty_store=true to serve the base model only."
        )
    for lang, why in refused.items():
        logger.warning("not serving %s: %s", lang, why)


def serve(config: ServeConfig) -> int:
    """Run what ``config.engine`` asks for; returns the exit code."""
    if config.engine == "vllm":
        return _vllm(config)
    # Reloads, refusals and crash recoveries are what operators watch for: show them at log_level.
    logging.getLogger("lingualift.serving").setLevel(config.log_level.upper())
    from lingualift.serving.server import bind_socket, run_app, socket_url

    sock = bind_socket(config.host, config.port)  # fail on a busy port before loading anything
    try:
        if config.engine == "route":
            from lingualift.serving.front import build_front

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


def _vllm(config: ServeConfig) -> int:
    import importlib.util
    import os
    import subprocess

    from lingualift.serving.vllm import vllm_plan

    plan = vllm_plan(
        config.model,
        AdapterStore(config.store),
        langs=config.langs,
        host=config.host,
        port=config.port,
        served_model_name=config.served_model_name,
    )
    api_key = config.resolved_api_key()
    if api_key:  # never printed: vLLM reads it from its environment
        plan.notes.append("the API key goes to vLLM as VLLM_API_KEY, not on the command line")
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    print(shlex.join(plan.command), flush=True)
    if not config.run:
        return 0
    if importlib.util.find_spec("vllm") is None:
        print(
            "note: vllm is not installed here; run the command above where it is (pip install vllm).",
            file=sys.stderr,
        )
        return 0
    env = {**os.environ, **({"VLLM_API_KEY": api_key} if api_key else {})}
    return subprocess.call(plan.command, env=env)
