"""The bad-input matrix: every verb x bad input fails with exit code 2, one line on stderr that
names the file or key, no traceback, and no new or changed file anywhere (no lock file or work
folder either). A job refused mid-way may first print its progress lines (``[train] train:
training``); they are not part of the error and are not counted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lingualift.cli import main
from tests.helpers import custom_code_model_folder, save_constant_shifcon, snapshot

ROWS = ["habari ya asubuhi rafiki yangu", "jambo rafiki", "karibu sana nyumbani"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs, good and bad, built once: files, a tiny model, stores, a ShifCon folder."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import save_file

    from lingualift.adapters import AdapterStore, base_model_signature
    from lingualift.testing import save_tiny_causal_lm, tiny_causal_lm

    root = tmp_path_factory.mktemp("bad-input")
    good = root / "good.jsonl"
    good.write_text("".join(json.dumps({"text": t, "lang": "sw"}) + "\n" for t in ROWS))
    (root / "malformed.jsonl").write_text('{"text": "ok", "lang": "sw"}\n{"text": oops}\n')
    (root / "empty.jsonl").write_text("")
    (root / "latin1.jsonl").write_bytes(b'{"text": "caf\xe9", "lang": "fr"}\n')
    (root / "binary.yaml").write_bytes(b"lang: sw\n\xff\xfe\x00binary")
    (root / "results-latin1.json").write_bytes(b'{"results": {"caf\xe9": {}}}')
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("a user's own file")
    (root / "folder-as-data").mkdir()
    (root / "folder.jsonl").mkdir()  # a folder named like an output file

    llama = save_tiny_causal_lm(root / "llama", "llama", hidden_size=32, num_layers=4)
    gemma = save_tiny_causal_lm(root / "gemma", "gemma3", hidden_size=32, num_layers=4)
    model, _ = tiny_causal_lm("llama", hidden_size=32, num_layers=4)
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules="all-linear"))
    store = AdapterStore(root / "store")
    version = store.save("sw", peft_model, card={"base_model": base_model_signature(peft_model)})
    truncated = root / "truncated-adapter"
    truncated.mkdir()
    (truncated / "adapter_config.json").write_text(
        (version.path / "adapter_config.json").read_text()
    )
    weights = (version.path / "adapter_model.safetensors").read_bytes()
    (truncated / "adapter_model.safetensors").write_bytes(weights[: len(weights) // 2])
    broken = store.save("sw", source=truncated, promote=False)  # v2, damaged

    save_constant_shifcon(root / "shifcon", llama)
    save_file({"x": torch.zeros(1)}, str(root / "x.safetensors"))
    (root / "empty-store").mkdir()
    import shutil

    for name in ("torn-store", "latin1-store"):  # sw v1 and v2, whole copies of a stored adapter
        for number in (1, 2):
            shutil.copytree(version.path, root / name / "sw" / f"v{number}")
    (root / "linked-store" / "sw").mkdir(parents=True)  # sw v1 is a link to another store's
    (root / "linked-store" / "sw" / "v1").symlink_to(version.path, target_is_directory=True)
    saved = '{"action": "save", "version": 1, "current": 1, "previous": null}\n'
    # The promote of v2 cut off mid-line, while the current file already says v2.
    (root / "torn-store/sw/history.jsonl").write_text(saved + '{"action": "promote", "vers')
    (root / "torn-store/sw/current").write_text("v2\n")
    (root / "latin1-store/sw/history.jsonl").write_bytes(
        saved.encode() + b'{"action": "keep", "reason": "caf\xe9"}\n'
    )
    (root / "linked-store/sw/history.jsonl").write_text(saved)
    monitor_fixtures(root)
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    return {
        "busy_port": busy.getsockname()[1], "busy_socket": busy,
        "root": root, "good": good, "llama": llama, "gemma": gemma, "foreign": foreign,
        "store": root / "store", "truncated": truncated, "adapter": version.path,
        "broken": broken.version,
    }  # fmt: skip


def monitor_fixtures(root: Path) -> None:
    """A store whose sw/v1 has a reference (e5-nano's name on random vectors: the monitor
    loads that small encoder quietly and embeds nothing here), logs no line of which the
    monitor can read (bad JSON, an unknown language, invalid UTF-8), and an out_dir whose
    state.json is damaged."""
    import numpy as np

    from lingualift.adapters import AdapterStore
    from lingualift.compass.embedding import EmbeddedSet
    from lingualift.continual.reference import Reference
    from lingualift.embed import get_encoder
    from tests.continual.helpers import fake_peft

    store = AdapterStore(root / "monitor-store")
    version = store.save("sw", writer=fake_peft, promote=True)
    name = get_encoder("e5-nano", cache=False).name
    vectors = np.random.default_rng(0).normal(size=(60, 384))
    usage = [f"habari {i}" for i in range(60)]
    Reference.build(
        EmbeddedSet.from_vectors(vectors, name), "sw", texts=usage, n_clusters=2,
        encoder_spec="e5-nano", version=version.name,
    ).save(version.path)  # fmt: skip
    row = {"id": "1", "ts": "2026-01-01T00:00:00Z", "lang": "sw", "text": "habari"}
    (root / "log-malformed.jsonl").write_text('{"id": 1, "text": oops}\n{"id": 2\n')
    (root / "log-klingon.jsonl").write_text(json.dumps({**row, "lang": "xx-klingon"}) + "\n")
    (root / "log-latin1.jsonl").write_bytes(b'{"id": "1", "lang": "sw", "text": "caf\xe9"}\n')
    (root / "monitor-out").mkdir()
    (root / "monitor-out" / "state.json").write_text('{"format": "lingualift-monitor-state/1", ')
    (root / "log-good.jsonl").write_text(json.dumps(row) + "\n")


def monitor(x, log: str, out: str = "monitor-new") -> list[str]:
    return ["monitor", f"input={w(x, log)}", "langs=[sw]", f"store={w(x, 'monitor-store')}",
            f"out_dir={w(x, out)}"]  # fmt: skip


def w(world, key: str) -> str:
    return str(world[key]) if key in world else str(world["root"] / key)


# (id, argv builder, what the one line must say)
CASES = [
    # select
    ("select-malformed", lambda x: ["select", f"target={w(x, 'malformed.jsonl')}", f"pool={w(x, 'good')}"], "malformed.jsonl:2: malformed JSON"),
    ("select-empty", lambda x: ["select", f"target={w(x, 'empty.jsonl')}", f"pool={w(x, 'good')}"], "empty.jsonl holds no records"),
    ("select-missing", lambda x: ["select", f"target={w(x, 'missing.jsonl')}", f"pool={w(x, 'good')}"], "missing.jsonl does not exist"),
    ("select-encoding", lambda x: ["select", f"target={w(x, 'latin1.jsonl')}", f"pool={w(x, 'good')}"], "latin1.jsonl:1: byte 13"),
    ("select-bad-spec", lambda x: ["select", "target=corpus:sw:nt:abc", f"pool={w(x, 'good')}"], "'abc' is not a positive count"),
    ("select-out-of-range", lambda x: ["select", "target=corpus:sw:43:20", f"pool={w(x, 'good')}", "budget=-5"], "budget must be positive"),
    ("select-dedup", lambda x: ["select", "dedup_threshold=-1"], "dedup_threshold is a cosine"),
    ("select-wrong-type", lambda x: ["select", "n_clusters=abc"], "n_clusters must be a number"),
    ("select-unknown-lang", lambda x: ["select", "target_lang=xx-nowhere", "target=corpus:sw:43:20", f"pool={w(x, 'good')}"], "Unknown language 'xx-nowhere'"),
    ("select-unknown-key", lambda x: ["select", "budgett=3"], "Unknown key 'budgett'"),
    ("select-foreign-out", lambda x: ["select", "target=corpus:sw:43:20", f"pool={w(x, 'good')}", f"out_dir={w(x, 'foreign')}"], "did not write"),
    ("select-binary-recipe", lambda x: ["select", "--config", w(x, "binary.yaml")], "binary.yaml:2: byte 0"),
    # train
    ("train-malformed", lambda x: ["train", f"data={w(x, 'malformed.jsonl')}"], "malformed.jsonl:2: malformed JSON"),
    ("train-encoding", lambda x: ["train", f"data={w(x, 'latin1.jsonl')}"], "latin1.jsonl:1"),
    ("train-folder", lambda x: ["train", f"data={w(x, 'folder-as-data')}"], "is a folder"),
    ("train-empty", lambda x: ["train", f"data={w(x, 'empty.jsonl')}"], "holds no usable examples"),
    ("train-unknown-lang", lambda x: ["train", "lang=zz", f"data={w(x, 'good')}"], "Unknown language 'zz'"),
    ("train-norwegian-is-a-language", lambda x: ["train", "lang=no", f"data={w(x, 'missing.jsonl')}"], "missing.jsonl does not exist"),
    ("train-fraction-of-a-step", lambda x: ["train", f"data={w(x, 'good')}", "train.max_steps=1.7"], "train.max_steps must be a whole number"),
    ("train-negative", lambda x: ["train", f"data={w(x, 'good')}", "train.save_every=-1"], "save_every must not be negative"),
    ("train-zero", lambda x: ["train", f"data={w(x, 'good')}", "train.log_every=0"], "log_every must be at least 1"),
    ("train-bad-spec", lambda x: ["train", "data=corpus:sw:nt:abc"], "'abc' is not a positive count"),
    ("train-nested-hint", lambda x: ["train", f"data={w(x, 'good')}", "max_steps=3"], "did you mean train.max_steps"),
    ("train-foreign-out", lambda x: ["train", f"data={w(x, 'good')}", f"model={w(x, 'llama')}", f"out_dir={w(x, 'foreign')}"], "did not write"),
    ("train-null-for-a-number", lambda x: ["train", f"data={w(x, 'good')}", "train.max_steps=null"], "max_steps cannot be null"),
    # Refused inside the training stage (the model loads there): no lock, work folder or runs/.
    ("train-refused-mid-job", lambda x: ["train", f"data={w(x, 'good')}", f"model={w(x, 'foreign')}", f"out_dir={w(x, 'runs')}/mid/run"], "config.json"),
    ("train-no-parent", lambda x: ["train", f"data={w(x, 'good')}", f"store={w(x, 'empty-store')}", "parent=current"], "No adapter for language 'sw'"),
    # adapters, generate
    ("adapters-unknown-version", lambda x: ["adapters", "--store", w(x, "store"), "promote", "sw", "v9"], "has no version v9"),
    ("adapters-damaged", lambda x: ["adapters", "--store", w(x, "store"), "promote", "sw", str(x["broken"])], "is damaged"),
    ("adapters-bad-version", lambda x: ["adapters", "--store", w(x, "store"), "show", "sw", "latest"], "Bad version 'latest'"),
    ("generate-empty-store", lambda x: ["generate", "--store", w(x, "empty-store"), "jambo"], "No adapters to route to"),
    ("adapters-torn-history", lambda x: ["adapters", "--store", w(x, "torn-store"), "show", "sw"], "history.jsonl:2 is cut off"),
    ("adapters-history-encoding", lambda x: ["adapters", "--store", w(x, "latin1-store"), "list"], "history.jsonl:2: byte 33"),
    ("adapters-link-out-of-store", lambda x: ["adapters", "--store", w(x, "linked-store"), "promote", "sw", "v1"], "outside the store"),
    ("generate-out-is-folder", lambda x: ["generate", "--store", w(x, "store"), "--model", w(x, "llama"), "--out", w(x, "folder.jsonl"), "jambo"], "is a folder; give a file path"),
    ("generate-out-format", lambda x: ["generate", "--store", w(x, "store"), "--model", w(x, "llama"), "--out", w(x, "g.txt"), "jambo"], "Cannot write"),
    # eval
    ("eval-out-is-a-file", lambda x: ["eval", "task=perplexity", "data=corpus", "langs=[sw]", f"model={w(x, 'llama')}", f"out_dir={w(x, 'good')}"], "is a file; give a folder for the results"),
    ("eval-out-under-a-file", lambda x: ["eval", "task=perplexity", "data=corpus", "langs=[sw]", f"model={w(x, 'llama')}", f"out_dir={w(x, 'good')}/eval"], "is a file, so the results"),
    ("eval-corrupt-adapter", lambda x: ["eval", "task=perplexity", "data=corpus", "langs=[sw]", f"model={w(x, 'llama')}", f"adapters={w(x, 'truncated')}"], "is damaged (truncated"),
    ("eval-wrong-base", lambda x: ["eval", "task=perplexity", "data=corpus", "langs=[sw]", f"model={w(x, 'gemma')}", f"adapters={w(x, 'adapter')}"], "trained on a different base model"),
    ("eval-encoding", lambda x: ["eval", "task=perplexity", f"data={w(x, 'latin1.jsonl')}", f"model={w(x, 'llama')}"], "latin1.jsonl:1"),
    ("eval-out-of-range", lambda x: ["eval", "limit=-1"], "limit must be at least 1"),
    ("eval-wrong-type", lambda x: ["eval", "task=translation"], "task must be one of"),
    # shifcon
    ("shifcon-missing", lambda x: ["shifcon", "layers", f"shifcon={w(x, 'nothing')}"], "compute language vectors"),
    ("shifcon-export-into-input", lambda x: ["shifcon", "export", f"shifcon={w(x, 'shifcon')}", f"out_dir={w(x, 'shifcon')}"], "holds the ShifCon folder it reads"),
    ("shifcon-export-foreign", lambda x: ["shifcon", "export", f"shifcon={w(x, 'shifcon')}", f"out_dir={w(x, 'foreign')}"], "did not write"),
    ("shifcon-vectors-unknown-lang", lambda x: ["shifcon", "vectors", "langs=[xx-nowhere]", f"out_dir={w(x, 'v')}"], "Unknown language 'xx-nowhere'"),
    ("shifcon-train-no-vector", lambda x: ["shifcon", "train", f"shifcon={w(x, 'shifcon')}", "langs=[hi]", f"out_dir={w(x, 't')}"], "No language vector for 'hi'"),
    # evaluation helpers, corpus, jobs
    ("cloze-unknown-lang", lambda x: ["cloze", "lang=xx-nowhere", f"out={w(x, 'c.jsonl')}"], "Unknown language 'xx-nowhere'"),
    ("report-encoding", lambda x: ["report", w(x, "results-latin1.json")], "results-latin1.json:1"),
    ("report-missing", lambda x: ["report", w(x, "nothing.json")], "nothing.json does not exist"),
    ("corpus-unknown-lang", lambda x: ["corpus", "xx-nowhere", "--out", w(x, "c.jsonl")], "Unknown language 'xx-nowhere'"),
    ("corpus-negative-limit", lambda x: ["corpus", "sw", "--limit", "-3", "--out", w(x, "c.jsonl")], "limit must be at least 1, got -3"),
    ("corpus-zero-limit", lambda x: ["corpus", "en", "sw", "--parallel", "--limit", "0", "--out", w(x, "c.jsonl")], "limit must be at least 1, got 0"),
    ("corpus-out-is-folder", lambda x: ["corpus", "sw", "--limit", "3", "--out", w(x, "folder.jsonl")], "is a folder; give a file path"),
    ("corpus-out-format", lambda x: ["corpus", "sw", "--out", w(x, "c.txt")], "name it .jsonl, .json"),
    ("cloze-out-is-folder", lambda x: ["cloze", "lang=sw", f"out={w(x, 'folder.jsonl')}"], "is a folder; give a file path"),
    ("quickstart-dominant", lambda x: ["quickstart", "lang=en", f"out_dir={w(x, 'q')}"], "non-dominant"),
    ("quickstart-foreign-out", lambda x: ["quickstart", f"out_dir={w(x, 'foreign')}"], "did not write"),
    ("experiment-dominant", lambda x: ["experiment", "experiment=shifcon_vs_lora", "langs=[en]", f"out_dir={w(x, 'e')}"], "drop 'en'"),
    # export-base
    ("export-base-hub-id", lambda x: ["export-base", "model=google/gemma-3-270m", f"out_dir={w(x, 'b')}"], "needs no export"),
    ("export-base-unknown", lambda x: ["export-base", "model=embedded:llama-9000", f"out_dir={w(x, 'b')}"], "Unknown embedded model 'llama-9000'"),
    ("export-base-foreign-out", lambda x: ["export-base", f"out_dir={w(x, 'foreign')}"], "did not write"),
    # monitor
    ("monitor-damaged-state", lambda x: monitor(x, "log-good.jsonl", "monitor-out"), "monitor-out/state.json is damaged (line 1"),
    ("monitor-unreadable-log", lambda x: monitor(x, "log-malformed.jsonl"), "has no readable line: all 2 lines were skipped (first: log-malformed.jsonl:1: malformed JSON"),
    ("monitor-unknown-language", lambda x: monitor(x, "log-klingon.jsonl"), "log-klingon.jsonl:1: unknown language 'xx-klingon'"),
    ("monitor-invalid-utf8", lambda x: monitor(x, "log-latin1.jsonl"), "log-latin1.jsonl:1: byte 38 (b'\\xe9') is not UTF-8"),
    # serve
    ("serve-empty-store", lambda x: ["serve", f"store={w(x, 'empty-store')}", "port=0", f"model={w(x, 'llama')}"], "holds no current adapter"),
    ("serve-missing-store", lambda x: ["serve", f"store={w(x, 'no-store')}", "port=0", f"model={w(x, 'llama')}"], "does not exist"),
    ("serve-port-in-use", lambda x: ["serve", f"store={w(x, 'store')}", f"port={x['busy_port']}", f"model={w(x, 'llama')}"], "is already in use"),
    ("serve-out-of-range", lambda x: ["serve", "max_batch_size=0"], "max_batch_size"),
    ("serve-unknown-lang", lambda x: ["serve", f"store={w(x, 'store')}", "langs=[yo]", "port=0", f"model={w(x, 'llama')}"], "No adapter for language 'yo'"),
    ("serve-vllm-run-not-installed", lambda x: ["serve", "engine=vllm", "run=true", f"store={w(x, 'store')}", "port=0", f"model={w(x, 'llama')}"], "run=true needs vLLM installed"),
]  # fmt: skip


PROGRESS = re.compile(r"^\[[\w -]+( \d+/\d+)?\] [\w-]+: ")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line_and_changes_nothing(case, world, capsys, monkeypatch):
    _, argv, expected = case
    home = world["root"].parent / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("LINGUALIFT_HOME", str(home))
    before = snapshot(world["root"], home)
    code = main(argv(world))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.match(line)]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    assert expected in lines[0], lines[0]
    assert snapshot(world["root"], home) == before


# -- model-loading security (branch scale-core): a model's own code and pickled weights --------
# Each case is refused in one line with exit 2, changes no file, and runs nothing the model
# folder ships: the custom code and the pickle would each leave a marker file if they ran.


@pytest.fixture(scope="module")
def unsafe_models(tmp_path_factory):
    """A folder whose config asks for its own code, and one with only a pickled checkpoint."""
    import pickle

    from lingualift.testing import save_tiny_causal_lm

    root = tmp_path_factory.mktemp("unsafe-models")
    markers = root.parent / f"{root.name}-markers"
    markers.mkdir()
    custom = custom_code_model_folder(root / "custom-code", markers / "code-ran")
    pickled = save_tiny_causal_lm(root / "pickled-only", "llama", hidden_size=32, num_layers=2)
    (pickled / "model.safetensors").unlink()

    class Payload:
        def __reduce__(self):
            return ((markers / "unpickled").touch, ())

    (pickled / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    return {"root": root, "markers": markers, "custom": custom, "pickled": pickled}


UNSAFE_MODEL_CASES = [
    ("eval-remote-code", lambda u: ["eval", "task=perplexity", "data=corpus", "langs=[sw]", f"model={u['custom']}", f"out_dir={u['root'] / 'results'}"], "trust_remote_code=true"),
    ("eval-pickled-weights", lambda u: ["eval", "task=perplexity", "data=corpus", "langs=[sw]", f"model={u['pickled']}", f"out_dir={u['root'] / 'results'}"], "only pickled weights (pytorch_model.bin)"),
    ("plan-remote-code", lambda u: ["plan", f"model={u['custom']}"], "trust_remote_code=true"),
    ("plan-bad-device-memory", lambda u: ["plan", "device_memory=lots"], "device_memory must be a size"),
    ("plan-unknown-verb", lambda u: ["plan", "verbs=[train,deploy]"], "Unknown verb 'deploy'"),
]  # fmt: skip


@pytest.mark.parametrize("case", UNSAFE_MODEL_CASES, ids=[c[0] for c in UNSAFE_MODEL_CASES])
def test_unsafe_models_are_refused_in_one_line_and_run_nothing(
    case, unsafe_models, capsys, monkeypatch
):
    _, argv, expected = case
    home = unsafe_models["root"].parent / "unsafe-home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("LINGUALIFT_HOME", str(home))
    before = snapshot(unsafe_models["root"], home)
    code = main(argv(unsafe_models))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    assert expected in lines[0], lines[0]
    assert snapshot(unsafe_models["root"], home) == before
    assert not any(unsafe_models["markers"].iterdir())  # neither the code nor the pickle ran
