"""A COMPASS (or baseline) selection written into a folder, alone or as a stage of its own.

:func:`select_into` runs a sampler over records already read and writes
``selection.<fmt>``, ``report.json``, ``report.png`` and the fitted cluster
profile into a folder; :func:`select_stage` does the same as a one-stage job of
the stage engine (fingerprinted by the method, budget, sampler settings and the
data, reused when finished).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lingualift.data import Record, fingerprint
from lingualift.stages import Job, Stage, StageContext

SELECTION_REPORT_KEYS = (
    "method", "n_selected", "n_pool", "spent", "unit", "n_clusters", "js_before", "js_after",
    "languages", "encoder",
)  # fmt: skip
"""The report's headline numbers a stage result keeps."""


def select_into(
    folder: Path,
    method: str,
    target: list[Record],
    training: list[Record],
    pool: list[Record],
    budget: float | None,
    *,
    unit: str = "items",
    fmt: str = "parquet",
    **sampler_settings: Any,
) -> dict[str, Any]:
    """Run a sampler and write its outputs into ``folder``; returns the report's headline.

    ``sampler_settings`` are the keyword arguments of the samplers
    (:func:`lingualift.compass.baselines.make_sampler`: encoder, n_clusters, seed,
    target_lang, tau, ...). ``folder`` gets ``selection.<fmt>``, ``report.json``,
    ``report.png`` and the fitted cluster profile (``profile.safetensors``).
    """
    from lingualift.compass.baselines import make_sampler
    from lingualift.data import write_records

    sampler = make_sampler(method, **sampler_settings)
    selection = sampler.fit(target, training or None, pool).select(
        budget=None if method == "all" else budget, unit=unit
    )
    write_records(selection.records, folder / f"selection.{fmt}")
    selection.report.save(folder / "report.json")
    selection.report.plot(folder / "report.png")
    sampler.profile_.save(folder)
    report = selection.report.to_dict()
    return {k: report[k] for k in SELECTION_REPORT_KEYS}


def select_stage(
    folder: str | Path,
    method: str,
    target: list[Record],
    training: list[Record],
    pool: list[Record],
    budget: float | None,
    *,
    fmt: str = "parquet",
    overwrite: bool = False,
    **sampler_settings: Any,
) -> Stage:
    """:func:`select_into` as a one-stage job whose folder is ``folder`` (reused when finished).

    The fingerprint covers the method, budget, format, the sampler settings (an
    encoder object by its name) and the three inputs' fingerprints.
    """
    folder = Path(folder)
    settings = {
        "method": method,
        "budget": None if method == "all" else budget,
        "format": fmt,
        **{k: getattr(v, "name", v) for k, v in sorted(sampler_settings.items())},
        "data": {
            "target": fingerprint(target),
            "training": fingerprint(training),
            "pool": fingerprint(pool),
        },
    }

    def select(ctx: StageContext) -> dict[str, Any]:
        return select_into(
            ctx.out, method, target, training, pool, budget, fmt=fmt, **sampler_settings
        )

    job = Job(folder.parent, label="select", overwrite=overwrite)
    return job.run("select", settings, select, path=folder, describe=f"{method} selection")
