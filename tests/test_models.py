import multiprocessing

import pytest
import torch

from lingualift import models
from lingualift.errors import LingualiftError
from lingualift.models import decoder_layers, load_causal_lm, resolve_model_path
from lingualift.placement import ModelSettings
from lingualift.testing import ARCHITECTURES, save_tiny_causal_lm, tiny_causal_lm
from tests.helpers import custom_code_model_folder


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


# -- precision, placement and safe loading ---------------------------------------------------


def test_weights_load_in_the_requested_dtype(tiny_model_dir):
    model, _ = load_causal_lm(str(tiny_model_dir), dtype="bf16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.lingualift_placement.dtype == "bfloat16"
    assert models.base_precision(model) == {
        "dtype": "bfloat16",
        "quantization": "none",
        "device": "cpu",
    }


def test_settings_object_loads_the_same_as_a_spec(tiny_model_dir):
    a, _ = load_causal_lm(str(tiny_model_dir))
    b = load_causal_lm(ModelSettings(model=str(tiny_model_dir)), with_tokenizer=False)
    assert {p.dtype for p in b.parameters()} == {torch.float32}  # auto is float32 on the CPU
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_bf16_weights_take_half_the_memory_of_float32(tmp_path):
    """Resident memory of a ~116 MB float32 model, loaded (and read) in each dtype."""
    from lingualift.memcheck import measure

    folder = save_tiny_causal_lm(
        tmp_path / "m", "llama", hidden_size=512, num_layers=4, num_heads=8, num_kv_heads=4,
        intermediate_size=1536, vocab_size=32000,
    )  # fmt: skip
    fp32 = measure(str(folder), (), 1, 8, dtype="float32").weights_bytes
    bf16 = measure(str(folder), (), 1, 8, dtype="bfloat16").weights_bytes
    assert fp32 > 100e6
    assert 0.4 < bf16 / fp32 < 0.6, (bf16, fp32)


def test_model_code_in_a_folder_never_runs_unless_trusted(tmp_path):
    marker = tmp_path / "code-ran"
    folder = custom_code_model_folder(tmp_path / "custom", marker)
    for call in (
        lambda: load_causal_lm(str(folder)),
        lambda: models.load_config_only(str(folder)),
    ):
        with pytest.raises(LingualiftError, match="trust_remote_code=true") as err:
            call()
        assert "\n" not in str(err.value)
    assert not marker.exists()


def test_folders_with_only_pickled_weights_are_refused(tmp_path):
    import pickle

    marker = tmp_path / "unpickled"
    folder = save_tiny_causal_lm(tmp_path / "pickled", "llama")
    (folder / "model.safetensors").unlink()

    class Payload:
        def __reduce__(self):
            return (marker.touch, ())

    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(LingualiftError, match="only pickled weights") as err:
        load_causal_lm(str(folder))
    assert "save_pretrained" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()
    models.load_config_only(str(folder))  # the config alone is safe to read (plan)


def test_every_from_pretrained_in_src_names_trust_remote_code():
    """Each call that could run a model's code decides trust_remote_code explicitly."""
    import ast
    from pathlib import Path

    import lingualift

    missing = []
    for path in Path(lingualift.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            call = ast.unparse(node.func)
            loads = call == "SentenceTransformer" or (
                call.endswith(".from_pretrained") and call.startswith("Auto")
            )
            names = {k.arg for k in node.keywords}
            if loads and "trust_remote_code" not in names and None not in names:
                missing.append(f"{path.name}:{node.lineno}")
    assert not missing, missing
