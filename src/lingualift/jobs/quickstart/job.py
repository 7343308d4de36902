"""``lingualift quickstart``: the main job end to end, on the embedded assets only.

For one non-English target language it

1. **data**: draws training verses, a target-usage sample and a multilingual
   pool from the embedded corpus (source specs, :mod:`lingualift.data.sources`);
2. **heldout**: held-out verses (target and English) and a cloze set from
   books that never enter training, the pool or the usage sample;
3. **select-<method>**: COMPASS and the baselines at the same budget;
4. **adapter**: a LoRA adapter on the training verses + the COMPASS selection,
   stored in ``<out_dir>/adapters``;
5. **deploy**: what production needs beside the weights, in the version folder:
   its held-out set (``heldout.jsonl``: the target-language held-out verses, the
   old set an ECDA gate scores) and its reference profile (``reference/``, from
   ``n_reference`` usage verses), so that ``lingualift serve``, ``monitor`` and
   ``ecda`` take the adapter as it is (the report prints the commands);
6. **shifcon**: language vectors and the layer area, so the shift can be applied;
7. **eval-<variant>**: base vs adapter vs ShifCon on held-out NLL and cloze accuracy;
8. **shifcon-train** (when the time budget allows): brief ShifCon training
   (LoRA + shift + contrastive loss), evaluated like the others;
9. **report**: ``report.md`` (tables and the commands that take the adapter into
   production), ``report.json`` and ``results.png``.

Every stage runs on the stage engine (:mod:`lingualift.stages`): a rerun reuses
what finished, a change of settings reruns the stages it reaches, an
interrupted adapter resumes from its checkpoint. The base model is loaded once
and shared by every stage that needs it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from lingualift.adapters.portable import stamp_adapter
from lingualift.atomic import atomic_write_text, check_replaceable
from lingualift.config import settings_of, to_dict
from lingualift.data import parse_books
from lingualift.errors import require
from lingualift.jobs.quickstart.config import QuickstartConfig
from lingualift.languages import DOMINANT_LANGUAGE, normalize_language
from lingualift.planning import check_training_args
from lingualift.portable import base_identity
from lingualift.stages import JOB_FILE, Job, Stage, StageContext
from lingualift.workflows.base import LoadedBase

# -- stages -----------------------------------------------------------------------------


def _pool_spec(config: QuickstartConfig) -> str:
    held = set(parse_books(config.heldout_books))
    books = ",".join(str(b) for b in parse_books("all") if b not in held)
    if config.pool_langs == "all":
        langs = f"all-{config.lang}"
    else:
        codes = [normalize_language(x) for x in config.pool_langs.split(",") if x.strip()]
        require(
            codes and config.lang not in codes,
            f"pool_langs must name languages other than {config.lang!r}; use 'all' or e.g. fr,id.",
        )
        langs = ",".join(codes)
    return f"corpus:{langs}:{books}:{config.pool_per_language}"


def _data_stage(config: QuickstartConfig, specs: dict[str, str], ctx: StageContext):
    from lingualift.data import write_records
    from lingualift.data.sources import read_source

    counts = {}
    for role, spec in specs.items():
        records = read_source(spec, seed=config.seed, role=role)
        write_records(records, ctx.out / f"{role}.jsonl")
        counts[role] = len(records)
    return counts


def _heldout_stage(config: QuickstartConfig, ctx: StageContext) -> dict[str, Any]:
    from lingualift.data import ParallelCorpus
    from lingualift.data.sources import CorpusSlice, read_corpus
    from lingualift.evaluation.cloze import build_cloze, write_cloze

    held = read_corpus(
        CorpusSlice((config.lang,), config.heldout_books, config.n_heldout), config.seed
    )
    english = {
        r.id: r for r in ParallelCorpus().monolingual(DOMINANT_LANGUAGE, config.heldout_books)
    }
    texts = {
        config.lang: [r.text for r in held if r.meta["verse"] in english],
        DOMINANT_LANGUAGE: [
            english[r.meta["verse"]].text for r in held if r.meta["verse"] in english
        ],
    }
    require(texts[config.lang], f"No held-out {config.lang!r} verses in {config.heldout_books!r}.")
    cloze = build_cloze(config.lang, config.heldout_books, config.n_cloze, config.seed)
    atomic_write_text(ctx.out / "texts.json", json.dumps(texts, ensure_ascii=False, indent=1))
    write_cloze(cloze, ctx.out / "cloze.jsonl")
    return {"n_heldout": len(texts[config.lang]), "n_cloze": len(cloze)}


def _deploy_stage(
    config: QuickstartConfig, adapter: Stage, heldout: Stage, ctx: StageContext
) -> dict[str, Any]:
    """The version folder gets its held-out set and its reference profile (module docstring).

    Written into the stored version (each file atomically), as ``lingualift monitor
    build_reference=`` does: the adapter stage is not redone for them, and a rerun after a
    crash writes the same files again.
    """
    from lingualift.adapters.data import HELDOUT_FILE, Example, write_examples
    from lingualift.adapters.store import AdapterStore
    from lingualift.continual.deployed import build_reference
    from lingualift.data import write_records
    from lingualift.data.sources import read_source

    lang = config.lang
    store = AdapterStore(Path(config.out_dir) / "adapters")
    version = store.get(lang, adapter.result["version"])
    # The target-language verses of the held-out books: never trained on, and what the
    # report's NLL is measured on; an ECDA update's gate checks forgetting on them.
    texts = json.loads((heldout.path / "texts.json").read_text("utf-8"))[lang]
    examples = [Example(id=f"heldout-{i}", kind="text", text=t) for i, t in enumerate(texts)]
    write_examples(examples, version.path / HELDOUT_FILE)
    spec = f"corpus:{lang}:{config.usage_books}:{config.n_reference}"
    records = read_source(spec, seed=config.seed, role="usage")
    usage = write_records(records, ctx.out / "usage.jsonl")
    reference = build_reference(
        store, lang, str(usage), version=str(version.version), encoder=config.encoder,
        seed=config.seed, overwrite=True,
    )  # fmt: skip
    return {
        "adapter": version.name,
        "path": str(version.path),
        "heldout": len(examples),
        "reference": {"usage": spec, "rows": len(records), "clusters": reference.n_clusters,
                      "min_window": reference.min_window},
    }  # fmt: skip


def _heldout_set(folder: Path, langs: list[str]):
    from lingualift.evaluation.heldout import HeldoutSet

    texts = json.loads((folder / "texts.json").read_text(encoding="utf-8"))
    cloze = [json.loads(line) for line in (folder / "cloze.jsonl").read_text("utf-8").splitlines()]
    lang = cloze[0]["lang"]
    return HeldoutSet({k: texts[k] for k in langs}, {lang: cloze} if lang in langs else {})


def _eval_result(scores: dict[str, dict[str, Any]], lang: str) -> dict[str, Any]:
    cloze = scores[lang]
    letter = cloze.get("cloze_letter_acc")
    return {
        "nll": {k: round(v["nll"], 4) for k, v in scores.items()},
        "perplexity": {k: round(v["perplexity"], 2) for k, v in scores.items()},
        "nll_tokens": {k: v["n_tokens"] for k, v in scores.items()},
        **{k: round(cloze[k], 4) for k in ("cloze_acc", "cloze_acc_norm", "cloze_acc_norm_stderr")},
        "cloze_letter_acc": None if letter is None else round(letter, 4),
        "n_cloze": cloze["cloze_n"],
    }


# -- the job ----------------------------------------------------------------------------


def run_quickstart(config: QuickstartConfig) -> Path:
    """Run (or resume) every stage; returns the path of ``report.md``."""
    from lingualift.adapters import AdapterStore
    from lingualift.evaluation.heldout import score_heldout
    from lingualift.workflows.selection import select_into
    from lingualift.workflows.training import (
        TrainConfig,
        read_training_data,
        train_and_store,
        train_settings,
    )

    started = time.perf_counter()
    lang = config.lang
    out = Path(config.out_dir)
    methods = ["compass", *dict.fromkeys(config.baselines)]
    check_replaceable(out, JOB_FILE, config.overwrite, what="quickstart output")
    # The adapter's training is the quickstart's largest step: does it fit the device? Refused
    # here, before anything loads or is written (gradient checkpointing turned on when only
    # that fits).
    train_args = check_training_args("train", config, config.train, config.lora)
    job = Job(out, label="quickstart", overwrite=config.overwrite, total=len(methods) + 10)
    job.claim()
    base = LoadedBase(config)
    model_settings = settings_of(base.settings)  # what a stage's numbers depend on
    specs = {
        "train": f"corpus:{lang}:{config.train_books}:{config.n_train}",
        "usage": f"corpus:{lang}:{config.usage_books}:{config.n_usage}",
        "pool": _pool_spec(config),
    }
    data = job.run(
        "data", {"specs": specs, "seed": config.seed},
        lambda ctx: _data_stage(config, specs, ctx), describe="drawing training, usage and pool verses",
    )  # fmt: skip
    heldout_settings = {
        k: getattr(config, k) for k in ("lang", "seed", "heldout_books", "n_heldout", "n_cloze")
    }
    heldout = job.run(
        "heldout", heldout_settings, lambda ctx: _heldout_stage(config, ctx),
        describe="held-out verses and the cloze set",
    )  # fmt: skip

    def read(role: str):
        from lingualift.data import read_records

        return read_records(data.path / f"{role}.jsonl")

    selections: dict[str, Stage] = {}
    for method in methods:
        selections[method] = job.run(
            f"select-{method}",
            {"method": method, "budget": config.budget, "encoder": config.encoder, "seed": config.seed},
            lambda ctx, m=method: select_into(
                ctx.out, m, read("usage"), read("train"), read("pool"), config.budget,
                fmt="jsonl", encoder=config.encoder, seed=config.seed, target_lang=lang,
            ),
            after=[data],
            describe=f"{method} selection of {config.budget} pool items",
        )  # fmt: skip

    train_config = TrainConfig(
        **base.settings.model_kwargs(), lang=lang, data=str(data.path / "train.jsonl"),
        data_format="text", selection=str(selections["compass"].path / "selection.jsonl"),
        lora=config.lora, train=train_args, packing=True, eval_fraction=0.0,
        store=str(out / "adapters"),
    )  # fmt: skip
    train_data = read_training_data(train_config)
    trained_now: dict[str, Any] = {}

    def adapter_stage(ctx: StageContext) -> dict[str, Any]:
        trained, result = train_and_store(
            ctx,
            train_config,
            train_data,
            base.fresh(),
            base.tokenizer,
            AdapterStore(out / "adapters"),
        )
        trained_now["model"] = trained.model
        return result

    adapter = job.run(
        "adapter", train_settings(train_config, train_data, None), adapter_stage,
        after=[data, selections["compass"]], describe=f"LoRA adapter ({config.train.max_steps} steps)",
    )  # fmt: skip
    deploy_settings = {
        k: getattr(config, k) for k in ("lang", "encoder", "seed", "usage_books", "n_reference")
    }
    job.run(
        "deploy", deploy_settings, lambda ctx: _deploy_stage(config, adapter, heldout, ctx),
        after=[adapter, heldout],
        describe=f"held-out set and reference profile ({config.n_reference} usage verses) "
        f"in {adapter.result.get('adapter')}",
    )  # fmt: skip

    shifcon_langs = list(
        dict.fromkeys([lang, *(normalize_language(x) for x in config.shifcon_langs)])
    )
    shifcon_settings = {
        "model": model_settings, "langs": shifcon_langs, "books": config.train_books,
        "per_language": config.vector_sentences, "rank": config.subspace_rank,
    }  # fmt: skip
    shifcon_stage = job.run(
        "shifcon", shifcon_settings, lambda ctx: _shifcon_stage(config, shifcon_langs, base, ctx),
        describe="language vectors and the layer area",
    )  # fmt: skip
    from lingualift.shifcon import ShifCon

    shifcon = ShifCon.load(shifcon_stage.path)

    def evaluate(model: Any, langs: list[str], apply_shift: bool) -> dict[str, Any]:
        sets = _heldout_set(heldout.path, langs)
        scores = score_heldout(
            model, base.tokenizer, sets, shifcon if apply_shift else None,
            batch_size=config.eval_batch_size, letters=config.cloze_letters, progress=True,
        )  # fmt: skip
        return _eval_result(scores, lang)

    both = [lang, DOMINANT_LANGUAGE]
    scoring = {"model": model_settings, "letters": config.cloze_letters}
    evals = {
        "base": job.run(
            "eval-base", scoring, lambda ctx: evaluate(base.model, both, False), after=[heldout]
        ),
        "lora": job.run(
            "eval-lora", scoring,
            lambda ctx: evaluate(_merged(trained_now, base, adapter), both, False),
            after=[heldout, adapter],
        ),
        # The shift never touches English rows: English NLL is the base model's, by construction.
        "shifcon": job.run(
            "eval-shifcon", scoring, lambda ctx: evaluate(base.model, [lang], True),
            after=[heldout, shifcon_stage],
        ),
    }  # fmt: skip
    results: dict[str, Any] = {name: stage.result for name, stage in evals.items()}
    for key in ("nll", "perplexity", "nll_tokens"):
        results["shifcon"][key][DOMINANT_LANGUAGE] = results["base"][key][DOMINANT_LANGUAGE]

    brief = _shifcon_train(
        config, job, base, shifcon, shifcon_langs[0], evaluate, started, adapter, evals
    )
    if "eval" in brief.result:
        results["shifcon-trained"] = brief.result["eval"]
    job.announce("report", "writing report.md, report.json, results.png")
    from lingualift.jobs.quickstart.report import write_report

    return write_report(config, out, job.stages, results, time.perf_counter() - started)


def _merged(trained_now: dict[str, Any], base: LoadedBase, adapter: Stage) -> Any:
    """The adapter merged into the base weights: the model just trained, or the stored one."""
    if "model" in trained_now:
        return trained_now.pop("model").merge_and_unload()
    return base.with_adapter(adapter.result["path"])


def _shifcon_stage(config: QuickstartConfig, langs: list[str], base: LoadedBase, ctx: StageContext):
    from lingualift.shifcon import ShifCon
    from lingualift.shifcon.corpus import corpus_texts

    texts = corpus_texts(langs, config.train_books, config.vector_sentences)
    shifcon = ShifCon.build(
        base.model, base.tokenizer, texts, ctx.out, base_spec=base.spec,
        batch_size=config.eval_batch_size, max_length=64, subspace_rank=config.subspace_rank,
    )  # fmt: skip
    return {
        "a": shifcon.a,
        "b": shifcon.b,
        "num_layers": shifcon.vectors.num_layers,
        "languages": shifcon.languages,
        "mean_curve": [round(x, 4) for x in shifcon.curve["curves"]["mean"]],
    }


def _shifcon_train(config, job, base, shifcon, lang, evaluate, started, adapter, evals) -> Stage:
    """Brief ShifCon training, when it fits in what is left of the time budget."""
    from lingualift.shifcon.corpus import corpus_pairs
    from lingualift.shifcon.trainer import ShifConTrainer

    args = dataclasses.replace(
        config.train,
        max_steps=config.shifcon_train_steps,
        batch_size=config.train.batch_size * config.train.grad_accum,
        grad_accum=1,
        max_length=64,
        save_every=max(1, config.shifcon_train_steps // 2),
    )
    # A ShifCon step reads args.batch_size pairs of args.max_length tokens on both sides (the
    # English side only up to layer b): about 1.5x the target side's tokens, by the adapter's rate.
    adapter_tokens = config.train.batch_size * config.train.grad_accum * config.train.max_length
    step_s = adapter.result["train_seconds"] / max(1, adapter.result["steps"])
    step_s *= 1.5 * args.batch_size * args.max_length / adapter_tokens
    eval_s = max(stage.seconds for stage in evals.values())
    estimate = step_s * config.shifcon_train_steps + eval_s + 15
    left = 60 * config.time_budget_min - (time.perf_counter() - started)
    run = config.shifcon_train == "always" or (config.shifcon_train == "auto" and estimate <= left)
    # The mode, not the decision: an 'auto' run that skipped stays skipped on a rerun.
    settings = {
        "mode": config.shifcon_train, "args": settings_of(args), "lora": to_dict(config.lora),
        "pairs": config.shifcon_pairs, "books": config.train_books,
    }  # fmt: skip

    def stage(ctx: StageContext) -> dict[str, Any]:
        if not run:
            return {"skipped": f"estimated {estimate:.0f} s, {max(left, 0):.0f} s of budget left"}
        pairs = corpus_pairs([lang], config.train_books, config.shifcon_pairs)
        checked = check_training_args("shifcon", base.settings, args, config.lora)
        trainer = ShifConTrainer(
            base.fresh(), base.tokenizer, shifcon, pairs, checked, lora=config.lora,
            run_dir=ctx.work,
        )  # fmt: skip
        metrics = trainer.train()
        trainer.model.save_pretrained(str(ctx.out / "adapter"))
        stamp_adapter(ctx.out / "adapter", base_identity(base.spec), lang)
        metrics["eval"] = evaluate(
            trainer.model.merge_and_unload(), [lang, DOMINANT_LANGUAGE], True
        )
        return metrics

    after = [job.stages["shifcon"], job.stages["heldout"]]
    return job.run(
        "shifcon-train", settings, stage, after=after,
        describe=f"brief ShifCon training ({config.shifcon_train_steps} steps) if the budget allows",
    )  # fmt: skip


__all__ = ["QuickstartConfig", "run_quickstart"]
