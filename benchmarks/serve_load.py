"""Benchmark: the server under load, static vs continuous batching, and against bare generate.

Two ``lingualift serve`` processes (localhost only) hold the same base model with
a random LoRA adapter (r=8, all linear layers; speed does not depend on what an
adapter learned) for each of ``--langs``: one with ``batching=continuous`` (the
default), one with ``batching=static``. Two phases run in one go:

**Poisson** (static vs continuous, the same offered load). First the
continuous server's capacity is measured (``--max-batch`` concurrent requests of
64 tokens: completion tokens/s over mean tokens per request). Then for each
load in ``--loads`` (fractions of that capacity; or ``--rates`` in requests/s)
``--requests`` requests arrive at Poisson times (seeded), each for a language
drawn from ``--langs`` (mixed adapters), greedy, ``ignore_eos``, ``max_tokens``
drawn from ``--min-tokens``..``--max-tokens`` (8-128). The same arrivals and
requests go to both servers, one after the other (the order alternates by
load). Requests stream, so each one's time to first token (first chunk) and
latency (send to ``[DONE]``) are measured; throughput is completion tokens over
the time from the first send to the last answer. Reported per server and load:
p50/p95 time to first token, p50/p95 latency, tokens/s; and the ratios the
design aims for: continuous p95 latency at most half of static's, throughput
at least equal.

**Closed loop** (is the server as fast as ``generate``; do mixed batches cost).
``--clients`` clients each send requests one after the other (greedy,
``ignore_eos``, exactly ``--closed-tokens`` tokens) to the continuous server:
*mixed* (request ``i`` for language ``i % len(langs)``: every batch mixes every
adapter, stacked per layer) and *single* (one adapter), alternating over
``--rounds``; then, with the servers stopped, a bare ``model.generate`` loop on
the same prompts at the same batch size (*bare*: one adapter active;
*bare-mixed*: PEFT's ``adapter_names``). Goals: single >= 0.9 x bare, mixed
>= 0.9 x single.

Every request must be answered (HTTP 200) and each server's traffic log must
hold one row per request sent to it. Everything stops by itself: ``--timeout-s``
bounds the whole run. A table is printed and JSON written (``--out``).

    python benchmarks/serve_load.py --out docs/serve_load.json      # embedded Gemma 3 270M

    # the script itself on a tiny random model (seconds; its figures mean nothing):
    python -c "from lingualift.testing import save_tiny_causal_lm as s; s('/tmp/tiny-model')"
    python benchmarks/serve_load.py --tiny --model /tmp/tiny-model --out /tmp/serve_load_tiny.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PROMPTS = {
    "sw": ["Habari ya asubuhi rafiki yangu, leo", "Watoto wanacheza mpira shuleni na"],
    "fr": ["Bonjour mon ami, aujourd'hui je vais", "Les enfants jouent au ballon dans la"],
    "es": ["Buenos días mi amigo, hoy voy a", "Los niños juegan a la pelota en la"],
    "de": ["Guten Morgen mein Freund, heute gehe ich", "Die Kinder spielen Ball in der"],
    "hi": ["सुप्रभात मेरे दोस्त, आज मैं बाज़ार", "बच्चे स्कूल में गेंद से खेल रहे"],
    "id": ["Selamat pagi temanku, hari ini aku", "Anak-anak bermain bola di sekolah"],
}
CLI = "import sys; from lingualift.cli import main; sys.exit(main(sys.argv[1:]))"
MODES = ("static", "continuous")

# Defaults: "real" for the embedded 270M model on 2 CPU cores (about 0.2 s per decoding step
# at batch 8), "tiny" for a random 32-wide model where HTTP and Python dominate.
PRESETS = {
    "real": dict(
        requests=24, loads="0.3,0.6,0.9", closed_requests=16, closed_tokens=32, rounds=2,
        timeout_s=5400.0, threads=None,
    ),
    "tiny": dict(
        requests=16, loads="0.5,0.9", closed_requests=8, closed_tokens=8, rounds=1,
        timeout_s=300.0, threads=1,
    ),
}  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_store(model_spec: str, langs: list[str], root: Path) -> None:
    """A store with a random LoRA adapter per language on ``model_spec``."""
    import torch
    from peft import LoraConfig, get_peft_model

    from lingualift.adapters import AdapterStore, base_model_signature
    from lingualift.models import load_causal_lm

    store = AdapterStore(root)
    model, _ = load_causal_lm(model_spec)
    for seed, lang in enumerate(langs):
        torch.manual_seed(seed)
        lora = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
        peft_model = get_peft_model(model, lora)
        card = {"base_model": base_model_signature(peft_model, model_spec)}
        store.save(lang, peft_model, card=card)
        model = peft_model.unload()  # the plain base model again, for the next adapter


def child_env(threads: int | None) -> dict[str, str]:
    """The servers' environment: this same lingualift, and ``threads`` torch threads if given."""
    import lingualift

    env = os.environ.copy()
    source = str(Path(lingualift.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    return env


@contextlib.contextmanager
def servers(args, store_root: Path, work: Path, deadline: float) -> Iterator[dict[str, dict]]:
    """Both servers running (mode -> {url, log_dir, process}), stopped gracefully at the end."""
    import httpx

    running: dict[str, dict] = {}
    try:
        for mode in MODES:
            port = free_port()
            log_dir = work / f"traffic-{mode}"
            command = [
                sys.executable, "-c", CLI, "serve",
                f"model={args.model}", f"store={store_root}", f"log_dir={log_dir}",
                f"port={port}", f"batching={mode}", f"max_batch_size={args.max_batch}",
                f"batch_wait_ms={args.batch_wait_ms}", "max_queue=1024",
                f"max_tokens_limit={max(args.max_tokens, args.closed_tokens, 64)}",
                "reload_interval_s=60", "log_level=warning",
            ]  # fmt: skip
            process = subprocess.Popen(command, env=child_env(args.threads))
            running[mode] = {
                "url": f"http://127.0.0.1:{port}",
                "log_dir": log_dir,
                "process": process,
            }
        for mode, server in running.items():  # both load their model at once: wait for /health
            while True:
                if server["process"].poll() is not None:
                    raise SystemExit(
                        f"the {mode} server exited with {server['process'].returncode}"
                    )
                if time.monotonic() > deadline:
                    raise SystemExit("the servers did not start before --timeout-s")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{server['url']}/health", timeout=2).status_code == 200:
                        break
                time.sleep(0.3)
        yield running
    finally:
        for server in running.values():  # graceful: each traffic log closes its segment
            server["process"].send_signal(signal.SIGINT)
        for server in running.values():
            try:
                server["process"].wait(timeout=60)
            except subprocess.TimeoutExpired:
                server["process"].kill()
                server["process"].wait()


# -- the Poisson phase ---------------------------------------------------------------------------


def workload(langs: list[str], n: int, rate: float, low: int, high: int, seed: int) -> list[dict]:
    """``n`` requests: Poisson arrival times at ``rate`` per second, a language and a prompt each,
    ``max_tokens`` uniform in ``low..high``."""
    rng = random.Random(seed)
    at, requests = 0.0, []
    for _ in range(n):
        lang = rng.choice(langs)
        requests.append(
            {
                "at": at,
                "lang": lang,
                "prompt": rng.choice(PROMPTS[lang]),
                "max_tokens": rng.randint(low, high),
            }
        )
        at += rng.expovariate(rate)
    return requests


async def stream_one(http, url: str, request: dict, start: float) -> dict:
    """Send one request at its arrival time and stream its answer; its timings."""
    await asyncio.sleep(max(0.0, start + request["at"] - time.perf_counter()))
    body = {
        "model": request["lang"],
        "prompt": request["prompt"],
        "max_tokens": request["max_tokens"],
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    sent = time.perf_counter()
    first, tokens, status = None, 0, 0
    async with http.stream("POST", f"{url}/v1/completions", json=body) as response:
        status = response.status_code
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif first is None and chunk.get("choices"):
                first = time.perf_counter()
    done = time.perf_counter()
    return {
        "status": status,
        "sent_s": sent - start,
        "ttft_s": (first or done) - sent,
        "latency_s": done - sent,
        "tokens": tokens,
        "asked": request["max_tokens"],
    }


async def poisson_run(url: str, requests: list[dict]) -> tuple[list[dict], float]:
    import httpx

    limits = httpx.Limits(max_connections=len(requests) + 1)
    async with httpx.AsyncClient(timeout=3600, limits=limits) as http:
        start = time.perf_counter()
        results = await asyncio.gather(*(stream_one(http, url, r, start) for r in requests))
        seconds = time.perf_counter() - start
    return list(results), seconds


def poisson_summary(results: list[dict], seconds: float) -> dict:
    tokens = sum(r["tokens"] for r in results)
    ttft = [r["ttft_s"] for r in results]
    latency = [r["latency_s"] for r in results]
    return {
        "requests": len(results),
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "p50_ttft_s": percentile(ttft, 0.5),
        "p95_ttft_s": percentile(ttft, 0.95),
        "p50_latency_s": percentile(latency, 0.5),
        "p95_latency_s": percentile(latency, 0.95),
    }


async def capacity(url: str, langs: list[str], batch: int, tokens: int) -> float:
    """Completion tokens/s of ``batch`` concurrent requests of ``tokens`` tokens."""
    requests = [
        {"at": 0.0, "lang": langs[i % len(langs)], "prompt": PROMPTS[langs[i % len(langs)]][0],
         "max_tokens": tokens}
        for i in range(batch)
    ]  # fmt: skip
    results, seconds = await poisson_run(url, requests)
    assert all(r["status"] == 200 for r in results), results
    return sum(r["tokens"] for r in results) / seconds


# -- the closed-loop phase -----------------------------------------------------------------------


async def closed_loop(url: str, requests: list[tuple[str, str]], clients: int, max_tokens: int):
    """Send ``requests`` ((model, prompt) pairs) from ``clients`` concurrent clients."""
    import httpx

    results: list[dict] = []
    pending = list(requests)

    async def client(http: httpx.AsyncClient) -> None:
        while pending:
            model, prompt = pending.pop(0)
            body = {
                "model": model,
                "prompt": prompt,
                "max_tokens": max_tokens,
                "temperature": 0,
                "ignore_eos": True,
            }
            start = time.perf_counter()
            response = await http.post(f"{url}/v1/completions", json=body)
            data = response.json()
            results.append(
                {
                    "status": response.status_code,
                    "latency_s": time.perf_counter() - start,
                    "tokens": (data.get("usage") or {}).get("completion_tokens", 0),
                    "adapter": (data.get("lingualift") or {}).get("adapter"),
                }
            )

    async with httpx.AsyncClient(timeout=3600, limits=httpx.Limits(max_connections=clients)) as h:
        start = time.perf_counter()
        await asyncio.gather(*(client(h) for _ in range(clients)))
        seconds = time.perf_counter() - start
    return results, seconds


def closed_summary(name: str, results: list[dict], seconds: float) -> dict:
    tokens = sum(r["tokens"] for r in results)
    latencies = [r["latency_s"] for r in results]
    return {
        "mode": name,
        "requests": len(results),
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "p50_latency_s": percentile(latencies, 0.5),
        "p95_latency_s": percentile(latencies, 0.95),
        "adapters": sorted({str(r.get("adapter")) for r in results}),
    }


def bare_loops(model_spec, store_root, langs, prompts, batch_size, max_tokens) -> list[dict]:
    """``model.generate`` on the same prompts at the same batch size, no server: first with
    one adapter active, then with each row's adapter (``adapter_names``)."""
    import torch
    from peft import PeftModel

    from lingualift.adapters import AdapterStore
    from lingualift.models import load_causal_lm

    store = AdapterStore(store_root)
    model, tokenizer = load_causal_lm(model_spec)
    model = PeftModel.from_pretrained(model, str(store.path(langs[0])), adapter_name=langs[0])
    for lang in langs[1:]:
        model.load_adapter(str(store.path(lang)), adapter_name=lang)
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    summaries = []
    for name in ("bare", "bare-mixed"):
        model.set_adapter(langs[0])
        latencies, tokens = [], 0
        start = time.perf_counter()
        for i in range(0, len(prompts), batch_size):
            rows = prompts[i : i + batch_size]
            batch = tokenizer([p for _, p in rows], return_tensors="pt", padding=True)
            extra = {"adapter_names": [lang for lang, _ in rows]} if name == "bare-mixed" else {}
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(
                    **batch,
                    **extra,
                    max_new_tokens=max_tokens,
                    min_new_tokens=max_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            latencies += [time.perf_counter() - t0] * len(rows)
            tokens += (out.shape[1] - batch["input_ids"].shape[1]) * len(rows)
        seconds = time.perf_counter() - start
        summary = closed_summary(name, [{"latency_s": x, "tokens": 0} for x in latencies], seconds)
        summary.update(tokens=tokens, tokens_per_s=tokens / seconds, adapters=["generate"])
        summaries.append(summary)
    return summaries


# -- the run -------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--tiny", action="store_true", help="defaults for a tiny random model (PRESETS['tiny'])")
    add("--model", default="embedded:gemma-3-270m")
    add("--langs", default="sw,fr,es,de", help="one adapter each")
    add("--max-batch", type=int, default=8, help="the servers' max_batch_size")
    add("--batch-wait-ms", type=float, default=10.0)
    add("--requests", type=int, help="Poisson requests per load and server")
    add("--loads", help="offered loads, fractions of the measured capacity (comma-separated)")
    add("--rates", help="offered loads in requests/s instead of --loads (comma-separated)")
    add("--min-tokens", type=int, default=8)
    add("--max-tokens", type=int, default=128)
    add("--seed", type=int, default=0)
    add("--clients", type=int, default=8, help="closed loop: concurrent clients (= batch size)")
    add("--closed-requests", type=int, help="closed loop: requests per mode and round")
    add("--closed-tokens", type=int, help="closed loop: tokens per request")
    add("--rounds", type=int, help="closed loop: rounds of mixed and single")
    add("--phases", default="poisson,closed", help="which phases to run")
    add("--timeout-s", type=float, help="bound on the whole run")
    add("--threads", type=int, help="torch threads of the servers and the bare loops")
    add("--out", default="docs/serve_load.json")
    add("--table", metavar="JSON", help="only print the Markdown tables of a report, then exit")
    args = parser.parse_args()
    for key, value in PRESETS["tiny" if args.tiny else "real"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    unknown = [lang for lang in args.langs.split(",") if lang not in PROMPTS]
    if unknown:
        parser.error(f"no built-in prompts for {unknown}; choose from {sorted(PROMPTS)}")
    return args


def markdown(report: dict) -> str:
    """The report's figures as the Markdown tables of docs/serving.md."""
    lines = []
    if "poisson" in report:
        lines += [
            "| offered load | batching | tok/s | TTFT p50 / p95 | latency p50 / p95 |",
            "| --- | --- | --- | --- | --- |",
        ]
        capacity = report["poisson"]["capacity_tokens_per_s"]
        for load in report["poisson"]["loads"]:
            share = load["offered_tokens_per_s"] / capacity
            for mode in MODES:
                m = load[mode]
                lines.append(
                    f"| {load['rate_per_s']:.2f} req/s ({share:.0%}) | {mode} | "
                    f"{m['tokens_per_s']:.1f} | {m['p50_ttft_s']:.2f} / {m['p95_ttft_s']:.2f} s | "
                    f"{m['p50_latency_s']:.2f} / {m['p95_latency_s']:.2f} s |"
                )
        lines += ["", "| offered load | p95 latency continuous / static | throughput continuous / static |",
                  "| --- | --- | --- |"]  # fmt: skip
        for load in report["poisson"]["loads"]:
            r = load["ratios"]
            lines.append(
                f"| {load['rate_per_s']:.2f} req/s | {r['p95_latency_continuous_over_static']:.2f} "
                f"(goal <= 0.5) | {r['throughput_continuous_over_static']:.2f} (goal >= 1) |"
            )
    if "closed" in report and "ratios" in report["closed"]:
        rate, ratios = report["closed"]["median_tokens_per_s"], report["closed"]["ratios"]
        lines += [
            "",
            "| closed loop (median tok/s) | mixed | single | bare | bare-mixed |",
            "| --- | --- | --- | --- | --- |",
            f"| | {rate['mixed']:.1f} | {rate['single']:.1f} | {rate['bare']:.1f} | "
            f"{rate['bare-mixed']:.1f} |",
            "",
            f"mixed / single {ratios['mixed_over_single']:.2f} (goal >= 0.9), single / bare "
            f"{ratios['single_over_bare']:.2f} (goal >= 0.9).",
        ]
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    if args.table:
        print(markdown(json.loads(Path(args.table).read_text("utf-8"))))
        return 0
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    deadline = time.monotonic() + args.timeout_s
    langs = [x.strip() for x in args.langs.split(",") if x.strip()]
    phases = {p.strip() for p in args.phases.split(",")}
    work = Path(tempfile.mkdtemp(prefix="lingualift-serve-load-"))
    store_root = work / "store"
    print(f"building {len(langs)} random adapters on {args.model} in {store_root}", flush=True)
    make_store(args.model, langs, store_root)
    sent = dict.fromkeys(MODES, 0)
    result: dict = {
        "model": args.model,
        "langs": langs,
        "max_batch_size": args.max_batch,
        "threads": args.threads,
    }

    def out_of_time(what: str) -> None:
        if time.monotonic() > deadline:
            raise SystemExit(f"out of time (--timeout-s) before {what}; stopping")

    with servers(args, store_root, work, deadline) as running:
        warm = [(langs[i % len(langs)], PROMPTS[langs[i % len(langs)]][0]) for i in range(4)]
        for mode in MODES:  # the first requests of a process pay for lazy initialisation
            results, _ = asyncio.run(closed_loop(running[mode]["url"], warm, 4, 4))
            assert all(r["status"] == 200 for r in results), results
            sent[mode] += len(results)

        if "poisson" in phases:
            cap = asyncio.run(capacity(running["continuous"]["url"], langs, args.max_batch, 64))
            sent["continuous"] += args.max_batch
            mean_tokens = (args.min_tokens + args.max_tokens) / 2
            if args.rates:
                rates = [float(x) for x in args.rates.split(",")]
            else:
                rates = [float(x) * cap / mean_tokens for x in args.loads.split(",")]
            print(f"capacity {cap:.1f} tok/s = {cap / mean_tokens:.3f} req/s of {mean_tokens:.0f} "
                  "tokens on average", flush=True)  # fmt: skip
            poisson = []
            for k, rate in enumerate(rates):
                requests = workload(
                    langs, args.requests, rate, args.min_tokens, args.max_tokens, args.seed + k
                )
                row = {"rate_per_s": rate, "offered_tokens_per_s": rate * mean_tokens}
                for mode in MODES if k % 2 == 0 else MODES[::-1]:
                    out_of_time(f"the {mode} run at {rate:.3f} requests/s")
                    results, seconds = asyncio.run(poisson_run(running[mode]["url"], requests))
                    sent[mode] += len(results)
                    failed = [r for r in results if r["status"] != 200]
                    assert not failed, f"{len(failed)} requests failed: {failed[:3]}"
                    assert all(r["tokens"] == r["asked"] for r in results), results
                    row[mode] = poisson_summary(results, seconds)
                    row[mode]["requests_detail"] = results
                s, c = row["static"], row["continuous"]
                row["ratios"] = {
                    "p95_latency_continuous_over_static": c["p95_latency_s"] / s["p95_latency_s"],
                    "throughput_continuous_over_static": c["tokens_per_s"] / s["tokens_per_s"],
                }
                poisson.append(row)
                for mode in MODES:
                    m = row[mode]
                    print(
                        f"{rate:6.3f} req/s {mode:<10} {m['tokens_per_s']:8.1f} tok/s  ttft p50 "
                        f"{m['p50_ttft_s']:.2f} p95 {m['p95_ttft_s']:.2f} s  latency p50 "
                        f"{m['p50_latency_s']:.2f} p95 {m['p95_latency_s']:.2f} s",
                        flush=True,
                    )
            result["poisson"] = {
                "capacity_tokens_per_s": cap,
                "requests_per_load": args.requests,
                "max_tokens_range": [args.min_tokens, args.max_tokens],
                "loads": poisson,
                "goals": {
                    "p95_latency_continuous_over_static": "<= 0.5",
                    "throughput_continuous_over_static": ">= 1.0",
                },
            }

        if "closed" in phases:
            mixed = [
                (langs[i % len(langs)], PROMPTS[langs[i % len(langs)]][i // len(langs) % 2])
                for i in range(args.closed_requests)
            ]
            single = [(langs[0], prompt) for _, prompt in mixed]  # the same prompts, one adapter
            rounds: dict[str, list[dict]] = {"mixed": [], "single": []}
            url = running["continuous"]["url"]
            for round_ in range(args.rounds):
                for name in ("mixed", "single") if round_ % 2 == 0 else ("single", "mixed"):
                    out_of_time(f"closed-loop round {round_} {name}")
                    requests = mixed if name == "mixed" else single
                    results, seconds = asyncio.run(
                        closed_loop(url, requests, args.clients, args.closed_tokens)
                    )
                    sent["continuous"] += len(results)
                    failed = [r for r in results if r["status"] != 200]
                    assert not failed, f"{len(failed)} requests failed: {failed[:3]}"
                    assert all(r["tokens"] == args.closed_tokens for r in results)
                    rounds[name].append(closed_summary(name, results, seconds))
                    print(
                        f"closed round {round_} {name:<6} {rounds[name][-1]['tokens_per_s']:8.1f} "
                        f"tok/s  p50 {rounds[name][-1]['p50_latency_s']:.2f} s",
                        flush=True,
                    )
            result["closed"] = {"clients": args.clients, "tokens": args.closed_tokens,
                                "rounds_detail": rounds}  # fmt: skip

    from lingualift.data.traffic import read_segments

    log_rows = {}
    for mode in MODES:
        log_dir = work / f"traffic-{mode}"
        assert not list(log_dir.glob("*.partial")), f"the {mode} server left an open segment"
        log_rows[mode] = len(list(read_segments(log_dir)))
        assert log_rows[mode] == sent[mode], f"{mode}: {log_rows[mode]} log rows for {sent[mode]}"
    result["requests_sent"], result["log_rows"] = sent, log_rows
    print(f"traffic logs: {log_rows} rows for {sent} requests", flush=True)

    if "closed" in phases:
        out_of_time("the bare loops")
        prompts = mixed  # one round's prompts: rates, not totals, are compared
        bare, bare_mixed = bare_loops(
            args.model, store_root, langs, prompts, args.clients, args.closed_tokens
        )
        rate = {name: statistics.median(s["tokens_per_s"] for s in rounds[name]) for name in rounds}
        closed = result["closed"]
        closed["median_tokens_per_s"] = {**rate, "bare": bare["tokens_per_s"],
                                         "bare-mixed": bare_mixed["tokens_per_s"]}  # fmt: skip
        closed["bare"], closed["bare_mixed"] = bare, bare_mixed
        closed["ratios"] = {
            "mixed_over_single": rate["mixed"] / rate["single"],
            "single_over_bare": rate["single"] / bare["tokens_per_s"],
            "mixed_over_bare_mixed": rate["mixed"] / bare_mixed["tokens_per_s"],
        }
        closed["goals"] = {"mixed_over_single": 0.9, "single_over_bare": 0.9}
        print(
            f"closed loop: bare {bare['tokens_per_s']:.1f} tok/s, bare-mixed "
            f"{bare_mixed['tokens_per_s']:.1f}; mixed/single "
            f"{closed['ratios']['mixed_over_single']:.2f} (goal 0.9), single/bare "
            f"{closed['ratios']['single_over_bare']:.2f} (goal 0.9)",
            flush=True,
        )
    result.update(cpu_count=os.cpu_count(), loadavg=os.getloadavg())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", "utf-8")
    print(markdown(result))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
