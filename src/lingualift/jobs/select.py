"""The ``select`` job: read target usage, training data and pool, select, write the outputs.

Inputs are source specs (:mod:`lingualift.data.sources`): files in any format
the one reader takes (JSON Lines, JSON arrays, CSV/TSV, Parquet, compressed),
folders, ``hf:`` datasets or slices of the embedded corpus such as ``corpus:sw:19,40`` or
``corpus:all-sw:all:200`` (every corpus language but Swahili, all books, 200
verses each, drawn with the seed).

Outputs land in ``out_dir`` in one atomic rename: ``selection.parquet`` (or
``.jsonl``), ``report.json``, ``report.png``, the fitted ``profile.safetensors``
(the cluster profile, reusable by the drift monitor), the resolved
``config.yaml`` and ``stage.json``. Any bad input fails before anything is
written. A rerun with the same settings and data reuses the finished folder;
other settings are refused unless ``overwrite=true``. Embeddings are cached, so
a rerun after an interruption only embeds what is missing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from lingualift.compass.baselines import METHODS
from lingualift.config import bookkeeping, save_config, settings_of
from lingualift.data import Columns, Record, fingerprint, merge_columns
from lingualift.data.sources import read_source
from lingualift.errors import LingualiftError, require
from lingualift.languages import normalize_language
from lingualift.stages import Job, StageContext
from lingualift.workflows.selection import select_into


@dataclasses.dataclass
class SelectConfig:
    """Settings of ``lingualift select``."""

    target: str = ""
    """Target usage sample: a data file or folder (docs/data.md), 'hf:<dataset>' or
    'corpus:<langs>[:<books>[:<n>]]'."""
    training: str | None = None
    """Data the model or adapter was already tuned on (same forms; empty or None = none)."""
    pool: str = ""
    """Multilingual candidate pool with a language per item (same forms)."""
    target_lang: str | None = None
    """Target language; inferred from the target records when not given."""
    method: str = "compass"
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
    ray_address: str | None = bookkeeping(None)
    """backend=ray: the cluster to join ('host:port', 'auto'); None: RAY_ADDRESS, else a cluster
    running on this machine, else a new local one."""
    ray_runtime_env: dict[str, Any] | None = bookkeeping(None)
    """backend=ray: the workers' runtime environment; None ships the running lingualift package
    to them (py_modules), {} adds nothing, or e.g. {"pip": ["lingualift[ray]==0.1.0"]}."""
    use_gpu: Literal["auto", "true", "false"] = "auto"
    """FAISS clustering and assignment on GPU: auto (when a GPU build of FAISS sees a GPU),
    true (insist), false (CPU)."""
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
    # Column mappings enter fingerprints as fields_settings(), in one normalised form.
    columns: Columns = bookkeeping(default_factory=Columns)
    """Columns of all three inputs (text, id, lang, default_lang), as every verb takes them,
    e.g. columns.text=question columns.lang=language; an input's own group below overrides it."""
    target_fields: Columns = bookkeeping(default_factory=Columns)
    """Columns of the target file only: text, id, lang, and default_lang for rows (or a file)
    without a language, e.g. target_fields.text=question target_fields.default_lang=sw."""
    training_fields: Columns = bookkeeping(default_factory=Columns)
    """Columns of the training file only (text, id, lang, default_lang)."""
    pool_fields: Columns = bookkeeping(default_factory=Columns)
    """Columns of the pool file only (text, id, lang, default_lang); every pool item needs a
    language (a column, or default_lang for a monolingual pool) unless method=random."""
    text_field: str | None = bookkeeping(None)
    """Short form of columns.text (as in every verb)."""
    lang_field: str | None = bookkeeping(None)
    """Short form of columns.lang."""
    id_field: str | None = bookkeeping(None)
    """Short form of columns.id."""
    out_dir: str = bookkeeping("runs/select")
    """Output folder (selection, report.json, report.png, profile, config.yaml)."""
    format: Literal["parquet", "jsonl"] = "parquet"
    """File format of the selection."""
    overwrite: bool = bookkeeping(False)
    """Replace an out_dir made with other settings."""

    def __post_init__(self) -> None:
        if self.target_lang:
            self.target_lang = normalize_language(self.target_lang)
        require(
            self.method in METHODS,
            f"Unknown method {self.method!r}; use one of {', '.join(METHODS)}.",
        )
        require(
            self.budget is None or self.budget > 0, f"budget must be positive, got {self.budget}."
        )
        require(
            self.dedup_threshold is None or 0 < self.dedup_threshold <= 1,
            f"dedup_threshold is a cosine in (0, 1] (or None), got {self.dedup_threshold}.",
        )
        require(self.k_languages >= 1, f"k_languages must be at least 1, got {self.k_languages}.")
        shared = merge_columns(Columns(), self.columns, "columns")
        for flat, key in (("text_field", "text"), ("lang_field", "lang"), ("id_field", "id")):
            value = getattr(self, flat)
            if value is None or value == getattr(shared, key):
                continue
            require(
                getattr(shared, key) == getattr(Columns(), key),
                f"{flat}={value!r} and columns.{key}={getattr(shared, key)!r} disagree; "
                "give one of them.",
            )
            setattr(shared, key, value)
        self.columns = shared
        for name in ("target_fields", "training_fields", "pool_fields"):
            group = merge_columns(shared, getattr(self, name), name)
            if group.default_lang:
                group.default_lang = normalize_language(group.default_lang)
            setattr(self, name, group)

    def fields_settings(self) -> dict[str, Any]:
        """What the column mappings add to the stage fingerprint (the earlier keys when one
        mapping without a default language serves all inputs, so earlier runs are reused)."""
        keys = ("text", "id", "lang", "default_lang")  # what select reads (keeps fingerprints)
        groups = {
            role: {key: getattr(group, key) for key in keys}
            for role, group in (
                ("target", self.target_fields),
                ("training", self.training_fields),
                ("pool", self.pool_fields),
            )
        }
        first = groups["target"]
        if all(g == first for g in groups.values()) and not first["default_lang"]:
            return {
                "text_field": first["text"],
                "lang_field": first["lang"],
                "id_field": first["id"],
            }
        return {"fields": groups}


