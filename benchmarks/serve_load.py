"""Benchmark: load on the OpenAI-compatible server vs a bare ``model.generate`` loop.

A server (``lingualift serve`` in a subprocess, localhost only) holds one base
model with a random LoRA adapter (r=8, all linear layers; speed does not depend
on what an adapter learned) for each of ``--langs``. ``--clients`` concurrent
clients each send requests one after the other (greedy, ``ignore_eos``, exactly
``--max-tokens`` new tokens) until ``--requests`` were answered, in two modes,
alternating over ``--rounds``:

* mixed  - request ``i`` asks for language ``langs[i % len(langs)]``: every batch
  mixes all adapters (stacked per layer, :mod:`lingualift.adapters.multilora`);
* single - every request asks for the first language: one adapter per batch;

then, with the server stopped, the same prompts run through

* bare   - ``model.generate`` in batches of ``--clients`` (the server's batch
  size), left padded, first language's adapter active, no HTTP and no queue;
* bare-mixed - the same with each row's adapter through ``adapter_names``.

It reports generated tokens per second and p50/p95 request latency per mode,
the ratios the design aims for (mixed/single >= 0.8, single/bare >= 0.9),
asserts that every request was answered (HTTP 200) and that the traffic log
holds one row per request, prints a table and writes JSON (``--out``).
Everything stops by itself: ``--timeout-s`` bounds the whole run. With the
defaults (8 clients, 16 requests of 32 tokens per mode and round, 2 rounds:
2,048 server tokens, then 2 x 512 bare tokens) a run on the embedded 270M
model took about 2 minutes on 2 idle CPU cores (docs/serving.md).

    python benchmarks/serve_load.py --out docs/serve_load.json                  # embedded 270M

    # a quick check of the script itself on a tiny random model (seconds):
    python -c "from lingualift.testing import save_tiny_causal_lm as s; s('/tmp/tiny-model')"
    python benchmarks/serve_load.py --model /tmp/tiny-model --clients 4 --requests 8 \\
        --max-tokens 8 --out /tmp/serve_load_tiny.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
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


async def run_clients(url: str, requests: list[tuple[str, str]], clients: int, max_tokens: int):
    """Send ``requests`` ((model, prompt) pairs) from ``clients`` concurrent clients."""
    import httpx

    results: list[dict] = []
    pending = list(enumerate(requests))

    async def client(http: httpx.AsyncClient) -> None:
        while pending:
            _, (model, prompt) = pending.pop(0)
            body = {
                "model": model,
                "prompt": prompt,
                "max_tokens": max_tokens,
                "temperature": 0,
                "ignore_eos": True,
            }
            start = time.perf_counter()
            response = await http.post(f"{url}/v1/completions", json=body)
            latency = time.perf_counter() - start
            data = response.json()
            results.append(
                {
                    "status": response.status_code,
                    "latency_s": latency,
                    "tokens": (data.get("usage") or {}).get("completion_tokens", 0),
                    "adapter": (data.get("lingualift") or {}).get("adapter"),
                }
            )

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        seconds = time.perf_counter() - start
    return results, seconds


def summarize(name: str, results: list[dict], seconds: float) -> dict:
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
        summary = summarize(name, [{"latency_s": x, "tokens": 0} for x in latencies], seconds)
        summary.update(tokens=tokens, tokens_per_s=tokens / seconds, adapters=["generate"])
        summaries.append(summary)
    return summaries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:gemma-3-270m")
    parser.add_argument("--langs", default="sw,fr,es,de", help="one adapter each")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients = batch size")
    parser.add_argument("--requests", type=int, default=16, help="requests per mode and round")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-wait-ms", type=float, default=10.0)
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="bound on the whole run")
    parser.add_argument("--out", default="docs/serve_load.json")
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout_s
    langs = [x.strip() for x in args.langs.split(",") if x.strip()]
    unknown = [lang for lang in langs if lang not in PROMPTS]
    if unknown:
        parser.error(f"no built-in prompts for {unknown}; choose from {sorted(PROMPTS)}")

    work = Path(tempfile.mkdtemp(prefix="lingualift-serve-load-"))
    store_root, log_dir = work / "store", work / "traffic"
    print(f"building {len(langs)} random adapters on {args.model} in {store_root}", flush=True)
    make_store(args.model, langs, store_root)

    mixed = [
        (langs[i % len(langs)], PROMPTS[langs[i % len(langs)]][i // len(langs) % 2])
        for i in range(args.requests)
    ]
    single = [(langs[0], prompt) for _, prompt in mixed]  # the same prompts, one adapter

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-c", CLI, "serve",
        f"model={args.model}", f"store={store_root}", f"log_dir={log_dir}", f"port={port}",
        f"max_batch_size={args.clients}", f"batch_wait_ms={args.batch_wait_ms}",
        f"max_queue={4 * args.clients}", f"max_tokens_limit={max(args.max_tokens, 16)}",
        f"default_max_tokens={min(16, args.max_tokens)}", "reload_interval_s=60",
        "log_level=warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=os.environ.copy())
    sent = 0
    summaries: dict[str, list[dict]] = {"mixed": [], "single": []}
    try:
        import httpx

        while True:  # the model loads: wait for /health
            if server.poll() is not None:
                raise SystemExit(f"the server exited with code {server.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start before --timeout-s")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        warm, _ = asyncio.run(run_clients(url, mixed[: args.clients], args.clients, 4))
        sent += len(warm)
        assert all(r["status"] == 200 for r in warm), warm
        for round_ in range(args.rounds):
            order = ["mixed", "single"] if round_ % 2 == 0 else ["single", "mixed"]
            for name in order:
                if time.monotonic() > deadline:
                    raise SystemExit("out of time (--timeout-s); stopping")
                requests = mixed if name == "mixed" else single
                results, seconds = asyncio.run(
                    run_clients(url, requests, args.clients, args.max_tokens)
                )
                sent += len(results)
                failed = [r for r in results if r["status"] != 200]
                assert not failed, f"{len(failed)} requests failed: {failed[:3]}"
                assert all(r["tokens"] == args.max_tokens for r in results)
                summary = summarize(name, results, seconds)
                summaries[name].append(summary)
                print(
                    f"round {round_} {name:<6} {summary['tokens_per_s']:8.1f} tok/s  "
                    f"p50 {summary['p50_latency_s']:.2f} s  p95 {summary['p95_latency_s']:.2f} s  "
                    f"adapters {summary['adapters']}",
                    flush=True,
                )
    finally:
        server.send_signal(signal.SIGINT)  # graceful: the traffic log closes its segment
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    from lingualift.data.traffic import list_segments, read_segments

    rows = list(read_segments(log_dir))
    assert not list(log_dir.glob("*.partial")), "the server left an open segment"
    assert len(rows) == sent, f"{len(rows)} log rows for {sent} requests"
    print(f"traffic log: {len(rows)} rows in {len(list_segments(log_dir))} segment(s)", flush=True)

    prompts = mixed  # one round's prompts: rates, not totals, are compared
    if time.monotonic() > deadline:
        raise SystemExit("out of time (--timeout-s) before the bare loops")
    bare, bare_mixed = bare_loops(
        args.model, store_root, langs, prompts, args.clients, args.max_tokens
    )
    for summary in (bare, bare_mixed):
        print(f"{summary['mode']:<10} {summary['tokens_per_s']:8.1f} tok/s", flush=True)

    def best(name: str) -> dict:
        return max(summaries[name], key=lambda s: s["tokens_per_s"])

    rate = {
        name: statistics.median(s["tokens_per_s"] for s in summaries[name]) for name in summaries
    }
    ratios = {
        "mixed_over_single": rate["mixed"] / rate["single"],
        "single_over_bare": rate["single"] / bare["tokens_per_s"],
        "mixed_over_bare_mixed": rate["mixed"] / bare_mixed["tokens_per_s"],
    }
    result = {
        "model": args.model,
        "langs": langs,
        "clients": args.clients,
        "batch_size": args.clients,
        "requests_per_mode_and_round": args.requests,
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "requests_sent": sent,
        "log_rows": len(rows),
        "median_tokens_per_s": {**rate, "bare": bare["tokens_per_s"], "bare-mixed": bare_mixed["tokens_per_s"]},
        "best_round": {"mixed": best("mixed"), "single": best("single")},
        "rounds_detail": summaries,
        "bare": bare,
        "bare_mixed": bare_mixed,
        "ratios": ratios,
        "goals": {"mixed_over_single": 0.8, "single_over_bare": 0.9},
        "cpu_count": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }  # fmt: skip
    print(
        f"mixed/single {ratios['mixed_over_single']:.2f} (goal 0.8), "
        f"single/bare {ratios['single_over_bare']:.2f} (goal 0.9), "
        f"mixed/bare-mixed {ratios['mixed_over_bare_mixed']:.2f}",
        flush=True,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), "utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
