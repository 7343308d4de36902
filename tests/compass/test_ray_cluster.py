"""Ray on a real cluster: two nodes started with ``ray start``, a pool file read on the workers,
lingualift shipped to them, vectors equal to the local backend's.

The nodes run without this checkout on their path (no PYTHONPATH), so the lingualift the
workers import is the one the driver ships (``py_modules``). The driver runs in its own
process: Ray keeps its authentication mode and session per process, and the cluster here
runs without tokens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import lingualift
from lingualift.compass.ray_backend import WorkerRead, worker_read, worker_runtime_env
from lingualift.data import Columns, read_records, write_records
from lingualift.data.records import Record

SRC = str(Path(lingualift.__file__).resolve().parents[1])
SENTENCES = [
    "The river rose after the rain.",
    "Mto ulijaa baada ya mvua.",
    "La rivière a monté après la pluie.",
    "Der Markt öffnet am Morgen.",
    "Soko linafunguliwa asubuhi.",
    "Le marché ouvre le matin.",
    "They sang in the temple.",
    "Waliimba hekaluni.",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    ray = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    command = [
        ray, "start", "--block", "--num-cpus=1", "--object-store-memory=80000000",
        "--disable-usage-stats", "--node-ip-address=127.0.0.1",
        f"--dashboard-agent-listen-port={_free_port()}", f"--metrics-export-port={_free_port()}",
        f"--runtime-env-agent-port={_free_port()}", *args,
    ]  # fmt: skip
    # A session of its own, so teardown ends this node's processes and nobody else's.
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True
    )


def _stop(nodes: list[subprocess.Popen]) -> None:
    """SIGTERM to every node at once (``ray start --block`` stops its node's processes), a
    short grace, then SIGKILL to whatever of each node's own session is left."""
    for node in nodes:
        if node.poll() is None:
            node.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 3
    for node in nodes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.wait(timeout=max(0.1, deadline - time.monotonic()))
    for node in nodes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)


