"""What several jobs share: the base model loaded once, and a selection written to a folder.

The quickstart is an experiment in other clothes: both draw corpus inputs,
select with COMPASS and its baselines, train a LoRA adapter on the training
data plus a selection (:func:`lingualift.jobs.train.train_and_store`) and score
systems on held-out text. The pieces they share live here, once.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from lingualift.data import Record


class BaseModel:
    """The base model, loaded on first use and kept for every stage of a job.

    Stages that find their outputs finished never load it; training stages get a
    fresh copy (:meth:`fresh`), so the original stays free of adapter layers.
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec

    @functools.cached_property
    def _loaded(self) -> tuple[Any, Any]:
        from lingualift.models import load_causal_lm

        model, tokenizer = load_causal_lm(self.spec)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer

    @property
    def model(self) -> Any:
        return self._loaded[0]

    @property
    def tokenizer(self) -> Any:
        return self._loaded[1]

    def fresh(self) -> Any:
        # A deep copy is faster than re-loading and leaves the original untouched.
        return copy.deepcopy(self.model)

    def with_adapter(self, folder: str | Path) -> Any:
        """A fresh copy with a stored PEFT adapter merged in (scored at the base model's speed)."""
        from lingualift.evaluation.loading import apply_adapters

        return apply_adapters(self.fresh(), [str(folder)], merge=True)


_SELECTION_REPORT_KEYS = (
    "method", "n_selected", "n_pool", "spent", "unit", "n_clusters", "js_before", "js_after",
    "languages", "encoder",
)  # fmt: skip


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

    ``folder`` gets ``selection.<fmt>``, ``report.json``, ``report.png`` and the
    fitted cluster profile (``profile.safetensors``).
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
    return {k: report[k] for k in _SELECTION_REPORT_KEYS}
