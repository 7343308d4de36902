"""The shifcon verbs end to end on a tiny local model: vectors, layers, train, generate, export."""

from __future__ import annotations

import json

import pytest

from lingualift.cli import main
from lingualift.data import Record, write_records

LANG_TEXT = {
    "en": "the light shines in the darkness and the darkness has not overcome it",
    "sw": "nuru yang'aa gizani wala giza halikuiweza",
    "fr": "la lumiere luit dans les tenebres et les tenebres ne l'ont point recue",
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from lingualift.testing import save_tiny_causal_lm

    root = tmp_path_factory.mktemp("shifcon-cli")
    model = save_tiny_causal_lm(root / "model", "llama", hidden_size=32, num_layers=6)
    records = []
    for lang, text in LANG_TEXT.items():
        words = text.split()
        for i in range(12):
            records.append(Record(f"{lang}{i}", " ".join(words[i % 4 :] + words[: i % 4]), lang))
    write_records(records, root / "mono.jsonl")
    pairs = [
        Record(
            f"p{lang}{i}",
            f"{LANG_TEXT[lang][: 20 + i]}",
            lang,
            meta={"parallel_text": LANG_TEXT["en"][: 20 + i]},
        )
        for lang in ("sw", "fr")
        for i in range(6)
    ]
    write_records(pairs, root / "pairs.jsonl")
    return root, model


def test_the_whole_workflow(workdir, capsys):
    root, model = workdir
    sc = root / "sc"
    assert (
        main(
            [
                "shifcon",
                "vectors",
                f"out_dir={sc}",
                f"model={model}",
                f"data={root / 'mono.jsonl'}",
                "langs=[sw,fr]",
                "subspace_rank=4",
                "batch_size=8",
            ]
        )
        == 0
    )
    assert (sc / "vectors.safetensors").is_file()
    assert main(["shifcon", "layers", f"shifcon={sc}"]) == 0
    config = json.loads((sc / "shifcon.json").read_text())
    assert config["a"] < config["b"] <= 5 and (sc / "layers.png").is_file()
    out = root / "train"
    assert (
        main(
            [
                "shifcon",
                "train",
                f"shifcon={sc}",
                f"data={root / 'pairs.jsonl'}",
                f"out_dir={out}",
                "train.batch_size=3",
                "train.max_steps=3",
                "train.lr=1e-3",
                "lora.r=4",
                "train.save_every=1",
                f"store={root / 'store'}",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["languages"] == ["fr", "sw"]
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert not (root / ".train.work").exists()  # checkpoints go once the run lands
    assert len((out / "log.jsonl").read_text().splitlines()) == 3
    card = json.loads((out / "adapter" / "card.json").read_text())
    assert card["method"] == "shifcon" and card["shifcon"]["a"] == config["a"]
    from lingualift.adapters import AdapterStore

    stored = AdapterStore(root / "store")
    assert stored.languages() == ["fr", "sw"] and stored.card("sw", 1)["run"]["fingerprint"]
    assert (stored.path("sw", 1) / "loss.png").stat().st_size > 1000  # the curve travels along
    capsys.readouterr()
    assert (
        main(
            [
                "shifcon",
                "generate",
                f"shifcon={sc}",
                f"adapter={out / 'adapter'}",
                "prompts=[nuru yang'aa]",
                "lang=sw",
                "max_new_tokens=3",
            ]
        )
        == 0
    )
    assert "[sw]" in capsys.readouterr().out
    assert main(["shifcon", "export", f"shifcon={sc}", f"out_dir={root / 'steered'}"]) == 0
    assert (root / "steered" / "sw.pt").is_file() and (root / "steered" / "steered.json").is_file()


def test_training_resumes_from_its_checkpoint(workdir, monkeypatch):
    from transformers import AutoModelForCausalLM

    from lingualift.jobs.shifcon_train import ShifConTrainConfig, run_shifcon_train
    from lingualift.shifcon import ShifCon
    from lingualift.shifcon.trainer import ShifConTrainer
    from lingualift.training import LoraSettings, TrainingArgs

    from .conftest import random_vectors

    root, model = workdir
    sc = root / "sc-resume"
    vectors = random_vectors(
        AutoModelForCausalLM.from_pretrained(model), ("en", "sw"), base_model=str(model)
    )
    ShifCon.from_vectors(vectors, 1, 3).save(sc)

    def config(out):
        return ShifConTrainConfig(
            out_dir=str(root / out),
            shifcon=str(sc),
            data=str(root / "pairs.jsonl"),
            langs=["sw"],
            lora=LoraSettings(r=4),
            train=TrainingArgs(batch_size=2, lr=1e-3, save_every=1, max_steps=2),
        )

    full = run_shifcon_train(config("full"), progress=False)
    # An interrupted run: killed during step 2 (step 1's checkpoint stays), then resumed.
    original = ShifConTrainer._step

    def interrupt(self, step):
        if step == 1:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(ShifConTrainer, "_step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_shifcon_train(config("part"), progress=False)
    monkeypatch.setattr(ShifConTrainer, "_step", original)
    checkpoint = root / ".part.work" / "checkpoints" / "step-000001" / "weights.safetensors"
    assert checkpoint.is_file() and not (root / "part").exists()
    resumed = run_shifcon_train(config("part"), progress=False)
    assert resumed["steps"] == 2 and resumed["final_loss"] == pytest.approx(
        full["final_loss"], rel=1e-4
    )


def test_bad_input_exits_2_with_one_sentence(workdir, capsys):
    root, _ = workdir
    assert main(["shifcon", "layers", f"shifcon={root / 'nothing'}"]) == 2
    assert "compute language vectors" in capsys.readouterr().err
    assert main(["shifcon", "layers", f"shifcon={root / 'sc'}", "a=4", "b=2"]) == 2
    assert "needs a < b" in capsys.readouterr().err
    assert (
        main(["shifcon", "train", f"shifcon={root / 'sc'}", "langs=[hi]", f"out_dir={root / 'x'}"])
        == 2
    )
    assert "No language vector for 'hi'" in capsys.readouterr().err
    assert not (root / "x").exists()
