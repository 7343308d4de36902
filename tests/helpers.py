"""Small helpers shared by tests of several packages."""

from __future__ import annotations

import json
from pathlib import Path


def save_constant_shifcon(folder: Path, base_model: Path) -> Path:
    """A ShifCon folder (area 1-3, en at 0, sw at 1) for the tiny llama of 4 layers x 32 that
    ``save_tiny_causal_lm(..., "llama", hidden_size=32, num_layers=4)`` writes at ``base_model``."""
    import torch

    from lingualift.shifcon import LanguageVectors, ShifCon

    vectors = LanguageVectors(
        means={"en": torch.zeros(5, 32), "sw": torch.ones(5, 32)},
        counts={"en": 1, "sw": 1},
        tokens={"en": 1, "sw": 1},
        base_model=str(base_model),
        model_type="llama",
        num_layers=4,
        hidden_size=32,
    )
    ShifCon(vectors, 1, 3).save(folder)
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """``rows`` as a JSONL file (folders created), for tests that need a data file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every path under ``roots``: equal before and after a
    refused command when it wrote, touched and removed nothing."""
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for root in roots
        for p in sorted(root.rglob("*"))
    }


def custom_code_model_folder(folder: Path, marker: Path) -> Path:
    """A model folder whose config asks for its own code; that code, if it ever ran, would
    leave ``marker``."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "lingualift_custom",
                "architectures": ["CustomForCausalLM"],
                "auto_map": {
                    "AutoConfig": "configuration_custom.CustomConfig",
                    "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM",
                },
            }
        )
    )
    code = f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
    (folder / "configuration_custom.py").write_text(code)
    (folder / "modeling_custom.py").write_text(code)
    return folder


def bitsandbytes_problem() -> str | None:
    """Why bitsandbytes cannot quantize on this machine's CPU (None when it can)."""
    import torch

    try:
        import bitsandbytes as bnb
    except ImportError:
        return "bitsandbytes is not installed (pip install 'lingualift[qlora]')"
    try:
        layer = bnb.nn.Linear4bit(16, 8, compute_dtype=torch.float32, quant_type="nf4")
        layer.weight = bnb.nn.Params4bit(torch.randn(8, 16), requires_grad=False, quant_type="nf4")
        layer.to("cpu")(torch.randn(2, 16))  # quantizes on the move, then runs on the CPU
    except Exception as exc:  # its CPU backend is missing or broken here
        return f"bitsandbytes cannot run nf4 on this CPU ({type(exc).__name__}: {exc})"
    return None


def needs_bitsandbytes():
    """A skip mark, with the reason, for where bitsandbytes cannot run (the GPU script covers
    it there): ``@needs_bitsandbytes()`` or ``pytestmark = needs_bitsandbytes()``."""
    import pytest

    problem = bitsandbytes_problem()
    return pytest.mark.skipif(
        problem is not None, reason=f"{problem}; benchmarks/gpu_scale.py covers QLoRA on a GPU"
    )
