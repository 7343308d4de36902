"""Hand-off to vLLM: the ``vllm serve`` command for the same base model and adapters, and the
process that runs it behind the routing front.

vLLM's multi-LoRA server batches many adapters with dedicated kernels and
continuous batching, which is what a large deployment wants. The store's
version folders are plain PEFT adapters (``adapter_config.json`` with ``r``,
``lora_alpha``, ``target_modules``; ``adapter_model.safetensors``), which is
what vLLM loads, so nothing is converted. The command names:

- the base model as a **local folder** when it is one: for the embedded model,
  the dequantized cache the adapters were trained on (``google/gemma-3-270m``
  on the hub has other weights);
- ``--enable-lora`` and one ``--lora-modules`` flag followed by one
  ``<lang>=<path>`` per current adapter (vLLM's parser keeps only the last
  ``--lora-modules`` flag when it is repeated; a path holding ``=`` or ``,``
  is written in vLLM's JSON form);
- ``--max-lora-rank``: the largest ``r`` among the adapters, rounded up to a
  value vLLM accepts, and ``--max-loras``: every adapter plus one, so one batch
  can mix all languages (vLLM's default is 1) even while a promotion holds two
  versions of one language (:mod:`lingualift.serving.vllm_sync`);
- ``--served-model-name``: the same base model id as our server, so clients
  and the routing front (:mod:`lingualift.serving.front`) need no change;
- the environment ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``
  (:data:`RUNTIME_LORA_ENV`), without which vLLM has no runtime LoRA routes and
  promotions could not reach it (:attr:`VllmPlan.env`, printed before the
  command).

:class:`VllmProcess` runs the command (``lingualift serve engine=vllm
run=true``), with that environment, in its own process group, and stops it.

ShifCon cannot apply there: vLLM runs its own model code without PyTorch
forward hooks on the decoder layers, so requests it serves get their adapter
but no representation shift.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lingualift.adapters.store import AdapterStore, check_base_model
from lingualift.errors import LingualiftError

VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for ``--max-lora-rank``."""
RUNTIME_LORA_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"
"""vLLM serves ``/v1/load_lora_adapter`` and ``/v1/unload_lora_adapter`` only when this
environment variable is true."""
SPARE_LORAS = 1
"""``--max-loras`` slots beyond the adapters at start: a promotion loads the new version
before the old one is unloaded."""
SHIFCON_NOTE = (
    "ShifCon hooks cannot run inside vLLM (no forward hooks on its layers): requests it serves "
    "get their adapter but no representation shift; serve with engine=lingualift to keep ShifCon."
)


@dataclasses.dataclass
class VllmPlan:
    """The command, and what went into it."""

    command: list[str]
    base_model: str
    """What vLLM loads: a local folder, or a hub id."""
    adapters: dict[str, Path]
    """Language -> PEFT folder of its current version."""
    max_lora_rank: int | None
    notes: list[str] = dataclasses.field(default_factory=list)
    env: dict[str, str] = dataclasses.field(default_factory=lambda: {RUNTIME_LORA_ENV: "True"})
    """Environment variables the command needs (never the API key: that is the caller's)."""

    def shell_command(self) -> str:
        """The command as one shell line, its environment first."""
        assignments = [f"{key}={shlex.quote(value)}" for key, value in self.env.items()]
        return " ".join([*assignments, shlex.join(self.command)])


def vllm_max_lora_rank(ranks: Iterable[int]) -> int:
    """The smallest value vLLM accepts that holds every rank."""
    largest = max(ranks, default=VLLM_LORA_RANKS[0])
    for allowed in VLLM_LORA_RANKS:
        if largest <= allowed:
            return allowed
    raise LingualiftError(
        f"An adapter has rank {largest}; vLLM serves ranks up to {VLLM_LORA_RANKS[-1]}, so retrain "
        "it with a smaller r."
    )


def adapter_rank(folder: Path) -> int:
    """The largest LoRA rank of an adapter (``r`` and any per-module ``rank_pattern``)."""
    config = json.loads((folder / "adapter_config.json").read_text("utf-8"))
    ranks = [int(config.get("r") or 0), *map(int, (config.get("rank_pattern") or {}).values())]
    return max(ranks)


def vllm_adapter_problems(folder: Path) -> list[str]:
    """What would stop vLLM from loading a PEFT folder (empty when it is fine)."""
    problems = []
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        return [f"{folder} has no adapter_config.json"]
    if not (folder / "adapter_model.safetensors").is_file():
        problems.append(f"{folder} has no adapter_model.safetensors")
    config: dict[str, Any] = json.loads(config_path.read_text("utf-8"))
    if config.get("peft_type") not in (None, "LORA"):
        problems.append(f"{folder} is a {config.get('peft_type')} adapter; vLLM serves LoRA")
    for key in ("r", "lora_alpha", "target_modules"):
        if not config.get(key):
            problems.append(f"{folder}/adapter_config.json has no {key}")
    if config.get("use_dora"):
        problems.append(f"{folder} is a DoRA adapter, which vLLM does not serve")
    if config.get("bias", "none") != "none":
        problems.append(f"{folder} trains biases (bias={config['bias']!r}), which vLLM ignores")
    return problems