@pytest.fixture
def two_node_cluster(tmp_path):
    """A head and a second node, each with one CPU, on this machine; torn down after."""
    pytest.importorskip("ray")
    # Unix socket paths must stay short: a pytest tmp_path is too deep for Ray's sockets.
    temp = Path(tempfile.mkdtemp(prefix="llray-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    env["RAY_AUTH_MODE"] = "disabled"
    gcs = _free_port()
    nodes = []
    try:
        head = [
            "--head", f"--port={gcs}", f"--temp-dir={temp}", "--include-dashboard=false",
            f"--dashboard-port={_free_port()}", f"--ray-client-server-port={_free_port()}",
        ]  # fmt: skip
        nodes.append(_ray_start(head, env, tmp_path / "head.log"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", gcs), timeout=1).close()
                break
            except OSError:
                assert nodes[0].poll() is None, (tmp_path / "head.log").read_text()[-2000:]
                time.sleep(0.5)
        nodes.append(_ray_start([f"--address=127.0.0.1:{gcs}"], env, tmp_path / "node.log"))
        yield f"127.0.0.1:{gcs}", env
    finally:
        _stop(nodes)
        shutil.rmtree(temp, ignore_errors=True)


DRIVER = """
import json, logging, sys, time
import numpy as np
import ray
logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
logging.getLogger("lingualift.compass.ray_backend").setLevel(logging.INFO)
from lingualift.compass.embedding import connect_ray, embed_records, worker_read
from lingualift.data import Columns, read_records

pool, address, encoder, out = sys.argv[1:5]
columns = Columns(text="sentence", lang="language")
connect_ray(address=address)
deadline = time.monotonic() + 90
while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
    time.sleep(0.5)
records = read_records(pool, columns)
embedded = embed_records(
    records, encoder, "ray", ray_address=address, read_from=worker_read(pool, columns),
    batch_size=4, concurrency=2, progress=False,
)
np.save(out, embedded.vectors)

# The select job on the same cluster: the pool's vectors come from the cache the workers just
# filled, the target's are embedded there (read by the workers too).
from lingualift.jobs.select import SelectConfig, run_select
run_select(SelectConfig(**json.loads(sys.argv[5]), backend="ray", ray_address=address))

@ray.remote(scheduling_strategy="SPREAD")
def where():
    import lingualift
    return lingualift.__file__

with open(out + ".json", "w") as handle:  # not stdout: Ray's own warnings may land there
    json.dump({
        "nodes": len([n for n in ray.nodes() if n["Alive"]]),
        "lingualift": ray.get([where.remote() for _ in range(2)]),
    }, handle)
"""


@pytest.mark.slow
def test_a_pool_embedded_on_a_two_node_cluster_equals_local(
    two_node_cluster, tmp_path, tiny_model_dir
):
    from lingualift.embed import get_encoder

    address, env = two_node_cluster
    pool = tmp_path / "pool.parquet"
    rows = [
        Record(id=f"p{i}", text=f"{text} ({i})", lang="sw" if i % 2 else "fr")
        for i, text in enumerate(SENTENCES * 3)
    ]
    # The user's own column names, mapped as in every verb.
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.Table.from_pylist([{"qid": r.id, "sentence": r.text, "language": r.lang} for r in rows]),
        pool,
    )
    spec = f"lm:{tiny_model_dir}"
    target = tmp_path / "usage.jsonl"
    write_records([Record(id=f"t{i}", text=t, lang="sw") for i, t in enumerate(SENTENCES)], target)
    select = {
        "target": str(target), "pool": str(pool), "pool_fields": {"text": "sentence",
        "lang": "language", "id": "qid"}, "encoder": spec, "budget": 6, "n_clusters": 2,
        "dedup_threshold": None, "format": "jsonl",
    }  # fmt: skip
    out = tmp_path / "remote.npy"
    on_ray = json.dumps({**select, "out_dir": str(tmp_path / "on-ray")})
    args = [str(pool), address, spec, str(out), on_ray]
    driver = subprocess.run(
        [sys.executable, "-c", DRIVER, *args],
        env={**env, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert driver.returncode == 0, driver.stderr[-3000:]
    report = json.loads(Path(f"{out}.json").read_text())
    assert report["nodes"] == 2
    # The workers ran the lingualift the driver shipped, not one installed on the nodes.
    assert all("runtime_resources" in path for path in report["lingualift"]), report
    for n in (len(rows), len(SENTENCES)):  # the pool, then select's target
        assert f"{n} of {n} texts read by the workers" in driver.stderr, driver.stderr[-2000:]

    records = read_records(pool, Columns(text="sentence", lang="language"))
    local = get_encoder(spec, cache=False).encode([r.text for r in records], progress=False)
    np.testing.assert_allclose(np.load(out), local, atol=1e-5)

    # `lingualift select backend=ray ray_address=...` chose what the local backend chooses.
    from lingualift.jobs.select import SelectConfig, run_select

    run_select(SelectConfig(**{**select, "out_dir": str(tmp_path / "local")}))
    chosen = [read_records(tmp_path / d / "selection.jsonl") for d in ("on-ray", "local")]
    assert [r.id for r in chosen[0]] == [r.id for r in chosen[1]] and len(chosen[0]) == 6
    report = json.loads((tmp_path / "on-ray" / "report.json").read_text())
    assert report["js_after"] == pytest.approx(
        json.loads((tmp_path / "local" / "report.json").read_text())["js_after"], abs=1e-6
    )


def test_worker_reads_cover_the_formats_ray_reads_like_lingualift(tmp_path):
    rows = [Record(id=str(i), text=f"text {i}", lang="sw") for i in range(3)]
    for name in ("a.parquet", "a.jsonl", "a.jsonl.gz", "a.csv", "a.tsv.zst"):
        write_records(rows, tmp_path / name)
    columns = Columns(text="body")
    found = worker_read(tmp_path / "a.parquet", columns)
    assert found == WorkerRead((str((tmp_path / "a.parquet").resolve()),), "parquet", "body")
    assert worker_read(tmp_path / "a.jsonl.gz").kind == "jsonl"
    assert worker_read(tmp_path / "a.tsv.zst").kind == "tsv"
    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(2):
        write_records(rows, shards / f"part-{i}.parquet")
    assert len(worker_read(shards).paths) == 2
    # Read on the driver: a .json file (maybe one array), hf:, the corpus, mixed shards.
    write_records(rows, tmp_path / "a.json")
    write_records(rows, shards / "extra.jsonl")
    for source in (tmp_path / "a.json", "hf:x", "corpus:sw", shards, tmp_path / "missing.csv"):
        assert worker_read(source) is None, source


def test_the_default_runtime_env_ships_the_running_package():
    env = worker_runtime_env()
    assert env["py_modules"] == [str(Path(lingualift.__file__).resolve().parent)]
    assert "__pycache__" in env["excludes"]
    assert worker_runtime_env({}) == {}
    assert worker_runtime_env({"pip": ["lingualift"]}) == {"pip": ["lingualift"]}


def test_a_session_on_another_cluster_is_refused_in_one_sentence(monkeypatch):
    pytest.importorskip("ray")
    import ray

    from lingualift.compass.ray_backend import connect_ray
    from lingualift.errors import LingualiftError

    monkeypatch.setattr(ray, "is_initialized", lambda: True)

    class Context:
        gcs_address = "10.0.0.1:6379"

    monkeypatch.setattr(ray, "get_runtime_context", lambda: Context())
    assert connect_ray(address="10.0.0.1:6379") == "existing session"
    with pytest.raises(LingualiftError, match="already connected to the Ray cluster at 10.0"):
        connect_ray(address="10.0.0.1:6380")
