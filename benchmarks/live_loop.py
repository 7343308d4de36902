"""The whole loop, live: a server, drifting traffic, ECDA following its log, a hot promotion.

One script, localhost only, bounded in requests and time, that stops by itself:

1. **prepare** a store with ``<lang>/v1``: a LoRA adapter trained briefly (``run_train``) on
   verses of the "before" genre (default Matthew-Luke, books 40-42), with its held-out split
   (``heldout.jsonl``, the gate's old set) and its reference profile built from other verses of
   that genre (``build_reference``). Cached in ``<work-dir>/prep`` (a rerun with the same
   settings trains nothing), or taken from ``--store``; each run works on a copy;
2. start ``lingualift serve`` (a subprocess on 127.0.0.1, a free port) with a traffic-log folder
   whose segments close every ``--log-max-seconds``, and wait for ``/health``;
3. start ``lingualift ecda`` (a subprocess) on that folder with ``follow=true``: count windows
   of ``--window`` queries, a pool of other languages' verses, a short update, the gate;
4. replay traffic with the ``openai`` client from ``--clients`` threads at ``--rate`` requests/s:
   ``--before-windows`` windows of "before" verses, then verses of the "after" genre (default
   the letters, books 45-65), recording for every request its status and the adapter version that
   answered (the ``lingualift.adapter`` field and the ``X-Lingualift-Adapter`` header);
5. stop once the new version has answered for ``--after-promotion-s`` seconds and
   ``--after-promotion-requests`` requests (or at ``--timeout-s``, or when the gate keeps the
   current version): stop the traffic, stop the server with SIGTERM (it closes its last
   segment), let ecda read the rest of the log, stop it with SIGTERM; then check
   - every request answered (HTTP 200; no 5xx, no connection error),
   - the traffic log holds exactly one row per request (matched by request id, same adapter),
   - the store's history shows the promotion with its evidence (windows, p-values, metrics),
   - the server never restarted (one PID, one process start time, its counters count every
     request of the run),
   - requests switched from the old version to the new one cleanly (once a new-version answer was
     seen no later request got the old one) and without a gap (no silence at the switch longer
     than the longest silence elsewhere in the run, plus a second);
6. write the timeline plot (requests over time coloured by the version that answered, the drift
   monitor's p-values per window with its drift marks, the promotion) and a JSON summary, and
   print the figures. The exit code is 0 only when every check passed.

    # the embedded Gemma 3 270M (about 11-15 minutes on 2 CPU cores; writes docs/live_loop.*)
    python benchmarks/live_loop.py

    # the script itself on a tiny random model (a minute or two; its figures mean nothing)
    python -c "from lingualift.testing import save_tiny_causal_lm as s; s('/tmp/tiny-model', \\
        'llama', hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, initializer_range=0.2)"
    python benchmarks/live_loop.py --tiny --model /tmp/tiny-model --encoder lm:/tmp/tiny-model

``--tiny`` changes the defaults (sizes, rates, intervals, and a permissive gate,
``--tolerance 1.0``: a random 32-wide model's NLL moves by tenths of a nat per step); every
setting can still be given explicitly. See docs/serving.md, "The whole loop, live".
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime as dt
import itertools
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

CLI = "import sys; from lingualift.cli import main; sys.exit(main(sys.argv[1:]))"

# Defaults of the two modes. "real" is sized for the embedded Gemma 3 270M on 2 CPU cores: one
# LoRA step of 4 x 64 tokens takes about 4 s there, decoding 8 tokens about 0.5-1 s, e5-nano
# embeds about 40 texts/s; "tiny" for a random 32-wide model that does everything in
# milliseconds, where process start-up dominates.
PRESETS: dict[str, dict[str, Any]] = {
    "real": {
        "model": "embedded:gemma-3-270m",
        "encoder": "e5-nano",
        "train_verses": 200,
        "usage_verses": 200,
        "v1_steps": 16,
        "update_steps": 10,
        "batch_size": 4,
        "max_length": 64,
        "lr": 3e-4,
        "pool": "corpus:all-{lang}:all:20",  # 20 verses of each other corpus language
        "budget": 60,
        "window": 40,
        "before_windows": 2,
        "n_permutations": 200,
        "n_bootstrap": 500,
        "min_gain": 0.0,
        "tolerance": 0.02,
        "rate": 0.5,
        "clients": 4,
        "max_tokens": 8,
        "log_max_seconds": 10.0,
        "poll_seconds": 5.0,
        "reload_interval_s": 1.0,
        "after_promotion_s": 45.0,
        "after_promotion_requests": 30,
        "timeout_s": 1800.0,
        "threads": 1,
        "out_json": "docs/live_loop.json",
        "out_png": "docs/live_loop.png",
        "work_dir": "runs/live_loop",
    },
    "tiny": {
        "model": None,  # required: a local tiny model folder
        "encoder": None,  # default lm:<model>
        "train_verses": 60,
        "usage_verses": 120,
        "v1_steps": 4,
        "update_steps": 4,
        "batch_size": 4,
        "max_length": 48,
        "lr": 0.02,
        "pool": "corpus:all-{lang}:all:5",
        "budget": 16,
        "window": 40,
        "before_windows": 2,
        "n_permutations": 99,
        "n_bootstrap": 199,
        "min_gain": -1.0,  # permissive: a random 32-wide model's NLL barely moves
        "tolerance": 1.0,
        "rate": 12.0,
        "clients": 4,
        "max_tokens": 8,
        "log_max_seconds": 1.0,
        "poll_seconds": 0.5,
        "reload_interval_s": 0.2,
        "after_promotion_s": 3.0,
        "after_promotion_requests": 20,
        "timeout_s": 300.0,
        "threads": 1,
        "out_json": None,  # default <work-dir>/live_loop_tiny.json
        "out_png": None,
        "work_dir": "runs/live_loop_tiny",
    },
}


# -- settings ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    presets = "\n".join(
        f"  {key:<26} {PRESETS['real'][key]!s:<24} {PRESETS['tiny'][key]!s}"
        for key in PRESETS["real"]
    )
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"defaults (setting, real model, --tiny):\n{presets}",
    )
    add = parser.add_argument
    add("--tiny", action="store_true", help="defaults for a tiny random model (see PRESETS)")
    add("--model", help="base model (default: the embedded Gemma 3 270M; --tiny: required)")
    add("--encoder", help="monitor encoder (default e5-nano; --tiny: lm:<model>)")
    add("--lang", default="sw", help="the language whose adapter is kept fresh")
    add("--before-books", default="40-42", help="corpus books of the usage v1 was built for")
    add("--after-books", default="45-65", help="corpus books of the usage after the change")
    add("--store", help="reuse this store (its <lang> current version needs reference/ and "
        "heldout.jsonl) instead of training v1; it is copied, never changed")  # fmt: skip
    add("--work-dir", help="where the prepared store, the run folders and logs go")
    add("--seed", type=int, default=0)
    group = parser.add_argument_group("v1 and the update")
    group.add_argument("--train-verses", type=int, help="v1's training verses (before genre)")
    group.add_argument("--usage-verses", type=int, help="verses v1's reference profile is built on")
    group.add_argument("--v1-steps", type=int, help="optimizer steps of v1")
    group.add_argument("--update-steps", type=int, help="optimizer steps of the ECDA update")
    group.add_argument("--batch-size", type=int, help="training batch (v1 and update)")
    group.add_argument("--max-length", type=int, help="training row length in tokens")
    group.add_argument("--lr", type=float, help="learning rate (v1 and update)")
    group.add_argument("--pool", help="COMPASS pool: a corpus spec or a file ({lang}: --lang); "
                       "rows in --lang are dropped")  # fmt: skip
    group.add_argument("--budget", type=int, help="pool items COMPASS selects for the update")
    group = parser.add_argument_group("monitor and gate")
    group.add_argument("--window", type=int, help="queries per monitor window")
    group.add_argument("--before-windows", type=int, help="windows of before-genre traffic")
    group.add_argument("--n-permutations", type=int, help="MMD permutations")
    group.add_argument("--n-bootstrap", type=int, help="JS bootstrap resamples")
    group.add_argument("--min-gain", type=float, help="gate: least new-usage gain (nats/token)")
    group.add_argument("--tolerance", type=float, help="gate: most old-set loss (nats/token)")
    group = parser.add_argument_group("traffic and processes")
    group.add_argument("--rate", type=float, help="requests per second sent")
    group.add_argument("--clients", type=int, help="concurrent client threads (= batch size)")
    group.add_argument("--max-tokens", type=int, help="tokens generated per request")
    group.add_argument("--log-max-seconds", type=float, help="traffic-log segment rotation")
    group.add_argument("--poll-seconds", type=float, help="ecda's poll interval")
    group.add_argument("--reload-interval-s", type=float, help="server's store poll interval")
    group.add_argument("--after-promotion-s", type=float, help="seconds of new-version answers")
    group.add_argument("--after-promotion-requests", type=int, help="new-version answers to see")
    group.add_argument("--timeout-s", type=float, help="bound on the whole run")
    group.add_argument("--threads", type=int, help="torch threads of the server and of ecda")
    group.add_argument("--out-json", help="summary JSON")
    group.add_argument("--out-png", help="timeline plot")
    args = parser.parse_args(argv)
    preset = PRESETS["tiny" if args.tiny else "real"]
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.tiny and not args.model:
        parser.error("--tiny needs --model <a local tiny model folder> (see the docstring)")
    args.encoder = args.encoder or f"lm:{args.model}"
    args.pool = args.pool.format(lang=args.lang)
    work = Path(args.work_dir)
    args.out_json = args.out_json or str(work / "live_loop_tiny.json")
    args.out_png = args.out_png or str(work / "live_loop_tiny.png")
    return args


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in sorted(vars(args).items())}


# -- step 1: data and v1 ---------------------------------------------------------------------


def draw_verses(lang: str, books: str, n: int, seed: int, exclude: set[str]) -> list[Any]:
    """``n`` verses of ``books`` (drawn with ``seed``, in corpus order) not in ``exclude``."""
    import numpy as np

    from lingualift.data import ParallelCorpus

    rows = [r for r in ParallelCorpus().monolingual(lang, books) if r.id not in exclude]
    if n >= len(rows):
        return rows
    keep = np.sort(np.random.default_rng(seed).choice(len(rows), n, replace=False))
    return [rows[i] for i in keep]


def prepare_data(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Disjoint verse sets: v1's training data, its reference usage, the traffic, the pool."""
    from lingualift.data import write_records
    from lingualift.data.sources import read_source

    folder.mkdir(parents=True, exist_ok=True)
    lang, seed = args.lang, args.seed
    train = draw_verses(lang, args.before_books, args.train_verses, seed, set())
    used = {r.id for r in train}
    usage = draw_verses(lang, args.before_books, args.usage_verses, seed + 1, used)
    used |= {r.id for r in usage}
    before = draw_verses(lang, args.before_books, args.before_windows * args.window, seed + 2, used)
    after = draw_verses(lang, args.after_books, 100_000, seed + 3, set())
    import numpy as np

    after = [after[i] for i in np.random.default_rng(seed + 4).permutation(len(after))]
    pool = read_source(args.pool, seed=seed, role="pool")
    pool = [r for r in pool if r.lang != lang]  # the pool is other languages' text
    paths = {
        "train": write_records(train, folder / "train.jsonl"),
        "usage": write_records(usage, folder / "usage.jsonl"),
        "pool": write_records(pool, folder / "pool.jsonl"),
    }
    if len(before) < args.before_windows * args.window:
        raise SystemExit(f"only {len(before)} before-genre verses left for the traffic")
    return {
        "paths": {k: str(v) for k, v in paths.items()},
        "before": [r.text for r in before],
        "after": [r.text for r in after],
        "sizes": {
            "train": len(train),
            "usage": len(usage),
            "before": len(before),
            "after_available": len(after),
            "pool": len(pool),
        },
    }


