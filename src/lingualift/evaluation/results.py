"""Results in lm-evaluation-harness's shape and place: what its ``EvaluationTracker`` writes.

``lingualift eval output=<folder>`` writes, as lm-eval's ``--output_path <folder>``
does, ``<folder>/<model name, sanitized>/results_<date>.json`` and, with
``log_samples``, one ``samples_<task>_<date>.jsonl`` per task beside it (same
``<date>``, lm-eval's ``datetime.now().isoformat()`` with ``-`` for ``:``). The run's
model name is lm-eval's (``peft=``, else ``pretrained=``) and is sanitized by
lm-eval's rule, so lm-eval's own discovery (``get_results_filenames``,
``get_sample_results_filenames``, ``get_latest_filename``, the results card of
``EvaluationTracker.recreate_metadata_card``) finds lingualift's runs beside its own.

The results JSON has lm-eval's keys (``results``, ``groups``, ``group_subtasks``,
``configs``, ``versions``, ``n-shot``, ``higher_is_better``, ``n-samples``,
``config`` with ``model_sha``/``peft_sha``, ``git_hash``, ``date``, versions and
environment, tokenizer facts, ``task_hashes``, ``model_source``, ``model_name``,
``model_name_sanitized``, ``total_evaluation_time_seconds``); samples use lm-eval's
per-sample format. lm-eval's tools (``lm_eval.utils.make_table``, aggregation
scripts) read them unchanged.

Multiple-choice task names follow lm-eval's: ``global_mmlu_full_<lang>`` (a
group) over ``global_mmlu_full_<lang>_<category>`` (groups: stem, humanities,
social_sciences, other) over ``global_mmlu_full_<lang>_<subject>`` (tasks);
``mmlu_prox_<lang>`` over ``mmlu_prox_<lang>_<subject>``. With several languages
one more group, ``global_mmlu_full`` / ``mmlu_prox``, holds them, with the macro
average over languages as an extra metric. Metric keys are ``acc,none`` and
``acc_stderr,none``; counts live in ``n-samples`` (tasks) and ``sample_len``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_write_text
from lingualift.errors import LingualiftError
from lingualift.textio import read_text

RESULTS_PREFIX = "results_"
SAMPLES_PREFIX = "samples_"
TASK_PREFIX = {"global-mmlu": "global_mmlu_full", "mmlu-prox": "mmlu_prox"}
"""lm-eval's task-name prefix of each benchmark."""
_NOT_METRICS = ("alias", "name", "sample_len", "sample_count", "n", "n_tokens")


def mean_stderr(values: Sequence[float]) -> float:
    """Standard error of the mean with the sample deviation (lm-eval's ``mean_stderr``)."""
    n = len(values)
    if n < 2:
        return float("nan")
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return math.sqrt(var / n)


def accuracy(samples: Sequence[Any]) -> dict[str, float]:
    values = [1.0 if s.correct else 0.0 for s in samples]
    return {
        "acc,none": sum(values) / len(values) if values else float("nan"),
        "acc_stderr,none": mean_stderr(values),
    }


def _slug(text: str) -> str:
    return re.sub(r"\W+", "_", text.strip().lower()).strip("_")


def task_name(benchmark: str, *parts: str) -> str:
    """lm-eval's name of a benchmark's task or group: ``global_mmlu_full_sw_astronomy``."""
    base = TASK_PREFIX.get(benchmark, benchmark.replace("-", "_"))
    return "_".join([base, *[_slug(p) for p in parts if p]])


def hash_string(text: str) -> str:
    """lm-eval's ``hash_string``: sha256 hex of the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sanitize_model_name(model_name: str) -> str:
    """lm-eval's ``sanitize_model_name``: the run's folder name (``a/b`` -> ``a__b``)."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", model_name)


def date_id() -> str:
    """lm-eval's run stamp in file names: local ISO time with ``-`` for ``:``."""
    return dt.datetime.now().isoformat().replace(":", "-")


