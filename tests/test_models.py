import multiprocessing

import pytest
import torch

from lingualift import models
from lingualift.errors import LingualiftError
from lingualift.models import decoder_layers, load_causal_lm, resolve_model_path
from lingualift.testing import ARCHITECTURES, save_tiny_causal_lm, tiny_causal_lm


def test_loads_a_local_folder(tiny_model_dir):
    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    batch = tokenizer(["Habari", "hello world"], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape
    assert tokenizer.pad_token is not None


@pytest.mark.parametrize("spec", ["", "embedded:llama-9000", "no-such-model", "./missing/dir"])
def test_unknown_specs_list_what_is_accepted(spec):
    with pytest.raises(LingualiftError, match="embedded:gemma-3-270m"):
        resolve_model_path(spec)


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(LingualiftError, match="config.json"):
        resolve_model_path(str(tmp_path))


def test_hub_ids_pass_through():
    assert resolve_model_path("google/gemma-3-270m") == "google/gemma-3-270m"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_decoder_layers_on_every_architecture(arch):
    model, _ = tiny_causal_lm(arch, num_layers=3)
    assert len(decoder_layers(model)) == 3


def test_decoder_layers_rejects_non_decoders():
    with pytest.raises(LingualiftError, match="decoder layers"):
        decoder_layers(torch.nn.Linear(2, 2))


def _fake_convert(target):
    """Stands in for GGUF dequantisation: writes a real tiny model and leaves a trace."""
    (target.parent / f"started-{multiprocessing.current_process().pid}").touch()
    save_tiny_causal_lm(target, "qwen2")


def _materialize(home, results, all_found_no_cache):
    import os

    os.environ["LINGUALIFT_HOME"] = home
    models._convert_embedded = lambda name, tmp: _fake_convert(tmp)
    real_lock = models.path_lock
    waited = []

    def lock_once_every_process_found_no_cache(target, *args, **kwargs):
        # Each process calls this after its first look found no cache; none takes the lock
        # (and so none can convert) before all three got that far: the race is forced.
        all_found_no_cache.wait(60)
        waited.append(True)
        return real_lock(target, *args, **kwargs)

    models.path_lock = lock_once_every_process_found_no_cache
    results.put((str(models.materialize_embedded("gemma-3-270m")), bool(waited)))


def test_concurrent_first_loads_convert_once(tmp_path, monkeypatch):
    monkeypatch.setenv("LINGUALIFT_HOME", str(tmp_path))
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    all_found_no_cache = ctx.Barrier(3)
    procs = [
        ctx.Process(target=_materialize, args=(str(tmp_path), results, all_found_no_cache))
        for _ in range(3)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    outcomes = [results.get(timeout=5) for _ in procs]
    assert all(waited for _, waited in outcomes)  # every process raced past the first look
    paths = {path for path, _ in outcomes}
    assert len(paths) == 1
    cache = tmp_path / "models" / "gemma-3-270m"
    assert len(list((tmp_path / "models").glob("started-*"))) == 1  # converted exactly once
    assert (cache / "config.json").is_file()
    assert len(list((tmp_path / "models").glob(".gemma-3-270m.*.tmp"))) == 0
    model, _ = load_causal_lm("embedded:gemma-3-270m")
    assert type(model).__name__ == "Qwen2ForCausalLM"


def test_the_gguf_file_is_parsed_once_for_config_weights_and_tokenizer(monkeypatch):
    import gguf

    from lingualift.models import _one_gguf_parse

    built = []

    class Reader:
        def __init__(self, path, mode="r"):
            built.append(path)

    monkeypatch.setattr(gguf, "GGUFReader", Reader)
    with _one_gguf_parse():
        readers = [gguf.GGUFReader("m.gguf") for _ in range(3)] + [gguf.GGUFReader("other.gguf")]
    assert built == ["m.gguf", "other.gguf"] and readers[0] is readers[2]
    assert gguf.GGUFReader is Reader  # restored
