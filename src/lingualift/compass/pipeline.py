"""The ``select`` job: read target usage, training data and pool, select, write outputs.

Sources are files (``.jsonl``, ``.csv``, ``.tsv``, ``.parquet``), ``hf:`` datasets,
or slices of the embedded corpus written ``corpus:<langs>:<books>[:<per language>]``,
e.g. ``corpus:sw:19,40`` or ``corpus:all-sw:all:200`` (every corpus language but
Swahili, all books, 200 verses each, drawn with the seed).

Outputs land in ``out_dir`` in one atomic rename: ``selection.parquet`` (or
``.jsonl``), ``report.json``, ``report.png`` and the resolved ``config.yaml``.
Any bad input fails before anything is written. Embeddings are cached, so a
rerun after an interruption only embeds what is missing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np

from lingualift.atomic import atomic_dir
from lingualift.config import save_config
from lingualift.data import FieldMap, ParallelCorpus, Record, read_records
from lingualift.data.corpus import CORPUS_LANGUAGES
from lingualift.errors import LingualiftError, require
from lingualift.languages import normalize_language


@dataclasses.dataclass
class SelectConfig:
    """Settings of ``lingualift select``."""

    target: str = ""
    """Target usage sample: a data file, 'hf:<dataset>' or 'corpus:<langs>:<books>[:<n>]'."""
    training: str | None = None
    """Data the model or adapter was already tuned on (same forms; empty or None = none)."""
    pool: str = ""
    """Multilingual candidate pool with a language per item (same forms)."""
    target_lang: str | None = None
    """Target language; inferred from the target records when not given."""
    method: Literal["compass", "random", "lang-similarity", "all"] = "compass"
    """Sampler: compass (ours), random, lang-similarity (k nearest URIEL languages) or all."""
    budget: float | None = 1000
    """How much to select, in budget_unit (ignored by method 'all')."""
    budget_unit: Literal["items", "tokens"] = "items"
    """Unit of the budget: items, or tokens (see tokenizer)."""
    tokenizer: str | None = None
    """Tokenizer for token budgets (model spec); None counts words and CJK characters."""
    language_cap: float | None = None
    """Largest fraction of the budget any one language may take (None = no cap)."""
    encoder: str = "e5-nano"
    """Sentence encoder spec for all three inputs (see lingualift.embed.get_encoder)."""
    backend: Literal["local", "ray"] = "local"
    """Embedding backend: local, or Ray Data map_batches with encoder actors."""
    n_clusters: int | None = None
    """K; None uses the rule K = round(sqrt(n_target / 2)) clipped to [2, min(256, n_target / 5)]."""
    tau: float = 1.0
    """Quota temperature: B_c ~ w(c)^(1/tau); below 1 favours the largest gaps."""
    language_prior: Literal["uniform", "typology"] = "uniform"
    """Multiply ranking scores by URIEL similarity to the target language ('typology')."""
    dedup_threshold: float | None = 0.95
    """Drop a candidate whose cosine to one already chosen in its cluster is above this."""
    k_languages: int = 3
    """Number of nearest languages for method 'lang-similarity'."""
    seed: int = 0
    """Seed for clustering, corpus sampling and the random baselines."""
    text_field: str = "text"
    """Column holding the text in data files."""
    lang_field: str = "lang"
    """Column holding the language code in data files."""
    id_field: str = "id"
    """Column holding a unique id in data files."""
    out_dir: str = "runs/select"
    """Output folder (selection, report.json, report.png, config.yaml)."""
    format: Literal["parquet", "jsonl"] = "parquet"
    """File format of the selection."""
    overwrite: bool = False
    """Replace an existing out_dir."""


def _corpus_langs(spec: str) -> list[str]:
    if spec.startswith("all"):
        excluded = {normalize_language(x) for x in spec[3:].lstrip("-").split(",") if x}
        return [lang for lang in CORPUS_LANGUAGES if lang not in excluded]
    return [normalize_language(x) for x in spec.split(",") if x.strip()]


def load_source(spec: str | None, config: SelectConfig, role: str) -> list[Record]:
    """Records from a file, an 'hf:' dataset or a 'corpus:' slice (see the module docstring)."""
    if not spec:
        return []
    if spec.startswith("corpus:"):
        parts = spec.split(":")
        require(
            3 <= len(parts) <= 4,
            f"{role} {spec!r} must look like corpus:<langs>:<books>[:<per language>].",
        )
        langs, books = _corpus_langs(parts[1]), parts[2]
        per_language = int(parts[3]) if len(parts) == 4 else None
        corpus = ParallelCorpus()
        rng = np.random.default_rng(config.seed)
        records = []
        for lang in langs:
            rows = corpus.multilingual([lang], books)
            if per_language is not None and per_language < len(rows):
                keep = np.sort(rng.choice(len(rows), per_language, replace=False))
                rows = [rows[i] for i in keep]
            records.extend(rows)
        require(records, f"{role} {spec!r} matched no verses; widen the books or languages.")
        return records
    fields = FieldMap(text=config.text_field, id=config.id_field, lang=config.lang_field)
    return read_records(spec, fields)


def run_select(config: SelectConfig) -> Path:
    """Run the job described by ``config``; returns the output folder."""
    from lingualift.compass.baselines import make_sampler

    require(config.target, "Set target= to the target usage sample (a file or corpus:...).")
    require(config.pool, "Set pool= to the candidate pool (a file or corpus:...).")
    out_dir = Path(config.out_dir)
    if out_dir.exists() and not config.overwrite:
        raise LingualiftError(f"{out_dir} already exists; pass overwrite=true or another out_dir.")
    target = load_source(config.target, config, "target")
    training = load_source(config.training, config, "training")
    pool = load_source(config.pool, config, "pool")
    require(pool, "The pool is empty; give at least one candidate item.")
    missing = sum(1 for r in pool if not r.lang)
    if missing and config.method != "random":
        raise LingualiftError(
            f"{missing} pool items have no language; add a '{config.lang_field}' column."
        )
    sampler = make_sampler(
        config.method,
        encoder=config.encoder,
        n_clusters=config.n_clusters,
        tau=config.tau,
        language_prior=config.language_prior,
        dedup_threshold=config.dedup_threshold,
        seed=config.seed,
        target_lang=config.target_lang,
        language_cap=config.language_cap,
        backend=config.backend,
        tokenizer=config.tokenizer,
        k_languages=config.k_languages,
    )
    budget = None if config.method == "all" else config.budget
    require(
        budget is not None or config.method == "all",
        f"method {config.method!r} needs a budget; set budget=<number>.",
    )
    selection = sampler.fit(target, training or None, pool).select(None, budget, config.budget_unit)
    records = selection.records
    with atomic_dir(out_dir, overwrite=config.overwrite) as tmp:
        from lingualift.data import write_records

        write_records(records, tmp / f"selection.{config.format}")
        selection.report.save(tmp / "report.json")
        selection.report.plot(tmp / "report.png")
        save_config(config, tmp / "config.yaml")
    return out_dir
