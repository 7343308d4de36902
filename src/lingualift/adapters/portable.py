"""Make a saved PEFT adapter folder name its base model portably.

``save_pretrained`` writes the base model's ``name_or_path`` into
``adapter_config.json`` and the README: for the embedded model that is the
absolute path of the converted cache on the training machine. :func:`stamp_adapter`
replaces it with the base's portable identity (:mod:`lingualift.portable`):
``base_model_name_or_path`` becomes a name ``from_pretrained`` resolves on any
machine where lingualift has converted the embedded model (or the hub id / folder
the user trained on), ``revision`` pins the exact weights, and the README records
which weights those are (GGUF file, sha256, dequantized from Q4_K_M, the hub model
they derive from). Extra keys stay out of ``adapter_config.json``: PEFT warns
about unknown keys there.

``revision`` is PEFT's ``PeftConfig.revision``: the *base model's* revision, which
``AutoPeftModelForCausalLM`` passes to the base's ``from_pretrained``. It is the
embedded model's portable revision, a hub id's commit (so the adapter loads on the
weights it was trained on, not whatever ``main`` is now), or for a local folder
``sha256:<hex>``, the content hash of its weights (transformers ignores a revision
for a folder; the hash lets anyone check the folder still holds those weights).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lingualift.portable import BaseIdentity

ADAPTER_CONFIG = "adapter_config.json"
README = "README.md"


def stamp_adapter(folder: str | Path, identity: BaseIdentity, lang: str | None = None) -> None:
    """Rewrite ``adapter_config.json``'s base and the README of a PEFT folder (in place)."""
    folder = Path(folder)
    path = folder / ADAPTER_CONFIG
    config = json.loads(path.read_text("utf-8"))
    config["base_model_name_or_path"] = identity.name_or_path
    config["revision"] = identity.revision
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (folder / README).write_text(adapter_readme(identity, config, lang), encoding="utf-8")


def adapter_readme(identity: BaseIdentity, config: dict[str, Any], lang: str | None) -> str:
    """A model card: front matter for the hub, the base weights, and how to load the adapter."""
    import yaml

    meta: dict[str, Any] = {
        "base_model": identity.name_or_path,
        "library_name": "peft",
        "pipeline_tag": "text-generation",
        "tags": [
            f"base_model:adapter:{identity.name_or_path}",
            "lora",
            "transformers",
            "lingualift",
        ],
    }
    if lang:
        meta["language"] = [lang]
    meta["lingualift"] = {"base": identity.to_dict()}
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# LoRA adapter{f' for {lang}' if lang else ''} (lingualift)",
        "",
        f"LoRA r={config.get('r')}, alpha={config.get('lora_alpha')} on "
        f"`{identity.name_or_path}`{f' at revision `{identity.revision}`' if identity.revision else ''}.",
        "",
    ]
    weights = identity.weights if identity.kind == "embedded" else None
    if identity.kind == "folder" and identity.weights:
        files = identity.weights.get("files") or {}
        lines += [
            "## Base weights",
            "",
            f"The weights in `{identity.name_or_path}` ({', '.join(f'`{n}`' for n in files)}), "
            f"sha256 `{identity.weights['sha256']}` over their `sha256sum` lines "
            f"(`sha256sum {' '.join(files)} | sha256sum` in that folder shows the same).",
            "",
        ]
    if weights:
        lines += [
            "## Base weights",
            "",
            f"`{weights['gguf_file']}` (sha256 `{weights['gguf_sha256']}`, "
            f"{weights['quantization']}, shipped in `{weights['package']}`), dequantized to "
            f"{weights['dtype']}. They derive from `{weights['derived_from']}` but are not its "
            "weights, so this adapter belongs on the dequantized model, not on the hub model.",
            "",
            f"lingualift registers those weights as `{identity.name_or_path}` in the local Hugging "
            "Face cache whenever it converts the embedded model (any verb that loads it, or "
            "`lingualift export-base`), so on such a machine, offline:",
            "",
        ]
    else:
        lines += ["## Loading", ""]
    lines += [
        "```python",
        "from peft import AutoPeftModelForCausalLM",
        "model = AutoPeftModelForCausalLM.from_pretrained('<this folder>')",
        "```",
        "",
    ]
    if weights:
        lines += [
            "For vLLM or lm-eval, write the base as a plain folder once with "
            "`lingualift export-base out_dir=<dir>` and point them at it:",
            "",
            "```bash",
            "vllm serve <dir> --enable-lora --lora-modules <lang>=<this folder>",
            "lm_eval --model hf --model_args pretrained=<dir>,peft=<this folder> --tasks <task>",
            "```",
            "",
            f"(or `--model_args {identity.pretrained_args},peft=<this folder>` with "
            "`HF_HUB_OFFLINE=1` on a machine where lingualift registered the weights).",
            "",
        ]
    return "\n".join(lines)
