"""The ``lingualift`` lm-eval model type runs a local task with adapters and ShifCon."""

import pytest

from lingualift.errors import LingualiftError
from lingualift.evaluation.loading import load_for_eval, shifcon_apply
from lingualift.evaluation.mcq import evaluate_mcq, load_mcq

from ..helpers import write_jsonl
from .helpers import lm_eval_task, mcq_rows

lm_eval = pytest.importorskip("lm_eval")


@pytest.fixture(scope="module")
def assets(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter and a ShifCon folder built for the tiny model."""
    from peft import LoraConfig, get_peft_model

    from lingualift.models import load_causal_lm
    from lingualift.shifcon import ShifCon, compute_language_vectors

    root = tmp_path_factory.mktemp("assets")
    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    lora = get_peft_model(
        model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    lora.save_pretrained(root / "adapter")
    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    texts = {
        "en": ["In the beginning was the word.", "Hello there."],
        "sw": ["Hapo mwanzo kulikuwako Neno.", "Habari yako."],
    }
    vectors = compute_language_vectors(
        model, tokenizer, texts, base_model=str(tiny_model_dir), subspace_rank=0, progress=False
    )
    ShifCon(vectors, 1, 3).save(root / "shifcon")
    return root


def _run(model_args, tasks, **kw):
    from lm_eval.tasks import TaskManager

    import lingualift.evaluation.lmeval_bridge  # noqa: F401  registers 'lingualift'

    out = lm_eval.simple_evaluate(
        model="lingualift",
        model_args=model_args,
        tasks=["tiny_gmmlu_sw"],
        task_manager=TaskManager(include_path=str(tasks)),
        log_samples=True,
        batch_size=4,
        **kw,
    )
    return {
        s["doc"]["sample_id"]: [r[0][0] for r in s["resps"]]
        for s in out["samples"]["tiny_gmmlu_sw"]
    }


def test_bridge_runs_local_task_with_adapter_and_shifcon(
    tiny_model_dir, assets, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    data = write_jsonl(tmp_path / "test.jsonl", mcq_rows(4, "sw"))
    tasks = lm_eval_task(tmp_path / "tasks", data, name="tiny_gmmlu_sw")
    items = load_mcq(data)
    plain = _run(f"base={tiny_model_dir}", tasks)
    both = _run(
        f"base={tiny_model_dir},adapter={assets / 'adapter'},shifcon={assets / 'shifcon'},lang=auto",
        tasks,
    )
    assert plain.keys() == both.keys() and len(plain) == 4
    # Same numbers as lingualift's own evaluation of the same model variants.
    model, tok, _ = load_for_eval(str(tiny_model_dir))
    for s in evaluate_mcq(model, tok, items, progress=False):
        assert s.loglikelihoods == pytest.approx(plain[s.id], abs=1e-4)
    model, tok, sc = load_for_eval(
        str(tiny_model_dir), str(assets / "adapter"), str(assets / "shifcon")
    )
    for s in evaluate_mcq(model, tok, items, apply=shifcon_apply(sc, model), progress=False):
        assert s.loglikelihoods == pytest.approx(both[s.id], abs=1e-4)
    assert any(abs(a - b) > 1e-3 for k in plain for a, b in zip(plain[k], both[k], strict=True))


def test_bridge_refuses_bad_adapter_and_missing_lang(tiny_model_dir, assets, tmp_path):
    from lingualift.evaluation.lmeval_bridge import LingualiftLM

    with pytest.raises(LingualiftError, match="not a PEFT adapter folder"):
        LingualiftLM(base=str(tiny_model_dir), adapter=str(tmp_path))
    with pytest.raises(LingualiftError, match="shifcon needs lang"):
        LingualiftLM(base=str(tiny_model_dir), shifcon=str(assets / "shifcon"))


def test_runs_are_named_after_peft_like_lm_eval_hf(tiny_model_dir, assets, tmp_path, monkeypatch):
    """lm-eval names a run (and its output folder) after peft=, else pretrained=; the bridge
    takes those names, so two adapters land in two folders instead of one random one."""
    from lm_eval.utils import sanitize_model_name

    from lingualift.evaluation.lmeval_bridge import main

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    data = write_jsonl(tmp_path / "test.jsonl", mcq_rows(2, "sw"))
    tasks = lm_eval_task(tmp_path / "tasks", data, name="tiny_gmmlu_sw")
    out = tmp_path / "results"
    for args in (
        f"pretrained={tiny_model_dir},peft={assets / 'adapter'}",
        f"pretrained={tiny_model_dir}",
    ):
        argv = ["--model", "lingualift", "--model_args", args, "--tasks", "tiny_gmmlu_sw"]
        argv += ["--include_path", str(tasks), "--batch_size", "2", "--device", "cpu"]
        argv += ["--output_path", str(out)]
        assert main(argv) == 0
    folders = sorted(p.name for p in out.iterdir())
    expected = [
        sanitize_model_name(str(assets / "adapter")),
        sanitize_model_name(str(tiny_model_dir)),
    ]
    assert folders == sorted(expected)


def test_old_argument_names_still_work(tiny_model_dir, assets):
    from lingualift.evaluation.lmeval_bridge import LingualiftLM

    new = LingualiftLM(pretrained=str(tiny_model_dir), peft=str(assets / "adapter"))
    old = LingualiftLM(base=str(tiny_model_dir), adapters=str(assets / "adapter"))
    ids = [[5, 6, 7, 8]]
    import torch

    with torch.no_grad():
        torch.testing.assert_close(
            new.model(torch.tensor(ids)).logits, old.model(torch.tensor(ids)).logits
        )
    with pytest.raises(LingualiftError, match="one of peft, adapter or adapters"):
        LingualiftLM(pretrained=str(tiny_model_dir), peft="a", adapter="b")