@dataclasses.dataclass
class SelectResult:
    out_dir: Path
    report: dict[str, Any]
    """The report's headline numbers (method, sizes, JS before/after, languages)."""
    reused: bool = False


def read_inputs(config: SelectConfig) -> tuple[list[Record], list[Record], list[Record]]:
    """Target usage, training data and pool, checked (a bad input fails before any work)."""
    require(config.target, "Set target= to the target usage sample (a file or corpus:...).")
    require(config.pool, "Set pool= to the candidate pool (a file or corpus:...).")
    target = read_source(
        config.target, config.target_fields, config.seed, "target", option="target_fields"
    )
    training = (
        read_source(
            config.training,
            config.training_fields,
            config.seed,
            "training",
            option="training_fields",
        )
        if config.training
        else []
    )
    pool = read_source(config.pool, config.pool_fields, config.seed, "pool", option="pool_fields")
    missing = sum(1 for r in pool if not r.lang)
    if missing and config.method != "random":
        raise LingualiftError(
            f"{missing} pool items have no language; add a '{config.pool_fields.lang}' column "
            "or set pool_fields.default_lang=<code>."
        )
    return target, training, pool


def run_select(config: SelectConfig) -> SelectResult:
    """Run the job described by ``config`` (see the module docstring)."""
    budget = None if config.method == "all" else config.budget
    require(
        budget is not None or config.method == "all",
        f"method {config.method!r} needs a budget; set budget=<number>.",
    )
    target, training, pool = read_inputs(config)
    settings = settings_of(config)
    settings.update(config.fields_settings())
    if config.use_gpu == "auto":  # where FAISS runs, unless asked for, is not a setting
        settings.pop("use_gpu")
    settings["data"] = {
        "target": fingerprint(target),
        "training": fingerprint(training),
        "pool": fingerprint(pool),
    }

    def select(ctx: StageContext) -> dict[str, Any]:
        inputs = embedded_on_ray(config, target, training, pool) if config.backend == "ray" else []
        report = select_into(
            ctx.out,
            config.method,
            *(inputs or (target, training, pool)),
            budget,
            unit=config.budget_unit,
            fmt=config.format,
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
            use_gpu=config.use_gpu,
        )
        save_config(config, ctx.out / "config.yaml")
        return report

    out = Path(config.out_dir)
    stage = Job(out.parent, label="select", overwrite=config.overwrite).run(
        "select", settings, select, path=out, describe=f"{config.method} selection"
    )
    return SelectResult(out, stage.result, stage.reused)


def embedded_on_ray(
    config: SelectConfig, target: list[Record], training: list[Record], pool: list[Record]
) -> list[Any]:
    """The three inputs embedded on the Ray cluster (lingualift shipped to its workers), each
    file read by the workers where they can read it (docs/compass.md)."""
    from lingualift.compass.embedding import connect_ray, embed_records, worker_read

    connect_ray(address=config.ray_address, runtime_env=config.ray_runtime_env)
    inputs = (
        (target, config.target, config.target_fields),
        (training, config.training, config.training_fields),
        (pool, config.pool, config.pool_fields),
    )
    return [
        embed_records(
            records, config.encoder, "ray", config.tokenizer,
            read_from=worker_read(spec, columns) if spec else None,
        ) if records else records
        for records, spec, columns in inputs
    ]  # fmt: skip