def adapter_sha(adapters: str | Sequence[str] | None) -> str:
    """``peft_sha`` of adapter folders: the sha256 of each one's weights, joined by ``+``.

    lm-eval asks the hub for the adapter repo's commit, which a local folder does
    not have (it writes ``""`` then); the content hash pins the weights all the same.
    """
    from lingualift.evaluation.loading import split_paths

    digests = []
    for folder in map(Path, split_paths(adapters)):
        weights = [
            folder / name
            for name in ("adapter_model.safetensors", "adapter_model.bin")
            if (folder / name).is_file()
        ]
        if not weights:
            digests.append("")
            continue
        digest = hashlib.sha256()
        with weights[0].open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digests.append(digest.hexdigest())
    return "+".join(digests)


def sample_record(doc_id: int, doc: dict[str, Any], target: str, prompt: str, **kw: Any):
    """One line of a ``samples_<task>_<date>.jsonl`` file in lm-eval's format.

    ``kw``: ``arguments`` (``{"gen_args_0": {"arg_0": ..., "arg_1": ...}, ...}``), ``resps``,
    ``filtered_resps``, and the per-sample metric values (e.g. ``acc=1.0``).
    """
    metrics = {k: v for k, v in kw.items() if k not in ("arguments", "resps", "filtered_resps")}
    return {
        "doc_id": doc_id,
        "doc": doc,
        "target": target,
        "arguments": kw["arguments"],
        "resps": kw["resps"],
        "filtered_resps": kw["filtered_resps"],
        "filter": "none",
        "metrics": list(metrics),
        "doc_hash": hash_string(json.dumps(doc, indent=2, default=str, ensure_ascii=False)),
        "prompt_hash": hash_string(prompt),
        "target_hash": hash_string(str(target)),
        **metrics,
    }


def _mcq_record(index: int, item: Any, sample: Any, letters: str) -> dict[str, Any]:
    doc = {
        "sample_id": item.id,
        "question": item.question,
        **{f"option_{c.lower()}": o for c, o in zip(letters, item.options, strict=False)},
        "answer": letters[item.answer],
        "subject": item.subject,
        "subject_category": item.subject_category,
        "lang": item.lang,
    }
    prompt = sample.prompt or ""
    acc = 1.0 if sample.correct else 0.0
    if sample.loglikelihoods is not None:
        choices = letters[: len(sample.loglikelihoods)]
        return sample_record(
            index,
            doc,
            letters[item.answer],
            prompt,
            # is_greedy is not computed by lingualift's scorer: null, not a guess.
            arguments={
                f"gen_args_{i}": {"arg_0": prompt, "arg_1": f" {c}"} for i, c in enumerate(choices)
            },
            resps=[[[str(ll), None]] for ll in sample.loglikelihoods],
            filtered_resps=[[str(ll), None] for ll in sample.loglikelihoods],
            acc=acc,
        )
    return sample_record(
        index,
        doc,
        letters[item.answer],
        prompt,
        arguments={"gen_args_0": {"arg_0": prompt, "arg_1": {"until": []}}},
        resps=[[sample.generation or ""]],
        filtered_resps=[letters[sample.pred] if sample.pred is not None else "[invalid]"],
        acc=acc,
    )


