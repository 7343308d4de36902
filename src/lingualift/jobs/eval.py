"""The evaluation jobs: ``lingualift eval`` (benchmarks, perplexity, long context, lm-eval
tasks) and ``lingualift cloze`` (a cloze multiple-choice set from held-out corpus verses)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Literal

from lingualift.atomic import check_file_target, check_folder_target
from lingualift.config import bookkeeping, to_dict
from lingualift.data import Columns, shorthand_columns
from lingualift.errors import LingualiftError, require
from lingualift.placement import ModelSettings, Placement
from lingualift.planning import ModelShape, check_fits, model_shape, prompt_tokens_bound

DEFAULT_PERPLEXITY_WINDOW = 2048
"""The perplexity window when max_length is not given (and the model allows it)."""


@dataclasses.dataclass
class EvalConfig(ModelSettings):
    """Settings of ``lingualift eval`` (the base model with its precision and placement:
    model, dtype, device, attn_implementation, quantization, trust_remote_code)."""

    task: Literal["global-mmlu", "mmlu-prox", "perplexity", "longcontext"] = "global-mmlu"
    """What to measure: a multiple-choice benchmark, per-language perplexity, or long context."""
    backend: Literal["lingualift", "lm-eval", "vllm"] = "lingualift"
    """'lingualift' runs lingualift's scorers; 'lm-eval' runs lm_eval_tasks through lm-eval
    with the 'lingualift' model type (adapters and ShifCon applied the same way); 'vllm' runs
    them through lm-eval's 'vllm' model (vLLM's engine on a GPU, the adapter as its
    lora_local_path; no ShifCon; needs pip install vllm)."""
    adapters: str | None = None
    """PEFT adapter folder(s) applied on the base model, several joined by '+' (merged in order)."""
    shifcon: str | None = None
    """ShifCon folder; its shift is applied per language of each question."""
    data: str = "hub"
    """Questions: 'hub', an hf: spec, a data file (JSON Lines, JSON array, CSV/TSV, Parquet,
    compressed), a saved dataset folder, or a folder of <lang>_<split> files.
    For perplexity: a records file or folder (text + lang), or 'corpus' for the embedded corpus."""
    columns: Columns = dataclasses.field(default_factory=Columns)
    """Perplexity data: which columns hold the text, language and id, e.g. columns.text=body
    columns.lang=language (the same mapping every verb takes)."""
    text_field: str | None = None
    """Short form of columns.text."""
    dev_data: str | None = None
    """Where the few-shot dev questions are; default: the same source, dev split."""
    split: str = "test"
    """Split evaluated."""
    langs: list[str] = dataclasses.field(default_factory=list)
    """Languages to evaluate (empty: every language in the data)."""
    subjects: list[str] = dataclasses.field(default_factory=list)
    """Only these subjects or subject categories (empty: all)."""
    limit: int | None = None
    """At most this many questions (or texts) per language."""
    num_fewshot: int = 0
    """Few-shot examples per question, from the dev split of the same language."""
    mode: Literal["loglikelihood", "cot"] = "loglikelihood"
    """Score answer letters by log-likelihood, or generate chain-of-thought and read the answer."""
    batch_size: int = 16
    """Sequences per forward pass."""
    max_new_tokens: int = 256
    """Generation budget for cot mode and long-context answers."""
    max_length: int | None = None
    """Perplexity window in tokens (default: the model's limit, at most 2048)."""
    stride: int | None = None
    """Perplexity stride in tokens (default: half the window)."""
    books: str = "nt"
    """Corpus books used as held-out text for perplexity/long context when data='corpus'."""
    lc_tasks: list[str] = dataclasses.field(
        default_factory=lambda: ["niah_single", "niah_multi", "niah_none", "cwe"]
    )
    """Long-context tasks: niah_single, niah_multi, niah_none, cwe."""
    lengths: list[int] = dataclasses.field(default_factory=lambda: [1024, 4096])
    """Long-context prompt lengths in tokens (1k to 32k)."""
    n_per_length: int = 10
    """Long-context prompts per task, language and length."""
    seed: int = 0
    """Seed of the long-context generators."""
    lm_eval_tasks: str = ""
    """Backend lm-eval: comma-separated lm-eval task names."""
    lm_eval_include_path: str | None = None
    """Backend lm-eval: folder of extra task YAMLs (local tasks)."""
    lm_eval_model_args: str = ""
    """Backends lm-eval and vllm: more model_args for lm-eval's model, k=v joined by commas,
    e.g. max_model_len=4096,gpu_memory_utilization=0.85 for vllm."""
    out_dir: str = bookkeeping("results")
    """Results folder, as lm-eval's --output_path: <out_dir>/<model name, sanitized>/
    results_<date>.json (and samples_<task>_<date>.jsonl with log_samples), written atomically."""
    log_samples: bool = False
    """Keep every scored sample (prompt, log-likelihoods, prediction) in the results."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.columns = shorthand_columns(self.columns, self.text_field)
        require(
            not self.out_dir.lower().endswith(".json"),
            f"out_dir={self.out_dir!r} names a file, but results go into a folder as lm-eval "
            "lays them out (<out_dir>/<model>/results_<date>.json); give a folder, e.g. "
            f"out_dir={Path(self.out_dir).parent / Path(self.out_dir).stem!s}.",
        )
        require(
            self.limit is None or self.limit >= 1, f"limit must be at least 1, got {self.limit}."
        )
        require(self.num_fewshot >= 0, f"num_fewshot must not be negative, got {self.num_fewshot}.")
        for name in ("batch_size", "max_new_tokens", "n_per_length"):
            value = getattr(self, name)
            require(value >= 1, f"{name} must be at least 1, got {value}.")
        for name in ("max_length", "stride"):
            value = getattr(self, name)
            require(value is None or value >= 2, f"{name} must be at least 2 tokens, got {value}.")


@dataclasses.dataclass
class ClozeConfig:
    """Settings of ``lingualift cloze``."""

    lang: str = "sw"
    """Language of the questions (any code or name the embedded corpus has)."""
    books: str = "43"
    """Held-out corpus books the verses come from: numbers, ranges ('40-43') or 'nt'/'ot'."""
    n: int = 200
    """Number of questions (fewer when the books have fewer eligible verses)."""
    seed: int = 0
    """Seed of the draw of verses, cut points, distractors and answer positions."""
    min_units: int = 8
    """Shortest verse used, in words (characters for zh/ja)."""
    window: int = 8
    """Distractors are drawn among this many endings nearest in length."""
    out: str = bookkeeping("data/cloze_sw_test.jsonl")
    """Where the Global-MMLU-format rows go (.jsonl, .csv, .tsv or .parquet)."""


def run_cloze(config: ClozeConfig) -> tuple[list[dict[str, Any]], Path]:
    """Build the cloze set and write it; returns the rows and the path."""
    from lingualift.data.io import check_records_name
    from lingualift.evaluation.cloze import build_cloze, write_cloze

    check_records_name(check_file_target(config.out, "cloze set"))
    rows = build_cloze(
        config.lang, config.books, config.n, config.seed, config.min_units, config.window
    )
    return rows, write_cloze(rows, config.out)


def _model_args(config: EvalConfig, placement: Placement | None) -> str:
    """The run's model in lm-eval's ``--model_args`` form (what names the run), with the dtype
    (and quantization) the weights were loaded in."""
    args = [f"pretrained={config.model}"]
    if config.adapters:
        args.append(f"peft={config.adapters}")
    if config.shifcon:
        args.append(f"shifcon={config.shifcon}")
    args.append(f"dtype={placement.dtype if placement else config.dtype}")
    if config.quantization != "none":
        args.append(f"quantization={config.quantization}")
    return ",".join(args)


def _model_info(config: EvalConfig) -> dict[str, Any]:
    return {"lingualift_config": to_dict(config)}


def run_eval(config: EvalConfig, print_table: bool = True) -> dict[str, Any]:
    """Run the evaluation a config describes, write its results JSON, return it."""
    from lingualift.evaluation.results import (
        finish_results,
        format_table,
        run_metadata,
        write_results,
    )

    check_folder_target(config.out_dir, "results")  # before the model loads
    if config.backend in ("lm-eval", "vllm"):
        return _run_lm_eval(config, print_table)
    started, began = time.time(), time.perf_counter()
    loaded: dict[str, Any] = {}
    if config.task in ("global-mmlu", "mmlu-prox"):
        results = _run_mcq(config, loaded)
    elif config.task == "perplexity":
        results = _run_perplexity(config, loaded)
    elif config.task == "longcontext":
        results = _run_longcontext(config, loaded)
    else:  # pragma: no cover - Literal-checked by the config loader
        raise LingualiftError(f"Unknown task {config.task!r}.")
    placement = getattr(loaded.get("model"), "lingualift_placement", None)
    meta = run_metadata(
        _model_args(config, placement),
        model=loaded.get("model"),
        tokenizer=loaded.get("tokenizer"),
        started=started,
        seconds=time.perf_counter() - began,
        batch_size=config.batch_size,
        device=placement.device if placement else None,
        limit=config.limit,
        seed=config.seed,
    )
    results = finish_results(results, meta)
    path = write_results(results, config.out_dir)
    if print_table:
        print(format_table(results))
        print(f"\nwrote {path}")
    return results


def _load(
    config: EvalConfig,
    loaded: dict[str, Any],
    max_length: int,
    full_logits: bool = False,
    shape: ModelShape | None = None,
):
    """Check that batches of ``max_length`` tokens fit the device (one sentence if not), then
    load the model, its adapters and ShifCon."""
    from lingualift.evaluation.loading import load_for_eval, shifcon_apply

    check_fits(
        "eval", config, batch_size=config.batch_size, max_length=max(1, max_length),
        full_logits=full_logits, shape=shape,
    )  # fmt: skip
    model, tokenizer, sc = load_for_eval(config.model_settings(), config.adapters, config.shifcon)
    loaded.update(model=model, tokenizer=tokenizer)
    return model, tokenizer, shifcon_apply(sc, model)


def _run_mcq(config: EvalConfig, loaded: dict[str, Any]) -> dict[str, Any]:
    from lingualift.evaluation.mcq import (
        build_cot_prompt,
        build_prompt,
        evaluate_mcq,
        get_benchmark,
        load_mcq,
        pick_shots,
    )
    from lingualift.evaluation.results import mcq_results

    bench = get_benchmark(config.task)
    items = load_mcq(
        config.data, bench.name, config.langs or None, config.split, config.limit, config.subjects
    )
    shots = []
    if config.num_fewshot > 0:
        dev_source = config.dev_data or config.data
        shots = load_mcq(dev_source, bench.name, sorted({i.lang for i in items}), "dev")
    # Scoring keeps only the answer positions' logits; chain-of-thought generates after it.
    build = build_cot_prompt if config.mode == "cot" else build_prompt
    prompts = [build(item, pick_shots(item, shots, config.num_fewshot)) for item in items]
    generated = config.max_new_tokens if config.mode == "cot" else 0
    model, tokenizer, apply = _load(config, loaded, prompt_tokens_bound(prompts) + generated)
    samples = evaluate_mcq(
        model,
        tokenizer,
        items,
        shots,
        config.num_fewshot,
        config.mode,
        config.batch_size,
        apply,
        config.max_new_tokens,
        keep_prompts=config.log_samples,
    )
    task_config = {"dataset_path": config.data, "split": config.split, "mode": config.mode}
    return mcq_results(
        bench.name,
        samples,
        task_config,
        _model_info(config),
        config.num_fewshot,
        config.log_samples,
        items=items,
    )


def _run_perplexity(config: EvalConfig, loaded: dict[str, Any]) -> dict[str, Any]:
    from lingualift.data import ParallelCorpus
    from lingualift.data.sources import read_source
    from lingualift.evaluation.perplexity import perplexity_by_language
    from lingualift.languages import normalize_language

    langs = [normalize_language(x) for x in config.langs]
    if config.data in ("corpus", "hub"):
        require(langs, "Perplexity on the embedded corpus needs langs, e.g. langs=sw,yo.")
        records = ParallelCorpus().multilingual(langs, config.books, per_language=config.limit)
    else:
        records = read_source(config.data, config.columns, role="held-out text")
        if langs:
            records = [r for r in records if r.lang in langs]
        if config.limit is not None:  # as for the corpus: at most `limit` texts per language
            records = _first_per_language(records, config.limit)
    for lang in langs:
        require(
            any(r.lang == lang for r in records),
            f"No held-out text in language {lang!r} in {config.data}; change langs or the data.",
        )
    shape = model_shape(config)  # the model's config is read (and vetted) before its tokenizer
    window = _longest_window(config, records)
    model, tokenizer, apply = _load(config, loaded, window, full_logits=True, shape=shape)
    context = (lambda lang: apply([lang])) if apply else None
    per_lang = perplexity_by_language(
        model,
        tokenizer,
        records,
        context=context,
        max_length=config.max_length,
        stride=config.stride,
        batch_size=config.batch_size,
        progress=True,
    )
    total_nll = sum(r.nll_sum for r in per_lang.values())
    total_tokens = sum(r.n_tokens for r in per_lang.values())
    import math

    tasks = {f"perplexity_{lang}": r for lang, r in per_lang.items()}
    results = {
        "perplexity": {
            "name": "perplexity",
            "alias": "perplexity",
            "sample_len": sum(r.n_texts for r in per_lang.values()),
            "perplexity,none": math.exp(total_nll / total_tokens),
            "nll,none": total_nll / total_tokens,
        }
    }
    for name, r in tasks.items():
        results[name] = {
            "name": name,
            "alias": name,
            "sample_len": r.n_texts,
            "perplexity,none": r.perplexity,
            "nll,none": r.nll,
            "bits_per_token,none": r.bits_per_token,
        }
    lower = {"perplexity": False, "nll": False, "bits_per_token": False}
    return {
        "results": results,
        "groups": {"perplexity": results["perplexity"]},
        "group_subtasks": {"perplexity": list(tasks)},
        "configs": {
            name: {
                "task": name,
                "output_type": "loglikelihood_rolling",
                "max_length": config.max_length,
                "stride": config.stride,
                "metadata": {"version": 0.0},
            }
            for name in tasks
        },
        "versions": {k: 0.0 for k in results},
        "n-shot": {k: 0 for k in results},
        "higher_is_better": {k: lower for k in results},
        "n-samples": {k: {"original": r.n_texts, "effective": r.n_texts} for k, r in tasks.items()},
        "config": _model_info(config),
        "lingualift": {"n_tokens": {k: r.n_tokens for k, r in tasks.items()}},
    }


def _longest_window(config: EvalConfig, records: list[Any]) -> int:
    """The longest perplexity window these records make, in tokens (what the plan is for).

    Perplexity keeps the logits of every position, so the plan needs the real length: the
    tokenizer (not the model) counts the tokens of every text, capped at the window.
    """
    from lingualift.models import load_tokenizer

    window = config.max_length or DEFAULT_PERPLEXITY_WINDOW
    tokenizer = load_tokenizer(str(config.model), trust_remote_code=config.trust_remote_code)
    longest = max((len(tokenizer(r.text)["input_ids"]) for r in records), default=1)
    return min(window, longest + 1)  # + the BOS token a window may gain


def _first_per_language(records: list[Any], limit: int) -> list[Any]:
    counts: dict[str | None, int] = {}
    kept = []
    for record in records:
        counts[record.lang] = counts.get(record.lang, 0) + 1
        if counts[record.lang] <= limit:
            kept.append(record)
    return kept


def _run_longcontext(config: EvalConfig, loaded: dict[str, Any]) -> dict[str, Any]:
    from lingualift.evaluation.longcontext import (
        evaluate_longcontext,
        haystack_texts,
        longcontext_results,
        make_cwe,
        make_niah,
    )

    require(config.langs, "Long-context evaluation needs langs, e.g. langs=sw,fr.")
    # Prompts of up to max(lengths) tokens, then a short generated answer (below).
    answer = min(config.max_new_tokens, 64)
    model, tokenizer, apply = _load(config, loaded, max(config.lengths) + answer)
    items = []
    for lang in config.langs:
        texts = haystack_texts(lang, config.books if config.books != "nt" else "39-66")
        for length in config.lengths:
            for task in config.lc_tasks:
                if task == "cwe":
                    items += make_cwe(
                        tokenizer,
                        lang,
                        length,
                        config.n_per_length,
                        texts=texts,
                        seed=config.seed,
                        model=model,
                    )
                else:
                    items += make_niah(
                        tokenizer,
                        lang,
                        length,
                        config.n_per_length,
                        task,
                        texts=texts,
                        seed=config.seed,
                        model=model,
                    )
    samples = evaluate_longcontext(
        model,
        tokenizer,
        items,
        batch_size=config.batch_size,
        apply=apply,
        max_new_tokens=answer,
    )
    return longcontext_results(samples, _model_info(config), config.log_samples)


def vllm_model_args(config: EvalConfig) -> dict[str, Any]:
    """``model_args`` of lm-eval's ``vllm`` model for a config (lm-eval 0.4.13,
    ``lm_eval/models/vllm_causallms.py``): the base model as vLLM loads it (the embedded
    model's local folder), the adapter as ``lora_local_path`` (lm-eval then sets vLLM's
    ``enable_lora``) with ``max_lora_rank`` sized to it (lm-eval's default, 16, refuses larger
    adapters), ``dtype``, ``seed``, then ``lm_eval_model_args``."""
    from lingualift.evaluation.loading import split_paths
    from lingualift.models import resolve_model_path
    from lingualift.placement import normalize_dtype
    from lingualift.serving.vllm import adapter_rank, vllm_adapter_problems, vllm_max_lora_rank

    require(
        not config.shifcon,
        "backend=vllm cannot apply ShifCon (vLLM runs its own model code, without hooks); "
        "use backend=lm-eval with shifcon=.",
    )
    adapters = split_paths(config.adapters)
    require(
        len(adapters) <= 1,
        f"backend=vllm applies one adapter per run (lm-eval's lora_local_path), got "
        f"{len(adapters)}; merge them into one first or use backend=lm-eval.",
    )
    base = resolve_model_path(config.model)
    args: dict[str, Any] = {
        "pretrained": str(Path(base).resolve()) if Path(base).is_dir() else base,
        "dtype": normalize_dtype(config.dtype),
        "seed": config.seed,
    }
    if adapters:
        folder = Path(adapters[0]).resolve()
        problems = vllm_adapter_problems(folder)
        if problems:
            raise LingualiftError(f"vLLM cannot load the adapter: {problems[0]}.")
        args["lora_local_path"] = str(folder)
        args["max_lora_rank"] = vllm_max_lora_rank([adapter_rank(folder)])
    return {**args, **_extra_model_args(config)}


def _extra_model_args(config: EvalConfig) -> dict[str, Any]:
    from lm_eval.utils import simple_parse_args_string

    pairs = [item for item in config.lm_eval_model_args.split(",") if item.strip()]
    require(
        all("=" in item and item.split("=", 1)[0].strip() for item in pairs),
        f"lm_eval_model_args={config.lm_eval_model_args!r} is not k=v pairs joined by commas; "
        "write it like max_model_len=4096,gpu_memory_utilization=0.85.",
    )
    return simple_parse_args_string(config.lm_eval_model_args)


def _run_lm_eval(config: EvalConfig, print_table: bool) -> dict[str, Any]:
    require(
        config.lm_eval_tasks,
        f"backend={config.backend} needs lm_eval_tasks, e.g. lm_eval_tasks=global_mmlu_full_sw.",
    )
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
        from lm_eval.utils import make_table, sanitize_model_name
    except ImportError:
        raise LingualiftError(
            f"backend={config.backend} needs lm-eval; pip install 'lingualift[lm-eval]'."
        ) from None
    from lingualift.evaluation.results import adapter_sha, write_results

    model_args: str | dict[str, Any]
    if config.backend == "vllm":
        from lingualift.serving.vllm import vllm_installed

        require(
            vllm_installed(),
            "backend=vllm needs vLLM installed (pip install vllm, on Linux with a GPU); "
            "backend=lm-eval runs the same tasks on this machine.",
        )
        model, model_args = "vllm", vllm_model_args(config)
    else:
        import lingualift.evaluation.lmeval_bridge  # noqa: F401  registers the 'lingualift' model

        # lm-eval's tasks are known only to lm-eval: the plan covers the weights and batches
        # of max_length (default 2048) tokens, not each task's loss over the vocabulary.
        check_fits(
            "eval", config, batch_size=config.batch_size,
            max_length=config.max_length or DEFAULT_PERPLEXITY_WINDOW, full_logits=False,
        )  # fmt: skip
        model, model_args = "lingualift", _lingualift_model_args(config)
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker()  # names the run from model_args, as lm-eval's CLI does
    out = lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=[t.strip() for t in config.lm_eval_tasks.split(",") if t.strip()],
        num_fewshot=config.num_fewshot or None,
        batch_size=config.batch_size,
        limit=config.limit,
        log_samples=config.log_samples,
        task_manager=TaskManager(include_path=config.lm_eval_include_path),
        evaluation_tracker=tracker,
    )
    require(out is not None, "lm-eval returned no results.")
    samples = out.pop("samples", None)
    general = tracker.general_config_tracker
    general.log_end_time()
    if config.backend == "vllm":
        # lm-eval names a vllm run after its base folder; name it as the other backends do
        # (the adapter, else the model spec), and pin the adapter's weights like the bridge.
        general.model_name = config.adapters or config.model
        general.model_name_sanitized = sanitize_model_name(general.model_name)
    out.update(dataclasses.asdict(general))
    if samples:
        out["samples"] = {
            task: [_tracker_sample(s) for s in samples[task]] for task in out["configs"]
        }
    out.setdefault("config", {})["lingualift_config"] = to_dict(config)
    if config.backend == "vllm" and config.adapters:
        out["config"]["peft_sha"] = adapter_sha(config.adapters)
    path = write_results(out, config.out_dir)
    if print_table:
        print(make_table(out))
        print(f"wrote {path}")
    return out


def _lingualift_model_args(config: EvalConfig) -> str:
    """``model_args`` of the bridge's ``lingualift`` model (backend=lm-eval)."""
    args = [f"pretrained={config.model}", f"dtype={config.dtype}", f"device={config.device}"]
    if config.attn_implementation != "auto":
        args.append(f"attn_implementation={config.attn_implementation}")
    if config.quantization != "none":
        args.append(f"quantization={config.quantization}")
    if config.trust_remote_code:
        args.append("trust_remote_code=true")
    if config.adapters:
        args.append(f"peft={config.adapters}")
    if config.shifcon:
        langs = config.langs
        args.append(f"shifcon={config.shifcon}")
        args.append(f"lang={langs[0] if len(langs) == 1 else 'auto'}")
    if config.lm_eval_model_args:
        _extra_model_args(config)  # the same check as for vllm
        args.append(config.lm_eval_model_args)
    return ",".join(args)


def _tracker_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """A sample as ``EvaluationTracker.save_results_samples`` writes it."""
    from lm_eval.utils import sanitize_list

    sample = dict(sample)
    sample["arguments"] = {
        f"gen_args_{i}": {f"arg_{j}": value for j, value in enumerate(arg)}
        for i, arg in enumerate(sample["arguments"])
    }
    sample["resps"] = sanitize_list(sample["resps"])
    sample["filtered_resps"] = sanitize_list(sample["filtered_resps"])
    sample["target"] = str(sample["target"])
    return sample
