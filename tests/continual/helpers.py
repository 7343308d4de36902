"""Stores, references and traffic logs for the continual tests (no model, a toy encoder)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np

from lingualift.adapters.store import AdapterStore
from lingualift.compass.embedding import EmbeddedSet, embed_texts
from lingualift.continual.reference import Reference
from tests.compass.conftest import ToyEncoder

TOPICS = ("river", "market", "prayer", "harvest", "king", "war")


def texts(topics, n, prefix="q", start=0):
    """``n`` queries cycling over ``topics``; the toy encoder places a query by its first word."""
    return [f"{topics[i % len(topics)]} {prefix} {start + i}" for i in range(n)]


def fake_peft(folder: Path) -> None:
    """A minimal PEFT folder the store accepts (config + whole safetensors weights)."""
    from safetensors.numpy import save_file

    (folder / "adapter_config.json").write_text("{}")
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(folder / "adapter_model.safetensors"))


def store_with_reference(root: Path, lang: str = "sw", usage=None, n_clusters: int = 3):
    """A store whose ``lang/v1`` has a reference of ``usage`` embedded by the toy encoder."""
    store = AdapterStore(root)
    version = store.save(lang, writer=fake_peft, card={"note": "test"}, promote=True)
    usage = usage or texts(TOPICS[:3], 300, "ref")
    vectors, name = embed_texts(usage, ToyEncoder(), progress=False)
    reference = Reference.build(
        EmbeddedSet(vectors, name), lang, texts=usage, n_clusters=n_clusters, version=version.name
    )
    reference.save(version.path)
    return store, reference


def log_rows(queries, lang="sw", start=None, step_seconds=60, text=True):
    start = start or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = []
    for i, query in enumerate(queries):
        row = {
            "id": hashlib.sha1(f"{query}{i}{start}".encode()).hexdigest()[:12],
            "ts": (start + dt.timedelta(seconds=i * step_seconds))
            .isoformat()
            .replace("+00:00", "Z"),
            "model": lang,
            "lang": lang,
            "lang_detected": False,
            "lang_confidence": None,
            "adapter": f"{lang}/v1",
            "text_sha1": hashlib.sha1(query.encode()).hexdigest(),
            "prompt_tokens": len(query.split()),
            "completion_tokens": 8,
            "latency_ms": 12.5,
            "status": 200,
        }
        if text:
            row["text"] = query
        rows.append(row)
    return rows


def write_log(path: Path, rows, extra_lines=()):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path
