"""The ``export-base`` job: the embedded base model's weights as a plain Hugging Face folder.

Adapters, ShifCon vectors and steering files made on the embedded model belong on
its weights: the Q4_K_M GGUF dequantized to float32, which differ from the hub's
``google/gemma-3-270m``. ``lingualift export-base out_dir=<dir>`` writes those weights
(config, safetensors, tokenizer, ``lingualift.json`` provenance, a README) so that
vLLM, lm-eval (``--model hf``/``steered``) or ``from_pretrained`` on any machine load
exactly them. It also registers them in this machine's Hugging Face cache under
their portable id (:mod:`lingualift.portable`), which is what stored adapters name.
One stage of the stage engine: a rerun finds the folder done.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lingualift.atomic import check_replaceable
from lingualift.config import bookkeeping
from lingualift.errors import require
from lingualift.models import DEFAULT_MODEL, materialize_embedded
from lingualift.portable import base_identity, registered_snapshot, write_base_files
from lingualift.stages import STAGE_FILE, Job, StageContext, read_stage


@dataclasses.dataclass
class ExportBaseConfig:
    """Settings of ``lingualift export-base``."""

    out_dir: str = bookkeeping("exported/gemma-3-270m")
    """Folder that receives the base model (a plain Hugging Face model folder)."""
    model: str = DEFAULT_MODEL
    """The embedded model to export: embedded:<name> (hub ids and folders need no export)."""
    overwrite: bool = bookkeeping(False)
    """Replace a non-empty folder that lingualift did not write."""


@dataclasses.dataclass
class ExportBaseResult:
    out: Path
    name_or_path: str
    """The portable id artifacts name the base by."""
    revision: str | None
    registered: str | None
    """The Hugging Face cache snapshot that holds the same weights (None if it could not be
    written)."""
    reused: bool = False


def run_export_base(config: ExportBaseConfig) -> ExportBaseResult:
    """Write (or find) the exported base folder (see the module docstring)."""
    identity = base_identity(config.model)
    require(
        identity.kind == "embedded",
        f"{config.model} needs no export: vLLM and lm-eval load a hub id or a model folder as it "
        "is; export-base writes the embedded model (embedded:<name>).",
    )
    out = Path(config.out_dir)
    if read_stage(out) is None:  # refuse a foreign folder before converting anything
        check_replaceable(out, STAGE_FILE, config.overwrite, what="exported base model")
    name = identity.spec.split(":", 1)[1]
    materialize_embedded(name)  # converts once, and registers it in the Hugging Face cache
    settings = {"model": identity.spec, "revision": identity.revision}

    def export(ctx: StageContext) -> dict[str, Any]:
        write_base_files(identity, ctx.out)
        return {"name_or_path": identity.name_or_path, "revision": identity.revision}

    stage = Job(out.parent, label="export-base", overwrite=config.overwrite).run(
        "export-base", settings, export, path=out, describe=f"writing {identity.spec}"
    )
    snapshot = registered_snapshot(name)
    return ExportBaseResult(
        out,
        identity.name_or_path,
        identity.revision,
        str(snapshot) if snapshot.is_dir() else None,
        stage.reused,
    )
