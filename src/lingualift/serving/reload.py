"""The adapters a running server holds, kept in step with the store without a restart.

Every version is loaded into the one PEFT model under its own adapter name
(``sw@v3``), so a promote or rollback never touches the weights a running
request uses:

1. :meth:`AdapterRegistry.poll` notices that a language's history changed
   (the mtime and size of ``history.jsonl`` and ``current``), asks the store
   for the current version and loads it under a new name next to the old one;
2. new requests :meth:`~AdapterRegistry.acquire` the new version; requests
   already running hold the old one until they :meth:`~AdapterRegistry.release`
   it, so they finish on the version they started with;
3. :meth:`~AdapterRegistry.collect` deletes a replaced version from the PEFT
   model once no request holds it.

A version that cannot be loaded (damaged weights, another base model, shapes
PEFT refuses) is reported once (log and ``on_event``) and the previous version
keeps serving. All methods but :meth:`snapshot` and :meth:`served_languages`
must run on the thread that owns the model (the engine's worker).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lingualift.adapters.routing import BASE
from lingualift.adapters.store import AdapterStore, base_model_signature, check_base_model
from lingualift.errors import LingualiftError, first_line
from lingualift.languages import normalize_language

logger = logging.getLogger(__name__)

ReloadEvent = Callable[[str, str, "str | None"], None]
"""``on_event(kind, lang, detail)``: kind is 'loaded', 'failed' or 'deleted'."""


@dataclasses.dataclass(eq=False)
class LoadedAdapter:
    """One adapter version living in the PEFT model."""

    lang: str
    version: int
    path: Path
    users: int = 0
    """Requests running on it right now."""
    retired: bool = False
    """Replaced by a newer current version; deleted once ``users`` reaches 0."""

    @property
    def peft_name(self) -> str:
        return f"{self.lang}@v{self.version}"

    @property
    def label(self) -> str:
        return f"{self.lang}/v{self.version}"


class AdapterRegistry:
    """The current adapter of each served language, loaded into one PEFT model."""

    def __init__(
        self,
        model: Any,
        store: AdapterStore,
        *,
        langs: Sequence[str] | None = None,
        spec: str | None = None,
        on_event: ReloadEvent | None = None,
    ) -> None:
        """Load the current version of each language (``langs``, or every language in the store).

        A language whose current version cannot be loaded is reported and left out; the
        caller decides whether a server without it may start (see :attr:`failures`).
        """
        self.model = model
        self.store = store
        self.langs = [normalize_language(x) for x in langs] if langs else None
        self.signature = base_model_signature(model, spec)
        self.on_event = on_event
        self._lock = threading.Lock()  # guards the dicts read by other threads
        self._current: dict[str, LoadedAdapter] = {}
        self._retired: list[LoadedAdapter] = []
        self._stamps: dict[str, tuple[int, ...]] = {}
        self.failures: dict[str, str] = {}
        """Language -> why its newest current version was refused (kept until one loads)."""
        self.poll()

    # -- read from any thread -----------------------------------------------------------

    def served_languages(self) -> list[str]:
        with self._lock:
            return sorted(self._current)

    def snapshot(self) -> dict[str, str]:
        """Language -> label of the version new requests get (``{'sw': 'sw/v3'}``)."""
        with self._lock:
            return {lang: a.label for lang, a in sorted(self._current.items())}

    def loaded_names(self) -> list[str]:
        """PEFT adapter names in memory (current and retired but still in use)."""
        config = getattr(self.model, "peft_config", None)
        return sorted(config) if isinstance(config, dict) else []

    # -- worker thread ------------------------------------------------------------------

    def acquire(self, lang: str | None) -> LoadedAdapter | None:
        """Pin the current version of ``lang`` for a request (None: the base model)."""
        adapter = self._current.get(lang) if lang else None
        if adapter is not None:
            adapter.users += 1
        return adapter

    def release(self, adapter: LoadedAdapter | None) -> None:
        if adapter is not None:
            adapter.users -= 1

    def collect(self) -> bool:
        """Delete replaced versions nobody uses; True when something was deleted."""
        deleted = False
        for adapter in list(self._retired):
            if adapter.users > 0:
                continue
            names = self.loaded_names()
            if adapter.peft_name in names and len(names) > 1:  # PEFT keeps at least one adapter
                if adapter.peft_name in self.model.active_adapters:  # PEFT warns when it is
                    self.model.set_adapter(next(n for n in names if n != adapter.peft_name))
                self.model.delete_adapter(adapter.peft_name)
                deleted = True
                self._emit("deleted", adapter.lang, adapter.label)
            with self._lock:
                self._retired.remove(adapter)
        return deleted

    def poll(self) -> bool:
        """Load new current versions from the store; True when the served set changed."""
        changed = False
        for lang in self._languages_to_watch():
            stamp = self._stamp(lang)
            if self._stamps.get(lang) == stamp:
                continue
            self._stamps[lang] = stamp
            changed |= self._sync(lang)
        return changed

    # -- internals ----------------------------------------------------------------------

    def _languages_to_watch(self) -> list[str]:
        if self.langs is not None:
            return self.langs
        return self.store.languages()

    def _stamp(self, lang: str) -> tuple[int, ...]:
        stamp: list[int] = []
        for name in ("history.jsonl", "current"):
            try:
                stat = (self.store.root / lang / name).stat()
                stamp += [stat.st_mtime_ns, stat.st_size, stat.st_ino]
            except OSError:
                stamp += [-1, -1, -1]
        return tuple(stamp)

    def _sync(self, lang: str) -> bool:
        loaded = self._current.get(lang)
        try:
            version = self.store.current_version(lang)
        except LingualiftError as exc:
            self._fail(lang, None, str(exc))
            return False
        if version is None or (loaded is not None and loaded.version == version):
            return False
        label = f"{lang}/v{version}"
        try:
            adapter = self._load(lang, version)
        except LingualiftError as exc:
            self._fail(lang, label, str(exc))
            return False
        with self._lock:
            self._current[lang] = adapter
            if loaded is not None:
                loaded.retired = True
                self._retired.append(loaded)
        self.failures.pop(lang, None)
        logger.info("serving %s%s", label, f" (was {loaded.label})" if loaded else "")
        self._emit("loaded", lang, label)
        return True

    def _fail(self, lang: str, label: str | None, message: str) -> None:
        self.failures[lang] = message
        still = self._current.get(lang)
        keeps = f"; {still.label} keeps serving" if still else ""
        logger.error("cannot load %s: %s%s", label or lang, message, keeps)
        self._emit("failed", lang, message)

    def _emit(self, kind: str, lang: str, detail: str | None) -> None:
        if self.on_event is not None:
            self.on_event(kind, lang, detail)

    def _load(self, lang: str, version: int) -> LoadedAdapter:
        """Load one version into the PEFT model (or reuse it while it is still in memory)."""
        for adapter in self._retired:  # a rollback to a version that is still loaded
            if adapter.lang == lang and adapter.version == version:
                with self._lock:
                    self._retired.remove(adapter)
                adapter.retired = False
                return adapter
        label = f"{lang}/v{version}"
        path = self.store.check_weights(lang, version)
        check_base_model(self.store.card(lang, version), self.signature, label)
        check_adapter_fits(path, self.model, label)
        adapter = LoadedAdapter(lang, version, path)
        if adapter.peft_name in self.loaded_names():  # kept in memory as PEFT's last adapter
            return adapter
        try:
            if hasattr(self.model, "peft_config"):
                self.model.load_adapter(str(path), adapter_name=adapter.peft_name)
            else:
                from peft import PeftModel

                self.model = PeftModel.from_pretrained(
                    self.model, str(path), adapter_name=adapter.peft_name
                )
        except Exception as exc:  # PEFT, torch and safetensors raise many types here
            if adapter.peft_name in self.loaded_names() and len(self.loaded_names()) > 1:
                self.model.delete_adapter(adapter.peft_name)  # half-injected layers
            raise LingualiftError(
                f"Adapter {label} does not load ({first_line(exc, 160)}); promote another "
                "version or retrain it."
            ) from None
        self.model.eval()
        return adapter


def check_adapter_fits(path: Path, model: Any, label: str) -> None:
    """Refuse an adapter whose LoRA weights do not match the model's layers.

    Reads only the safetensors header, before PEFT touches the model: PEFT
    injects an adapter's layers before it loads the weights, so a shape error
    found by PEFT leaves layers behind (removable once a PEFT model exists, not
    when the first adapter is the one that fails).
    """
    from safetensors import safe_open

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    modules = dict(base.named_modules())
    try:
        with safe_open(str(path / "adapter_model.safetensors"), framework="pt") as handle:
            shapes = {key: handle.get_slice(key).get_shape() for key in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types
        raise LingualiftError(
            f"Adapter {label} has unreadable weights ({first_line(exc, 120)}); promote another "
            "version or retrain it."
        ) from None
    for key, shape in shapes.items():
        if ".lora_A." not in key and ".lora_B." not in key:
            continue
        module_path = key.removeprefix("base_model.model.").split(".lora_")[0]
        target = modules.get(module_path)
        if target is None:
            raise LingualiftError(
                f"Adapter {label} targets {module_path}, which this base model does not have; "
                "serve it with the base model it was trained on."
            )
        target = getattr(target, "base_layer", target)  # already wrapped by another adapter
        # A linear LoRA stores A as (r, in_features) and B as (out_features, r).
        expected = getattr(target, "in_features" if ".lora_A." in key else "out_features", None)
        actual = shape[1] if ".lora_A." in key else shape[0]
        if expected is not None and actual != expected:
            raise LingualiftError(
                f"Adapter {label} does not fit this base model ({module_path}: {actual} vs "
                f"{expected} features); serve it with the base model it was trained on."
            )


def adapter_names_for(adapters: Sequence[LoadedAdapter | None]) -> list[str]:
    """PEFT adapter names of a batch's rows (``__base__`` for the base model)."""
    return [a.peft_name if a is not None else BASE for a in adapters]