def prepare_store(args: argparse.Namespace, prep: Path, data: dict[str, Any]) -> Path:
    """``<prep>/store`` with ``<lang>/v1``: trained (or reused), held-out set kept, reference."""
    from lingualift.adapters import AdapterStore
    from lingualift.jobs.monitor import build_reference
    from lingualift.jobs.train import TrainConfig, run_train
    from lingualift.training import LoraSettings, TrainingArgs

    store_root = prep / "store"
    config = TrainConfig(
        lang=args.lang, model=args.model, data=data["paths"]["train"], data_format="text",
        lora=LoraSettings(r=8, alpha=16), packing=True, eval_fraction=0.1,
        train=TrainingArgs(lr=args.lr, max_steps=args.v1_steps, batch_size=args.batch_size,
                           max_length=args.max_length, save_every=max(1, args.v1_steps // 2),
                           warmup_steps=0, seed=args.seed),
        store=str(store_root), out_dir=str(prep / f"train-{args.lang}"),
    )  # fmt: skip
    result = run_train(config)
    store = AdapterStore(store_root)
    version = store.get(args.lang)
    before, after = (result.metrics.get(k) or math.nan for k in ("eval_loss_before", "eval_loss"))
    say(f"v1: {version.name} ({'reused' if result.reused else 'trained'}; "
        f"eval loss {before:.3f} -> {after:.3f})")  # fmt: skip
    if not (version.path / "reference").is_dir():
        reference = build_reference(
            store, args.lang, data["paths"]["usage"], encoder=args.encoder, seed=args.seed
        )
        say(f"reference of {version.name}: {reference.n_clusters} clusters, min window "
            f"{reference.min_window}")  # fmt: skip
    return store_root


# -- processes -------------------------------------------------------------------------------


def say(text: str) -> None:
    print(f"[live] {time.strftime('%H:%M:%S')} {text}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22, counted after the name


class Child:
    """A subprocess whose output lines are kept, time-stamped, and copied to a log file."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.lines: list[tuple[float, str]] = []
        self.log = log.open("w", encoding="utf-8")
        self.popen = subprocess.Popen(
            [sys.executable, "-c", CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, env=env, start_new_session=True,
        )  # fmt: skip
        self.pid = self.popen.pid
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            now = time.time()
            line = line.rstrip("\n")
            self.lines.append((now, line))
            stamp = dt.datetime.fromtimestamp(now).strftime("%H:%M:%S.%f")[:-3]
            self.log.write(f"{stamp} {line}\n")
            self.log.flush()

    def first(self, text: str) -> float | None:
        """When the first output line containing ``text`` arrived."""
        return next((t for t, line in list(self.lines) if text in line), None)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code.

        Both verbs stop gracefully on SIGTERM (the server finishes its requests and closes its
        log segment; ecda stops between two polls). SIGTERM rather than SIGINT: a process
        started in the background by a non-interactive shell inherits SIGINT ignored.
        """
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                say(f"{self.name} did not stop within {timeout:.0f} s; killing it")
                self.popen.kill()
                self.popen.wait()
        self.reader.join(5)
        self.log.close()
        return self.popen.returncode


def child_env(threads: int) -> dict[str, str]:
    import lingualift

    env = os.environ.copy()
    source = str(Path(lingualift.__file__).resolve().parents[1])  # children run this same code
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


def wait_health(url: str, child: Child, deadline: float) -> dict[str, Any]:
    import httpx

    while True:
        if not child.alive():
            tail = "\n".join(line for _, line in child.lines[-15:])
            raise SystemExit(f"the server exited with code {child.popen.returncode}:\n{tail}")
        if time.time() > deadline:
            raise SystemExit("the server did not answer /health before --timeout-s")
        try:
            response = httpx.get(f"{url}/health", timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.25)


# -- step 4: traffic ---------------------------------------------------------------------------


@dataclasses.dataclass
class Sent:
    """One request of the replay and what came back."""

    index: int
    phase: str
    sent: float
    done: float | None = None
    status: int | None = None
    adapter: str | None = None
    header_adapter: str | None = None
    request_id: str | None = None
    completion_tokens: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


def send(client: Any, lang: str, prompt: str, max_tokens: int, record: Sent) -> Sent:
    import openai

    try:
        raw = client.completions.with_raw_response.create(
            model=lang, prompt=prompt, max_tokens=max_tokens, temperature=0
        )
        record.status = raw.http_response.status_code
        record.header_adapter = raw.headers.get("x-lingualift-adapter")
        record.request_id = raw.headers.get("x-request-id")
        answer = raw.parse()
        info = (answer.model_extra or {}).get("lingualift") or {}
        record.adapter = info.get("adapter")
        record.completion_tokens = answer.usage.completion_tokens if answer.usage else None
    except openai.APIStatusError as exc:
        record.status = exc.status_code
        record.error = str(exc)[:200]
    except Exception as exc:  # connection errors, timeouts: the request was lost
        record.error = f"{type(exc).__name__}: {str(exc)[:200]}"
    record.done = time.time()
    return record


class Replay:
    """Send the stream at a steady rate from a few client threads; stop when told."""

    def __init__(self, args: argparse.Namespace, url: str, data: dict[str, Any]) -> None:
        import openai

        self.args = args
        self.client = openai.OpenAI(
            base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600
        )
        self.before = data["before"]
        self.after = data["after"]
        self.records: list[Sent] = []
        self.slots = threading.Semaphore(args.clients)
        self.pool = concurrent.futures.ThreadPoolExecutor(args.clients)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.start = 0.0
        self.change: float | None = None  # when the first after-genre request was sent

    def query(self, i: int) -> tuple[str, str]:
        if i < len(self.before):
            return "before", self.before[i]
        return "after", self.after[(i - len(self.before)) % len(self.after)]

    def run(self) -> None:
        self.start = time.time()
        self.thread.start()

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            due = self.start + i / self.args.rate
            if self.stop.wait(max(0.0, due - time.time())):
                break
            while not self.slots.acquire(timeout=0.2):  # every client busy: the rate yields
                if self.stop.is_set():
                    return
            phase, prompt = self.query(i)
            record = Sent(i, phase, time.time())
            if phase == "after" and self.change is None:
                self.change = record.sent
            self.records.append(record)
            future = self.pool.submit(
                send, self.client, self.args.lang, prompt, self.args.max_tokens, record
            )
            future.add_done_callback(lambda _: self.slots.release())
            i += 1

    def finish(self, timeout: float) -> None:
        """Stop sending and wait for the requests in flight."""
        self.stop.set()
        self.thread.join(timeout)
        self.pool.shutdown(wait=True)

    def answered_by(self, label: str) -> list[Sent]:
        return [r for r in list(self.records) if r.done is not None and r.adapter == label]


# -- step 5: checks --------------------------------------------------------------------------


def metrics_values(url: str) -> dict[str, float]:
    """The server's Prometheus counters, ``name{labels}`` -> value."""
    import httpx

    values = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def history_events(store_root: Path, lang: str) -> list[dict[str, Any]]:
    from lingualift.adapters import AdapterStore

    return AdapterStore(store_root).history(lang)


def wait_for_monitor(ecda_out: Path, log_dir: Path, child: Child, timeout: float) -> bool:
    """Wait until ecda's cursor is at the last line of the last closed segment (True), or
    ``timeout`` seconds (False)."""
    from lingualift.data.traffic import list_segments

    segments = list_segments(log_dir)
    if not segments:
        return True
    last = segments[-1]
    lines = sum(1 for line in last.read_bytes().splitlines() if line.strip())
    deadline = time.time() + timeout
    state = ecda_out / "monitor" / "state.json"
    while time.time() < deadline and child.alive():
        try:
            cursor = json.loads(state.read_text("utf-8")).get("cursor")
        except (OSError, json.JSONDecodeError):
            cursor = None
        if cursor and cursor[0] == last.name and cursor[1] >= lines:
            # The state is saved before the report is drawn: wait for drift.png too, so that
            # the SIGTERM finds ecda waiting for its next poll (a clean stop).
            plot = ecda_out / "monitor" / "drift.png"
            while time.time() < deadline and child.alive():
                if plot.is_file() and plot.stat().st_mtime >= state.stat().st_mtime:
                    return True
                time.sleep(0.2)
            return True
        time.sleep(0.2)
    return False


def silences(times: list[float]) -> list[tuple[float, float]]:
    """(start, length) of every interval between consecutive answer times."""
    ordered = sorted(times)
    return [(a, b - a) for a, b in itertools.pairwise(ordered)]


def analyse(
    args: argparse.Namespace,
    replay: Replay,
    log_rows: list[dict[str, Any]],
    history: list[dict[str, Any]],
    promotion_time: float | None,
    server: dict[str, Any],
    drift_rows: list[dict[str, Any]],
    ecda_events: dict[str, float | None],
) -> dict[str, Any]:
    records = replay.records
    t0 = replay.start
    old_label = f"{args.lang}/v{server['v_start']}"
    promote = next((h for h in history if h.get("action") == "promote"), None)
    new_label = f"{args.lang}/v{promote['version']}" if promote else None
    failed = [r for r in records if not r.ok]
    statuses: dict[str, int] = {}
    for r in records:
        key = str(r.status) if r.status is not None else "no answer"
        statuses[key] = statuses.get(key, 0) + 1
    by_adapter: dict[str, int] = {}
    for r in records:
        by_adapter[str(r.adapter)] = by_adapter.get(str(r.adapter), 0) + 1

    # One log row per request, matched by id, naming the same adapter.
    log_ids: dict[str, int] = {}
    log_adapter: dict[str, Any] = {}
    for row in log_rows:
        log_ids[row["id"]] = log_ids.get(row["id"], 0) + 1
        log_adapter[row["id"]] = row.get("adapter")
    sent_ids = [r.request_id for r in records if r.request_id]
    log_check = {
        "requests": len(records),
        "rows": len(log_rows),
        "partial_left": server["partial_left"],
        "requests_without_row": sum(1 for i in sent_ids if i not in log_ids),
        "rows_without_request": len(set(log_ids) - set(sent_ids)),
        "duplicate_rows": sum(n - 1 for n in log_ids.values() if n > 1),
        "adapter_mismatches": sum(
            1 for r in records if r.request_id and log_adapter.get(r.request_id) != r.adapter
        ),
    }
    log_ok = (
        len(log_rows) == len(records) == len(sent_ids)
        and not server["partial_left"]
        and not any(log_check[k] for k in ("requests_without_row", "rows_without_request",
                                           "duplicate_rows", "adapter_mismatches"))
    )  # fmt: skip

    # The switch: after the first new-version answer, no later request gets the old version.
    switch: dict[str, Any] = {"old": old_label, "new": new_label}
    switch_ok = False
    if new_label:
        new = sorted((r for r in records if r.adapter == new_label), key=lambda r: r.done or 0)
        first_new = new[0] if new else None
        old = [r for r in records if r.adapter == old_label]
        if first_new is not None:
            late_old = [r for r in old if r.sent > (first_new.done or math.inf)]
            last_old_done = max((r.done or 0) for r in old) if old else None
            answer_times = [r.done for r in records if r.done is not None and r.ok]
            gaps = silences(answer_times)
            window = (first_new.sent - 5.0, (first_new.done or first_new.sent) + 5.0)
            at_switch = max((g for s, g in gaps if window[0] <= s <= window[1]), default=0.0)
            elsewhere = max((g for s, g in gaps if not window[0] <= s <= window[1]), default=0.0)
            headers = [r for r in records if r.ok and r.header_adapter != r.adapter]
            switch.update(
                first_new_sent_s=first_new.sent - t0,
                first_new_answer_s=(first_new.done or 0) - t0,
                last_old_answer_s=(last_old_done - t0) if last_old_done else None,
                promotion_s=(promotion_time - t0) if promotion_time else None,
                server_loaded_new_s=(server["reloaded"] - t0) if server["reloaded"] else None,
                reload_delay_s=((first_new.done or 0) - promotion_time) if promotion_time else None,
                old_answers=len(old),
                new_answers=len(new),
                old_after_first_new=len(late_old),
                answer_gap_at_switch_s=at_switch,
                longest_answer_gap_elsewhere_s=elsewhere,
                median_answer_gap_s=statistics.median(g for _, g in gaps) if gaps else None,
                header_mismatches=len(headers),
            )
            switch_ok = (
                not late_old
                and not headers
                and (promotion_time is None or (first_new.done or 0) >= promotion_time - 1.0)
                and at_switch <= elsewhere + 1.0
                and not [r for r in records if r.ok and r.adapter not in (old_label, new_label)]
            )

    evidence_keys = ("update", "windows", "metrics", "selection", "reason", "gate")
    promotion = {
        "entry": {k: promote.get(k) for k in ("action", "version", "previous", "time", "update",
                                              "reason")} if promote else None,
        "evidence_keys": [k for k in evidence_keys if promote and k in promote],
        "metrics": promote.get("metrics") if promote else None,
        "windows": promote.get("windows") if promote else None,
        "kept": [h.get("reason") for h in history if h.get("action") == "keep"],
    }  # fmt: skip
    promotion_ok = bool(
        promote
        and promote.get("previous") == server["v_start"]
        and all(k in promote for k in evidence_keys)
        and promote["windows"]
        and all(w.get("pvalues") for w in promote["windows"])
    )

    count_metric = sum(v for k, v in server["metrics"].items()
                       if k.startswith("lingualift_requests_by_adapter_total"))  # fmt: skip
    restart = {
        "pid_start": server["pid"],
        "pid_end": server["pid_end"],
        "start_ticks": server["ticks"],
        "start_ticks_end": server["ticks_end"],
        "exited_during_run": server["exited_during_run"],
        "requests_counted_by_server": count_metric,
        "adapter_reloads": server["metrics"].get(f'lingualift_adapter_reloads_total{{lang="{args.lang}"}}'),
        # uvicorn re-raises SIGTERM once it has shut down, so -15 is its graceful exit too
        "exit_code": server["exit_code"],
        "shut_down_gracefully": server["exit_code"] in (0, -signal.SIGTERM) and server["graceful"],
    }  # fmt: skip
    restart_ok = (
        server["pid"] == server["pid_end"]
        and server["ticks"] == server["ticks_end"]
        and not server["exited_during_run"]
        and count_metric == len(records)
    )

    latencies = {}
    for name, keep in (
        ("before_promotion", lambda r: promotion_time is None or r.sent < promotion_time),
        ("after_promotion", lambda r: promotion_time is not None and r.sent >= promotion_time),
    ):
        values = [r.done - r.sent for r in records if r.ok and r.done and keep(r)]
        if values:
            ordered = sorted(values)
            latencies[name] = {
                "n": len(values),
                "p50_s": ordered[len(ordered) // 2],
                "p95_s": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
            }

    change = replay.change
    planned, decided = ecda_events["planned"], ecda_events["decided"]

    def since(moment: float | None) -> float | None:
        return None if moment is None else moment - t0

    first_drift = next(
        (w for w in drift_rows if w["drift"] and w.get("reference") == old_label), None
    )
    checks = {
        "every_request_answered": not failed and bool(records),
        "one_log_row_per_request": log_ok,
        "promotion_in_history_with_evidence": promotion_ok,
        "server_never_restarted": restart_ok,
        "switch_without_gap": switch_ok,
    }
    return {
        "checks": checks,
        "passed": all(checks.values()),
        "requests": {
            "sent": len(records),
            "statuses": statuses,
            "by_adapter": by_adapter,
            "failed": [dataclasses.asdict(r) for r in failed[:10]],
            "before_genre": sum(r.phase == "before" for r in records),
            "after_genre": sum(r.phase == "after" for r in records),
            "duration_s": max((r.done or r.sent) for r in records) - t0 if records else 0,
            "latency": latencies,
        },
        "traffic_log": {**log_check, "segments": server["segments"]},
        "switch": switch,
        "promotion": promotion,
        "server": restart,
        "drift": {
            "windows": len(drift_rows),
            "drifting": [w["window"] for w in drift_rows if w["drift"]],
            "first_drift_window": first_drift["window"] if first_drift else None,
            "change_s": since(change),
            "update_planned_s": since(planned),
            "decided_s": since(decided),
            "update_duration_s": decided - planned if planned and decided else None,
        },
    }


# -- step 6: the plot --------------------------------------------------------------------------


def parse_iso(value: str | None) -> float | None:
    if not value:
        return None
    stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def plot_timeline(
    args: argparse.Namespace,
    replay: Replay,
    drift_rows: list[dict[str, Any]],
    summary: dict[str, Any],
    promotion_time: float | None,
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = replay.start
    fig, (ax_req, ax_drift) = plt.subplots(
        2, 1, figsize=(11, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    labels = sorted({str(r.adapter) for r in replay.records if r.ok})
    colours = dict(zip(labels, ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"],
                       strict=False))  # fmt: skip
    for label in labels:
        mine = [r for r in replay.records if r.ok and str(r.adapter) == label]
        ax_req.scatter([r.sent - t0 for r in mine], [(r.done or r.sent) - r.sent for r in mine],
                       s=10, color=colours[label], label=f"answered by {label} ({len(mine)})")  # fmt: skip
    failed = [r for r in replay.records if not r.ok]
    if failed:
        ax_req.scatter([r.sent - t0 for r in failed], [0.0] * len(failed), marker="x", color="red",
                       label=f"failed ({len(failed)})")  # fmt: skip
    ax_req.set_ylabel("latency (s)")
    ax_req.set_yscale("log")
    sent = len(replay.records)
    ax_req.set_title(
        f"The whole loop, live: {args.model} serving {args.lang}, {sent} requests "
        f"({summary['requests']['before_genre']} before-genre, then after-genre); "
        f"checks {'passed' if summary['passed'] else 'FAILED'}",
        fontsize=10,
    )

    xs, tests = [], {"js": [], "mmd": [], "novelty": []}
    drift_x, refs = [], []
    for row in drift_rows:
        end = parse_iso(row.get("end"))
        if end is None or not any(k in row for k in tests):
            continue
        xs.append(end - t0)
        refs.append(row.get("reference"))
        for key in tests:
            tests[key].append(row.get(key, {}).get("pvalue", math.nan))
        if row["drift"]:
            drift_x.append(end - t0)
    for key, marker in (("js", "o"), ("mmd", "s"), ("novelty", "^")):
        ax_drift.plot(xs, tests[key], marker=marker, linestyle="-", label=f"{key} p-value")
    alpha = 0.05
    ax_drift.axhline(alpha / 3, color="grey", linestyle=":", label="Holm level alpha/3")
    for i, x in enumerate(drift_x):
        ax_drift.axvline(x, color="red", alpha=0.4, linewidth=6,
                         label="drifting window (end)" if i == 0 else None)  # fmt: skip
    for x, ref in zip(xs, refs, strict=False):  # above the panel: which reference it used
        ax_drift.text(x, 1.01, str(ref).split("/")[-1], fontsize=7, ha="center", va="bottom",
                      transform=ax_drift.get_xaxis_transform())  # fmt: skip
    ax_drift.set_yscale("log")
    ax_drift.set_ylabel("p-value per window\n(label: reference version)")
    ax_drift.set_xlabel("seconds since the first request")
    drift = summary["drift"]
    for ax in (ax_req, ax_drift):
        if drift["update_planned_s"] is not None and drift["decided_s"] is not None:
            ax.axvspan(drift["update_planned_s"], drift["decided_s"], color="green", alpha=0.08,
                       label="ECDA update: select, train, gate" if ax is ax_req else None)  # fmt: skip
        if replay.change is not None:
            ax.axvline(replay.change - t0, color="black", linestyle="--",
                       label="traffic changes genre" if ax is ax_req else None)  # fmt: skip
        if promotion_time is not None:
            ax.axvline(promotion_time - t0, color="green", linewidth=2,
                       label="gate promotes" if ax is ax_req else None)  # fmt: skip
    ax_req.legend(fontsize=8, loc="upper left")
    ax_drift.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main --------------------------------------------------------------------------------------


def ecda_argv(args: argparse.Namespace, store: Path, log_dir: Path, pool: str, out: Path,
              max_polls: int) -> list[str]:  # fmt: skip
    settings = {
        "input": log_dir, "langs": f"[{args.lang}]", "store": store, "model": args.model,
        "pool": pool, "out_dir": out, "follow": "true", "poll_seconds": args.poll_seconds,
        "max_polls": max_polls, "window": args.window, "n_permutations": args.n_permutations,
        "n_bootstrap": args.n_bootstrap, "seed": args.seed, "trigger_windows": 1,
        "usage_windows": 3, "update.budget": args.budget, "update.penalty": "l2sp",
        "update.replay_fraction": 0.5, "train.max_steps": args.update_steps,
        "train.batch_size": args.batch_size, "train.max_length": args.max_length,
        "train.lr": args.lr, "train.save_every": max(1, args.update_steps // 2),
        "gate.min_gain": args.min_gain, "gate.tolerance": args.tolerance,
    }  # fmt: skip
    return ["ecda", *[f"{k}={v}" for k, v in settings.items()]]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    begun = time.time()
    deadline = begun + args.timeout_s
    work = Path(args.work_dir).resolve()
    run = work / f"run-{dt.datetime.now().strftime('%Y%m%dT%H%M%S')}"
    run.mkdir(parents=True)
    if args.tiny:
        import torch

        torch.set_num_threads(args.threads)
    say(f"work folder {run}")

    # 1. v1 with its held-out set and reference profile (cached in <work>/prep), copied.
    data = prepare_data(args, work / "prep" / "data")
    source = Path(args.store) if args.store else prepare_store(args, work / "prep", data)
    store = run / "store"
    shutil.copytree(source / args.lang, store / args.lang)
    from lingualift.adapters import AdapterStore

    v_start = AdapterStore(store).current_version(args.lang)
    say(f"store {store}: {args.lang}/v{v_start} current; data {data['sizes']}")
    prepared_s = time.time() - begun

    # 2. the server.
    env = child_env(args.threads)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_dir = run / "traffic"
    server = Child("server", [
        "serve", f"model={args.model}", f"store={store}", f"langs=[{args.lang}]",
        f"log_dir={log_dir}", f"port={port}", f"max_batch_size={args.clients}",
        "batch_wait_ms=10", f"log_max_seconds={args.log_max_seconds}",
        f"reload_interval_s={args.reload_interval_s}", f"default_max_tokens={args.max_tokens}",
        "log_level=info",
    ], run / "server.log", env)  # fmt: skip
    ecda: Child | None = None
    replay: Replay | None = None
    exited_during_run = False
    try:
        health = wait_health(url, server, deadline)
        ticks = process_start_ticks(server.pid)
        say(f"server pid {server.pid} on {url}: {health['adapters']}")

        # 3. ecda, following the log folder.
        ecda_out = run / "ecda"
        max_polls = math.ceil(args.timeout_s / max(args.poll_seconds, 0.1)) + 10
        ecda = Child(
            "ecda",
            ecda_argv(args, store, log_dir, data["paths"]["pool"], ecda_out, max_polls),
            run / "ecda.log",
            env,
        )
        say(f"ecda pid {ecda.pid} following {log_dir}")

        # 4. the traffic, until the new version has served for a while (or time is up).
        replay = Replay(args, url, data)
        replay.run()
        say(f"traffic: {len(data['before'])} before-genre queries, then after-genre, "
            f"{args.rate:g}/s from {args.clients} clients")  # fmt: skip
        promotion_time: float | None = None
        reason = "time bound"
        last_report = 0.0
        history_path = store / args.lang / "history.jsonl"
        seen_history = len(history_events(store, args.lang))
        reserve = 60 + 3 * args.poll_seconds + args.log_max_seconds
        while time.time() < deadline - reserve:
            time.sleep(0.2)
            if not server.alive():
                exited_during_run = True
                reason = "the server exited"
                break
            history = history_events(store, args.lang)
            for entry in history[seen_history:]:
                if entry.get("action") == "promote" and promotion_time is None:
                    promotion_time = history_path.stat().st_mtime
                    say(f"the gate promoted {args.lang}/v{entry['version']}: {entry.get('reason')}")
                if entry.get("action") == "keep":
                    say(f"the gate kept {entry.get('current')}: {entry.get('reason')}")
            seen_history = len(history)
            if any(h.get("action") == "keep" for h in history) and promotion_time is None:
                reason = "the gate kept the current version"
                break
            if not ecda.alive():
                reason = f"ecda exited with code {ecda.popen.returncode}"
                break
            if promotion_time is not None:
                label = f"{args.lang}/v{history[-1]['current']}"
                served = replay.answered_by(label)
                if served:
                    first = min(r.done or 0 for r in served)
                    if (time.time() - first >= args.after_promotion_s
                            and len(served) >= args.after_promotion_requests):  # fmt: skip
                        reason = f"{label} answered {len(served)} requests"
                        break
            if time.time() - last_report > (30 if not args.tiny else 5):
                last_report = time.time()
                done = [r for r in replay.records if r.done is not None]
                counts: dict[str, int] = {}
                for r in done:
                    counts[str(r.adapter if r.ok else "failed")] = counts.get(
                        str(r.adapter if r.ok else "failed"), 0) + 1  # fmt: skip
                say(f"{len(replay.records)} sent, answered {counts}")
        say(f"stopping the traffic ({reason})")
        replay.finish(timeout=120)

        # 5. stop the server (SIGTERM: it closes its last segment), let ecda read the rest, stop it.
        metrics = metrics_values(url)
        pid_end, ticks_end = server.pid, process_start_ticks(server.pid)
        exited_during_run = exited_during_run or not server.alive()
        server_rc = server.stop(timeout=120)
        caught_up = wait_for_monitor(ecda_out, log_dir, ecda, 3 * args.poll_seconds + 30)
        ecda_rc = ecda.stop(timeout=120)
        say(f"server exit code {server_rc}, ecda {ecda_rc}; ecda read the whole log: {caught_up}")
    except BaseException:
        if replay is not None:
            replay.stop.set()
        for child in (ecda, server):
            if child is not None:
                child.stop(timeout=30)
        raise

    from lingualift.data.traffic import list_segments, read_segments

    rows = list(read_segments(log_dir))
    drift_path = ecda_out / "monitor" / "drift.jsonl"
    drift_rows = [json.loads(x) for x in drift_path.read_text("utf-8").splitlines()] if (
        drift_path.is_file()) else []  # fmt: skip
    history = history_events(store, args.lang)
    if promotion_time is None and any(h.get("action") == "promote" for h in history):
        promotion_time = history_path.stat().st_mtime
    ecda_events = {
        "planned": ecda.first(" planned"),
        "decided": ecda.first(": promoted ") or ecda.first(": kept "),
    }
    server_info = {
        "pid": server.pid, "pid_end": pid_end, "ticks": ticks, "ticks_end": ticks_end,
        "exited_during_run": exited_during_run, "metrics": metrics, "v_start": v_start,
        "partial_left": [p.name for p in log_dir.glob("*.partial")],
        "segments": len(list_segments(log_dir)), "exit_code": server_rc,
        "graceful": server.first("Application shutdown complete") is not None,
        "reloaded": server.first(" (was "),
    }  # fmt: skip
    summary = analyse(args, replay, rows, history, promotion_time, server_info, drift_rows,
                      ecda_events)  # fmt: skip
    summary.update(
        stopped_because=reason,
        ecda={
            "exit_code": ecda_rc,
            "read_whole_log": caught_up,
            "updates": sorted(p.name for p in (ecda_out / "updates").glob("*-w*")),
        },
        timing={"prepare_s": prepared_s, "total_s": time.time() - begun},
        settings={k: v for k, v in settings_of(args).items()},
        run_folder=str(run),
        machine={"cpu_count": os.cpu_count(), "loadavg": os.getloadavg()},
    )
    out_json, out_png = Path(args.out_json), Path(args.out_png)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(summary, indent=2, default=str), "utf-8")
    plot_timeline(args, replay, drift_rows, summary, promotion_time, out_png)
    print_summary(summary)
    say(f"wrote {out_json} and {out_png}; logs in {run}")
    return 0 if summary["passed"] else 1


def print_summary(summary: dict[str, Any]) -> None:
    req, switch, drift = summary["requests"], summary["switch"], summary["drift"]

    def fmt(value: Any, unit: str = " s") -> str:
        return "-" if value is None else (f"{value:.1f}{unit}" if isinstance(value, float)
                                          else f"{value}{unit}")  # fmt: skip

    print()
    print(f"requests       {req['sent']} sent in {fmt(req['duration_s'])} "
          f"({req['before_genre']} before-genre, {req['after_genre']} after); statuses "
          f"{req['statuses']}; answered by {req['by_adapter']}")  # fmt: skip
    for name, lat in req["latency"].items():
        print(f"latency        {name}: p50 {lat['p50_s']:.2f} s, p95 {lat['p95_s']:.2f} s "
              f"({lat['n']} requests)")  # fmt: skip
    print(f"drift          genre change at {fmt(drift['change_s'])}; {drift['windows']} windows, "
          f"drifting {drift['drifting']}; update planned at {fmt(drift['update_planned_s'])}, "
          f"decided at {fmt(drift['decided_s'])} (took {fmt(drift['update_duration_s'])})")  # fmt: skip
    metrics = summary["promotion"]["metrics"] or {}
    if metrics:
        print(f"gate           new-usage NLL {metrics['new']['current']:.4f} -> "
              f"{metrics['new']['candidate']:.4f} (gain {metrics['new']['gain']:.4f}); old set "
              f"{metrics['old']['current']:.4f} -> {metrics['old']['candidate']:.4f} "
              f"(regret {metrics['old']['regret']:.4f})")  # fmt: skip
    print(f"switch         {switch.get('old')} -> {switch.get('new')}: promoted at "
          f"{fmt(switch.get('promotion_s'))}, first {switch.get('new')} answer at "
          f"{fmt(switch.get('first_new_answer_s'))} (reload delay "
          f"{fmt(switch.get('reload_delay_s'))}), answer gap at the switch "
          f"{fmt(switch.get('answer_gap_at_switch_s'))} vs longest elsewhere "
          f"{fmt(switch.get('longest_answer_gap_elsewhere_s'))}")  # fmt: skip
    print(f"traffic log    {summary['traffic_log']['rows']} rows for "
          f"{summary['traffic_log']['requests']} requests in "
          f"{summary['traffic_log']['segments']} segments")  # fmt: skip
    print(f"server         pid {summary['server']['pid_start']} -> {summary['server']['pid_end']}"
          f", counted {summary['server']['requests_counted_by_server']:.0f} requests, adapter "
          f"reloads {summary['server']['adapter_reloads']}, shut down gracefully "
          f"{summary['server']['shut_down_gracefully']}; ecda exit code "
          f"{summary['ecda']['exit_code']}")  # fmt: skip
    for name, ok in summary["checks"].items():
        print(f"check          {'PASS' if ok else 'FAIL'}  {name}")
    print(f"stopped        {summary['stopped_because']}; total {fmt(summary['timing']['total_s'])}")


if __name__ == "__main__":
    sys.exit(main())
