"""The base model of a job, loaded once on first use and shared by every stage that needs it."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from lingualift.placement import ModelSettings, as_model_settings


class LoadedBase:
    """A base model (its spec with precision and placement), loaded on first use and kept for
    every stage of a job.

    Stages that find their outputs finished never load it; training stages get a
    fresh copy (:meth:`fresh`), so the original stays free of adapter layers.
    (Not pydantic's ``BaseModel``: this holds a causal LM and its tokenizer.)
    """

    def __init__(self, settings: str | ModelSettings) -> None:
        # Just the six settings (a job config that inherits them carries much more).
        self.settings = as_model_settings(settings).model_settings()

    @property
    def spec(self) -> str:
        """The model spec (an embedded name, a hub id or a local folder)."""
        return str(self.settings.model)

    @functools.cached_property
    def _loaded(self) -> tuple[Any, Any]:
        from lingualift.models import load_causal_lm

        model, tokenizer = load_causal_lm(self.settings)
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
        """A fresh copy with a stored PEFT adapter on it: merged in (scored at the base model's
        speed), or kept beside a quantized base's weights (merging would re-quantize them)."""
        from lingualift.evaluation.loading import apply_adapters

        return apply_adapters(self.fresh(), [str(folder)], merge=True)