def mcq_results(
    benchmark: str,
    samples: Sequence[Any],
    config: dict[str, Any],
    model_info: dict[str, Any],
    num_fewshot: int = 0,
    log_samples: bool = False,
    items: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """lm-eval-shaped results of one multiple-choice run (before :func:`finish_results`).

    With ``log_samples`` (and the scored ``items``, in the samples' order) the
    per-sample records go under ``samples``; :func:`write_results` moves them into
    their own files.
    """
    from lingualift.evaluation.mcq import get_benchmark

    if not samples:
        raise LingualiftError("No samples to summarise; the evaluation scored nothing.")
    letters = get_benchmark(benchmark).letters
    by_lang: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_lang[s.lang].append(i)

    results: dict[str, dict[str, Any]] = {}
    group_subtasks: dict[str, list[str]] = {}
    tasks: dict[str, list[int]] = {}
    groups: list[str] = []

    def add(name: str, indices: list[int]) -> None:
        chosen = [samples[i] for i in indices]
        results[name] = {"name": name, "alias": name, "sample_len": len(chosen), **accuracy(chosen)}

    lang_groups = []
    for lang in sorted(by_lang):
        group = task_name(benchmark, lang)
        lang_groups.append(group)
        by_category: dict[str, list[str]] = defaultdict(list)
        by_subject: dict[str, list[int]] = defaultdict(list)
        for i in by_lang[lang]:
            by_subject[samples[i].subject].append(i)
        for subject in sorted(by_subject):
            name = task_name(benchmark, lang, subject or "all")
            tasks[name] = by_subject[subject]
            category = samples[by_subject[subject][0]].subject_category
            by_category[_slug(category) if category else ""].append(name)
        children = []
        for category in sorted(by_category):
            if not category:
                children += by_category[category]
                continue
            cat_group = task_name(benchmark, lang, category)
            if cat_group in tasks:  # a subject named like the category: keep the task
                children += by_category[category]
                continue
            group_subtasks[cat_group] = by_category[category]
            groups.append(cat_group)
            children.append(cat_group)
        group_subtasks[group] = children
        groups.append(group)
    overall = task_name(benchmark)
    if len(lang_groups) > 1:
        group_subtasks[overall] = lang_groups
        groups.append(overall)
    for name, indices in tasks.items():
        add(name, indices)
    # Groups: weighted by size, as lm-eval's weight_by_size aggregation.
    members: dict[str, list[int]] = {}

    def leaves(name: str) -> list[int]:
        if name in tasks:
            return tasks[name]
        if name not in members:
            members[name] = [i for child in group_subtasks[name] for i in leaves(child)]
        return members[name]

    for group in groups:
        add(group, leaves(group))
    if overall in results:
        # Macro average over languages: each language counts once, whatever its size.
        accs = [results[g]["acc,none"] for g in lang_groups]
        results[overall]["acc_macro_lang,none"] = sum(accs) / len(accs)
    names: list[str] = []

    def visit(name: str) -> None:  # each group, then what it holds (lm-eval's table order)
        names.append(name)
        for child in group_subtasks.get(name, []):
            visit(child)

    for root in [overall] if overall in results else lang_groups:
        visit(root)
    ordered = {name: results[name] for name in names}
    out: dict[str, Any] = {
        "results": ordered,
        "groups": {g: ordered[g] for g in names if g in group_subtasks},
        "group_subtasks": {g: group_subtasks[g] for g in names if g in group_subtasks},
        "configs": {
            t: {
                "task": t,
                "tag": [task_name(benchmark, samples[tasks[t][0]].lang)],
                "num_fewshot": num_fewshot,
                "output_type": "multiple_choice"
                if config.get("mode") != "cot"
                else "generate_until",
                "doc_to_choice": list(letters),
                "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
                "metadata": {"version": 0.0},
                **config,
            }
            for t in tasks
        },
        "versions": {t: 0.0 for t in names},
        "n-shot": {t: num_fewshot for t in names},
        "higher_is_better": {t: {"acc": True} for t in names},
        "n-samples": {t: {"original": len(i), "effective": len(i)} for t, i in tasks.items()},
        "config": model_info,
        "lingualift": {"benchmark": benchmark, "languages": sorted(by_lang)},
    }
    if log_samples:
        if items is None:
            raise ValueError("log_samples needs the scored items")
        out["samples"] = {
            t: [_mcq_record(n, items[i], samples[i], letters) for n, i in enumerate(indices)]
            for t, indices in tasks.items()
        }
    return out


def _git_hash(path: Path) -> str | None:
    """The commit checked out at ``path`` (lm-eval's ``get_commit_from_path``), None outside git."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def run_metadata(
    model_args: str,
    *,
    model: Any = None,
    tokenizer: Any = None,
    started: float,
    seconds: float,
    batch_size: int | None = None,
    device: str | None = None,
    limit: int | None = None,
    seed: int | None = 0,
) -> dict[str, Any]:
    """The keys lm-eval's ``simple_evaluate`` and ``EvaluationTracker`` add around ``results``.

    ``model_args`` uses lm-eval's names (``pretrained=...,peft=...``): the run's
    ``model_name`` is taken from it the way lm-eval does (``peft``, else
    ``pretrained``), so runs land in per-model folders with lm-eval's tools.
    """
    import importlib.metadata

    import transformers

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "N/A (not installed)"

    parsed = dict(arg.split("=", 1) for arg in model_args.split(",") if "=" in arg)
    model_name = next(
        (parsed[k] for k in ("peft", "delta", "pretrained", "model", "path") if parsed.get(k)),
        "lingualift",
    )
    config: dict[str, Any] = {"model": "lingualift", "model_args": model_args}
    if model is not None:
        config.update(
            model_num_parameters=sum(p.numel() for p in model.parameters()),
            model_dtype=str(getattr(model, "dtype", "")),
            model_revision="main",
            model_sha="",
        )
    if parsed.get("peft"):
        config["peft_sha"] = adapter_sha(parsed["peft"])
    config.update(
        batch_size=batch_size,
        batch_sizes=[],
        device=device,
        use_cache=None,
        limit=limit,
        bootstrap_iters=0,
        gen_kwargs=None,
        random_seed=seed,
        numpy_seed=seed,
        torch_seed=seed,
        fewshot_seed=seed,
    )
    meta: dict[str, Any] = {
        "config": config,
        "git_hash": _git_hash(Path.cwd()),
        "date": started,
        "pretty_env_info": _env_info(),
        "transformers_version": transformers.__version__,
        "lm_eval_version": version("lm_eval"),
        "lingualift_version": version("lingualift"),
        "upper_git_hash": _git_hash(Path.cwd().parent),
    }
    if tokenizer is not None:
        meta.update(
            tokenizer_pad_token=[tokenizer.pad_token, str(tokenizer.pad_token_id)],
            tokenizer_eos_token=[tokenizer.eos_token, str(tokenizer.eos_token_id)],
            tokenizer_bos_token=[tokenizer.bos_token, str(tokenizer.bos_token_id)],
            eot_token_id=tokenizer.eos_token_id,
            max_length=getattr(model.config, "max_position_embeddings", None) if model else None,
        )
    meta.update(
        model_source="lingualift",
        model_name=model_name,
        model_name_sanitized=sanitize_model_name(model_name),
        system_instruction=None,
        system_instruction_sha=None,
        fewshot_as_multiturn=False,
        chat_template=None,
        chat_template_sha=None,
        total_evaluation_time_seconds=str(round(seconds, 3)),
    )
    return meta


def _env_info() -> str:
    """Short environment facts (lm-eval stores torch's ``get_pretty_env_info`` text here)."""
    import platform

    import torch

    return (
        f"PyTorch version: {torch.__version__}\n"
        f"Is CUDA available: {torch.cuda.is_available()}\n"
        f"OS: {platform.platform()}\n"
        f"Python version: {platform.python_version()}"
    )


def finish_results(results: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """``results`` with lm-eval's metadata (``meta`` from :func:`run_metadata`) merged in.

    The ``config`` mapping is merged (the caller's keys such as
    ``lingualift_config`` stay); ``task_hashes`` is filled by :func:`write_results`.
    """
    out = dict(results)
    out["config"] = {**meta["config"], **(results.get("config") or {})}
    for key, value in meta.items():
        if key != "config":
            out.setdefault(key, value)
    return out


def write_results(results: dict[str, Any], output: str | Path) -> Path:
    """Write results where lm-eval's ``EvaluationTracker`` does; returns the results file.

    ``<output>/<model_name_sanitized>/results_<date>.json``, and each task's
    per-sample records (``results["samples"]``, lm-eval's format) in
    ``samples_<task>_<date>.jsonl`` beside it with their hashes in
    ``task_hashes``; the results JSON itself holds no samples. Each file is
    written atomically, samples first, so a results file never names samples
    that are not there. A non-finite standard error is written ``"N/A"`` (as
    lm-eval does), any other non-finite number ``null``.
    """

    def clean(value: Any, key: str = "") -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return "N/A" if "_stderr" in key else None
        if isinstance(value, dict):
            return {k: clean(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    results = dict(results)
    model = results.get("model_name_sanitized") or sanitize_model_name(
        str(results.get("model_name") or "lingualift")
    )
    folder = Path(output) / model
    stamp = date_id()
    samples = results.pop("samples", None) or {}
    task_hashes = {}
    for task, records in samples.items():
        task_hashes[task] = hash_string(
            "".join(r["doc_hash"] + r["prompt_hash"] + r["target_hash"] for r in records)
        )
        lines = [json.dumps(clean(r), ensure_ascii=False, default=str) + "\n" for r in records]
        atomic_write_text(folder / f"{SAMPLES_PREFIX}{task}_{stamp}.jsonl", "".join(lines))
    results["task_hashes"] = {**(results.get("task_hashes") or {}), **task_hashes}
    path = folder / f"{RESULTS_PREFIX}{stamp}.json"
    atomic_write_text(path, json.dumps(clean(results), indent=2, ensure_ascii=False, default=str))
    return path


def latest_results(folder: str | Path) -> Path:
    """The newest ``results_<date>.json`` under ``folder`` (lm-eval's ``get_latest_filename``).

    ``folder`` is one model's folder, or an output folder that holds one model;
    with several models it fails in one sentence that names them.
    """
    folder = Path(folder)
    found = sorted(p for p in folder.rglob(f"{RESULTS_PREFIX}*.json") if p.is_file())
    if not found:
        raise LingualiftError(
            f"{folder} holds no {RESULTS_PREFIX}<date>.json; pass the output folder of "
            "'lingualift eval' or lm-eval, or a results file."
        )
    models = sorted({str(p.parent.relative_to(folder)) for p in found})
    if len(models) > 1:
        raise LingualiftError(
            f"{folder} holds results of several models ({', '.join(models)}); "
            f"pass one of them, e.g. {folder / models[0]}."
        )
    # lm-eval's get_latest_filename: the largest date stamp after the last '_'
    return max(found, key=lambda p: p.name[p.name.rfind("_") + 1 :])


def read_results(path: str | Path) -> dict[str, Any]:
    """A results file, or the newest one in an output or model folder (:func:`latest_results`)."""
    path = Path(path)
    if path.is_dir():
        path = latest_results(path)
    if not path.is_file():
        raise LingualiftError(f"Results file {path} does not exist; check the path.")
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise LingualiftError(
            f"{path} is not valid JSON ({exc.msg}); pass a results file."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise LingualiftError(
            f"{path} has no 'results' mapping; pass a lingualift/lm-eval results file."
        )
    return data


def format_table(results: dict[str, Any], max_depth: int = 1) -> str:
    """A markdown table like lm-eval's: task, n, metric, value, stderr.

    ``max_depth`` 0 shows the top rows, 1 adds their children (languages, or a
    language's categories), 2 and more go deeper. Depth comes from
    ``group_subtasks`` (lm-eval's layout) or, in older files, from the alias's
    indentation.
    """
    depth = row_depths(results)
    n_samples = results.get("n-samples") or {}
    rows = ["| Task | n | Metric | Value | | Stderr |", "|---|---:|---|---:|---|---:|"]
    for name, metrics in results["results"].items():
        if depth.get(name, 0) > max_depth:
            continue
        alias = str(metrics.get("alias", name)).strip()
        alias = " " * depth.get(name, 0) + ("- " if depth.get(name, 0) else "") + alias.lstrip("- ")
        n = metrics.get(
            "sample_len", metrics.get("n", (n_samples.get(name) or {}).get("effective", ""))
        )
        for key, value in metrics.items():
            if key in _NOT_METRICS or "_stderr" in key or isinstance(value, bool):
                continue
            if not isinstance(value, int | float):
                continue
            metric, _, _filter = key.partition(",")
            stderr = metrics.get(f"{metric}_stderr,{_filter}" if _filter else f"{metric}_stderr")
            se = f"{stderr:.4f}" if isinstance(stderr, float) and math.isfinite(stderr) else "N/A"
            val = f"{value:.4f}" if isinstance(value, float) else str(value)
            rows.append(f"|{alias}|{n}|{metric}|{val}|±|{se}|")
    return "\n".join(rows)


def row_depths(results: dict[str, Any]) -> dict[str, int]:
    """Depth of each row: from ``group_subtasks`` when present, else the alias's indentation."""
    subtasks = results.get("group_subtasks") or {}
    if subtasks:
        children = {c for kids in subtasks.values() for c in kids}
        depth: dict[str, int] = {}

        def walk(name: str, level: int) -> None:
            depth[name] = level
            for child in subtasks.get(name, []):
                walk(child, level + 1)

        for root in [g for g in subtasks if g not in children]:
            walk(root, 0)
        return depth
    out = {}
    for name, metrics in results["results"].items():
        alias = str(metrics.get("alias", name))
        out[name] = len(alias) - len(alias.lstrip())
    return out
