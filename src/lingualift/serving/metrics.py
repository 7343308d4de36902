"""Prometheus metrics of one server, in a registry of its own.

Each app gets its own ``CollectorRegistry`` (not prometheus-client's global
one), so tests and benchmarks can build several servers in one process and
read each one's figures. Every name starts with ``lingualift_``.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class ServingMetrics:
    """Counters, gauges and histograms of requests, tokens, routing, reloads and the log."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "lingualift_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            "lingualift_prompt_tokens", "Prompt tokens of answered requests", registry=r
        )
        self.completion_tokens = Counter(
            "lingualift_completion_tokens", "Generated tokens of answered requests", registry=r
        )
        self.latency = Histogram(
            "lingualift_request_latency_seconds",
            "Time from request to last byte, completions and chat",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_token = Histogram(
            "lingualift_time_to_first_token_seconds",
            "Time from request to the first generated text",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "lingualift_queue_wait_seconds",
            "Time a request waited for a batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "lingualift_batch_size", "Requests per decoded batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.by_language = Counter(
            "lingualift_requests_by_language",
            "Generation requests by language ('unknown' when identification was unsure)",
            ["lang"],
            registry=r,
        )
        self.by_adapter = Counter(
            "lingualift_requests_by_adapter",
            "Generation requests by the adapter version that served them ('base' for none)",
            ["adapter"],
            registry=r,
        )
        self.fallbacks = Counter(
            "lingualift_base_fallbacks",
            "Requests served by the base model because no adapter exists or the language was unsure",
            ["reason"],
            registry=r,
        )
        self.rejected = Counter(
            "lingualift_queue_rejections",
            "Requests answered 429 because the queue was full",
            registry=r,
        )
        self.queue_depth = Gauge(
            "lingualift_queue_depth", "Requests waiting for a batch", registry=r
        )
        self.active = Gauge("lingualift_active_requests", "Requests being decoded", registry=r)
        self.adapters_loaded = Gauge(
            "lingualift_adapters_loaded",
            "Adapter versions in memory (current and draining)",
            registry=r,
        )
        self.reloads = Counter(
            "lingualift_adapter_reloads",
            "Adapter versions loaded while serving",
            ["lang"],
            registry=r,
        )
        self.reload_failures = Counter(
            "lingualift_adapter_reload_failures",
            "Current versions refused (damaged, another base model, PEFT errors)",
            ["lang"],
            registry=r,
        )
        self.log_rows = Counter(
            "lingualift_traffic_log_rows", "Rows handed to the traffic-log writer", registry=r
        )
        self.log_dropped = Counter(
            "lingualift_traffic_log_dropped_rows",
            "Traffic-log rows dropped because the writer's queue was full",
            registry=r,
        )

    def track(
        self,
        queue_depth: Callable[[], float],
        active: Callable[[], float],
        adapters_loaded: Callable[[], float],
    ) -> None:
        """Read the gauges from the engine at scrape time."""
        self.queue_depth.set_function(queue_depth)
        self.active.set_function(active)
        self.adapters_loaded.set_function(adapters_loaded)

    def on_reload_event(self, kind: str, lang: str, detail: str | None) -> None:
        """Hook for :class:`~lingualift.adapters.registry.AdapterRegistry` events."""
        if kind == "loaded":
            self.reloads.labels(lang).inc()
        elif kind == "failed":
            self.reload_failures.labels(lang).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