def _base_signature(base: str) -> dict[str, Any] | None:
    """Shape facts of a local model folder, read from its config.json (None for a hub id)."""
    path = Path(base) / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text("utf-8"))
    text = config.get("text_config") or config
    return {
        "model_type": text.get("model_type", config.get("model_type")),
        "num_layers": text.get("num_hidden_layers"),
        "hidden_size": text.get("hidden_size"),
        "vocab_size": text.get("vocab_size"),
    }


def _lora_module(lang: str, path: Path, base_name: str) -> str:
    if "=" in str(path) or "," in str(path):
        return json.dumps({"name": lang, "path": str(path), "base_model_name": base_name})
    return f"{lang}={path}"


def vllm_plan(
    model: str,
    store: AdapterStore,
    *,
    langs: Sequence[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    served_model_name: str | None = None,
    extra_args: Sequence[str] = (),
) -> VllmPlan:
    """The ``vllm serve`` command for ``model`` with each language's current adapter."""
    from lingualift.models import resolve_model_path

    base = resolve_model_path(model)
    if Path(base).is_dir():
        base = str(Path(base).resolve())
    served = served_model_name or model
    signature = _base_signature(base)
    codes = (
        list(langs)
        if langs
        else [lang for lang in store.languages() if store.current_version(lang) is not None]
    )
    adapters: dict[str, Path] = {}
    ranks = []
    for lang in codes:
        version = store.get(lang)
        store.check_weights(version.lang, version.version)
        problems = vllm_adapter_problems(version.path)
        if problems:
            raise LingualiftError(f"vLLM cannot serve {version.name}: {problems[0]}.")
        if signature is not None:
            check_base_model(version.card, signature, version.name)
        adapters[version.lang] = version.path.resolve()
        ranks.append(adapter_rank(version.path))
    command = ["vllm", "serve", base, "--host", host, "--port", str(port)]
    command += ["--served-model-name", served]
    notes = [SHIFCON_NOTE]
    rank = None
    if adapters:
        rank = vllm_max_lora_rank(ranks)
        command += ["--enable-lora", "--max-loras", str(len(adapters) + SPARE_LORAS)]
        command += ["--max-lora-rank", str(rank), "--lora-modules"]
        command += [_lora_module(lang, path, served) for lang, path in adapters.items()]
    else:
        notes.append(
            f"no current adapter in {store.root}: vLLM will serve the base model only (and "
            "cannot load adapters later; start it once a version exists)"
        )
    if adapters and host not in ("127.0.0.1", "localhost", "::1"):
        notes.append(
            f"vLLM's runtime LoRA routes load any folder a client names: keep vLLM on "
            f"127.0.0.1 behind the routing front rather than on {host}"
        )
    command += list(extra_args)
    return VllmPlan(command, base, adapters, rank, notes)


def vllm_installed() -> bool:
    """Whether the ``vllm`` Python package can be imported here (lm-eval's vllm model needs it)."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def vllm_executable() -> str | None:
    """The ``vllm`` command: on PATH, or beside this Python (a virtual environment that is
    not activated); None when vLLM is not installed."""
    found = shutil.which("vllm")
    if found:
        return found
    beside = Path(sys.executable).parent / "vllm"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


class VllmProcess:
    """``vllm serve`` as a child process: its own process group (a Ctrl-C reaches the front,
    which stops vLLM after it), the plan's environment, the API key as ``VLLM_API_KEY``."""

    def __init__(self, plan: VllmPlan, executable: str, api_key: str | None = None) -> None:
        self.plan = plan
        self.command = [executable, *plan.command[1:]]
        self.env = {**os.environ, **plan.env, **({"VLLM_API_KEY": api_key} if api_key else {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> VllmProcess:
        self.process = subprocess.Popen(self.command, env=self.env, start_new_session=True)
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def wait(self) -> int:
        """Block until vLLM exits; its exit code (128 + N when signal N ended it)."""
        assert self.process is not None
        return _exit_code(self.process.wait())

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace_s: float = 30.0) -> int:
        """SIGTERM to vLLM's process group (its engine processes too), SIGKILL after
        ``grace_s``; its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait()
        return _exit_code(self.process.returncode)

    def _signal(self, sig: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):  # it exited in the meantime
            os.killpg(self.process.pid, sig)


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode
