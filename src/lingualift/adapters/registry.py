"""The adapters one base model carries: loaded with fit checks, followed in the store, batched.

Both :class:`~lingualift.adapters.Router` (``lingualift generate``, the Python
API) and the server (:mod:`lingualift.serving.engine`) hold their adapters in
an :class:`AdapterRegistry`, so every path does the same things:

* **Fit checks before PEFT touches the model.** A version is refused in one
  sentence when its weights are damaged, when its card names another base model
  (:func:`~lingualift.adapters.store.check_base_model`), or when its LoRA
  matrices do not match the model's layers (:func:`check_adapter_fits`, read
  from the safetensors header: PEFT injects an adapter's layers before it loads
  the weights, so a shape error found by PEFT would leave layers behind).
* **Versions side by side.** Each version is loaded into the one PEFT model
  under its own name (``sw@v3``), so a promote or rollback never touches the
  weights a running request uses: :meth:`~AdapterRegistry.poll` notices that a
  language's history changed (:class:`~lingualift.adapters.watch.StoreWatch`:
  mtime, size and inode of ``history.jsonl`` and ``current``) and loads the new
  current version next to the old one; new requests
  :meth:`~AdapterRegistry.acquire` it, requests already running hold the old
  one until they :meth:`~AdapterRegistry.release` it, and
  :meth:`~AdapterRegistry.collect` deletes a replaced version once nobody holds
  it. A version that cannot be loaded is reported once (log and ``on_event``)
  and the previous one keeps serving (a ``strict`` registry refuses to start
  without every adapter it was asked for).
* **Mixed-language batches.** :meth:`~AdapterRegistry.batch` runs a batch with
  each row on its own adapter: adapters off or one active adapter when every
  row agrees (single-language traffic pays nothing for routing), stacked LoRA
  (:class:`~lingualift.adapters.multilora.StackedLora`, one gathered matmul per
  layer) when the rows mix plain LoRA adapters, PEFT's ``adapter_names``
  otherwise.

All methods but :meth:`~AdapterRegistry.snapshot`,
:meth:`~AdapterRegistry.served_languages` and
:meth:`~AdapterRegistry.loaded_names` must run on the thread that owns the
model (the server's engine worker).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lingualift.adapters.multilora import BASE, StackedLora
from lingualift.adapters.store import (
    CARD_NAME,
    PEFT_FILES,
    AdapterStore,
    base_model_signature,
    check_base_model,
    weights_problem,
)
from lingualift.adapters.watch import StoreWatch
from lingualift.errors import LingualiftError, first_line
from lingualift.languages import normalize_language

logger = logging.getLogger(__name__)

ReloadEvent = Callable[[str, str, "str | None"], None]
"""``on_event(kind, lang, detail)``: kind is 'loaded', 'failed' or 'deleted'."""


@dataclasses.dataclass(eq=False)
class LoadedAdapter:
    """One adapter version living in the PEFT model."""

    lang: str
    label: str
    """What answers and logs name it by: 'sw/v3' (a store version) or the folder it came from."""
    peft_name: str
    """Its adapter name inside the PEFT model: 'sw@v3', or 'sw@folder' for a pinned folder."""
    path: Path
    version: int | None = None
    """The store version (None for a folder given directly)."""
    users: int = 0
    """Requests running on it right now."""
    retired: bool = False
    """Replaced by a newer current version; deleted once ``users`` reaches 0."""


class AdapterRegistry:
    """The current adapter of each language, loaded into one PEFT model (module docstring)."""

    def __init__(
        self,
        model: Any,
        store: AdapterStore | None = None,
        *,
        langs: Sequence[str] | None = None,
        folders: Mapping[str, str | Path] | None = None,
        spec: str | None = None,
        strict: bool = False,
        on_event: ReloadEvent | None = None,
    ) -> None:
        """Load each language's adapter.

        From ``store``: the current version of each language in ``langs`` (default: every
        language of the store, including languages that get a first version later, see
        :meth:`poll`). ``folders`` (language -> PEFT folder) are loaded once and pinned: the
        store does not replace them. ``spec`` is the model's spec, for the base-model check.
        A language whose adapter cannot be loaded is reported and left out (see
        :attr:`failures`), or with ``strict`` raises its one-sentence error; later
        :meth:`poll` s always report and keep the previous version serving.
        """
        self.model = model
        """The model; a PEFT model once an adapter is loaded (the first load wraps it)."""
        self.store = store
        self.langs = [normalize_language(x) for x in langs] if langs else None
        self.signature = base_model_signature(model, spec)
        self._raise_failures = strict
        self.on_event = on_event
        self.failures: dict[str, str] = {}
        # The version each failure is about: a store version never changes once written, so a
        # refused one is reported once, however many times the store's files move (a promote
        # appends the history, then rewrites `current`: a poll may fall between the two).
        self._refused: dict[str, int] = {}
        """Language -> why its newest current version was refused (kept until one loads)."""
        self._lock = threading.Lock()  # guards the dicts read by other threads
        self._current: dict[str, LoadedAdapter] = {}
        self._retired: list[LoadedAdapter] = []
        self._watch = StoreWatch(store) if store is not None else None
        self._pinned: set[str] = set()
        self._stacked: StackedLora | None = None
        self._fallback_logged: str | None = None
        for lang, folder in (folders or {}).items():
            code = normalize_language(lang)
            self._pinned.add(code)
            try:
                self._install(code, self._load_folder(code, Path(folder)))
            except LingualiftError as exc:
                self._fail(code, str(folder), str(exc))
        self.poll()
        self._raise_failures = False

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

    # -- the model's thread -------------------------------------------------------------

    def current(self, lang: str | None) -> LoadedAdapter | None:
        """The adapter new requests in ``lang`` get (None: the base model), without pinning it."""
        return self._current.get(lang) if lang else None

    def acquire(self, lang: str | None) -> LoadedAdapter | None:
        """Pin the current version of ``lang`` for a request (None: the base model)."""
        adapter = self.current(lang)
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
        if self._watch is None:
            return False
        for lang in self._watch.changed(self._languages_to_watch()):
            changed |= self._sync(lang)
        return changed

    @contextlib.contextmanager
    def batch(self, adapters: Sequence[LoadedAdapter | None]) -> Iterator[dict[str, Any]]:
        """Run a batch with row ``i`` on ``adapters[i]`` (None: the base model) while open.

        Yields the extra keyword arguments the forward (or ``generate``) call needs: PEFT's
        ``adapter_names`` when the rows mix adapters that cannot be stacked, else nothing.
        """
        names = [a.peft_name if a is not None else BASE for a in adapters]
        model = self.model
        unique = set(names)
        if not hasattr(model, "peft_config"):  # nothing loaded yet: every row is on the base
            yield {}
        elif unique == {BASE}:
            with model.disable_adapter():
                yield {}
        elif len(unique) == 1:
            model.set_adapter(names[0])
            yield {}
        elif self._stacked_ready():
            with self._stacked.apply(names):  # type: ignore[union-attr]
                yield {}
        else:
            yield {"adapter_names": names}

    def rebatch(self, adapters: Sequence[LoadedAdapter | None]) -> dict[str, Any] | None:
        """Inside a :meth:`batch` that took the stacked path, switch it to these rows (any mix,
        one adapter or none included) without leaving it: the extra forward kwargs, or None
        when that batch cannot (another path, or the loaded adapters changed)."""
        stacked = self._stacked
        if stacked is None or stacked.model is not self.model:
            return None
        names = [a.peft_name if a is not None else BASE for a in adapters]
        return {} if stacked.regather(names) else None

    # -- internals ----------------------------------------------------------------------

    def _stacked_ready(self) -> bool:
        if self._stacked is None or self._stacked.model is not self.model:
            self._stacked = StackedLora(self.model)  # the first load wrapped the model
        ready = self._stacked.ready()
        reason = self._stacked.reason
        if not ready and reason != self._fallback_logged:  # once per set of adapters
            logger.warning(
                "mixed-adapter batches use PEFT's per-adapter path, not stacked LoRA: %s", reason
            )
        self._fallback_logged = reason
        return ready

    def _languages_to_watch(self) -> list[str]:
        if self.store is None:
            return []
        langs = self.langs if self.langs is not None else self.store.languages()
        return [lang for lang in langs if lang not in self._pinned]

    def _sync(self, lang: str) -> bool:
        assert self.store is not None
        loaded = self._current.get(lang)
        label = lang
        try:
            version = self.store.current_version(lang)
            if version is None or (loaded is not None and loaded.version == version):
                return False
            if self._refused.get(lang) == version:
                return False
            label = f"{lang}/v{version}"
            adapter = self._load_version(lang, version)
        except LingualiftError as exc:
            if label != lang:
                self._refused[lang] = version
            self._fail(lang, label, str(exc))
            return False
        self._install(lang, adapter)
        return True

    def _install(self, lang: str, adapter: LoadedAdapter) -> None:
        loaded = self._current.get(lang)
        with self._lock:
            self._current[lang] = adapter
            if loaded is not None:
                loaded.retired = True
                self._retired.append(loaded)
        self.failures.pop(lang, None)
        self._refused.pop(lang, None)
        was = f" (was {loaded.label})" if loaded else ""
        logger.info("serving %s%s", adapter.label, was)
        self._emit("loaded", lang, adapter.label)

    def _fail(self, lang: str, label: str, message: str) -> None:
        if self._raise_failures:
            raise LingualiftError(message if lang in message else f"{lang}: {message}")
        self.failures[lang] = message
        still = self._current.get(lang)
        keeps = f"; {still.label} keeps serving" if still else ""
        logger.error("cannot load %s: %s%s", label, message, keeps)
        self._emit("failed", lang, message)

    def _emit(self, kind: str, lang: str, detail: str | None) -> None:
        if self.on_event is not None:
            self.on_event(kind, lang, detail)

    def _load_version(self, lang: str, version: int) -> LoadedAdapter:
        """Load one store version (or take it back while it is still in memory)."""
        assert self.store is not None
        for adapter in self._retired:  # a rollback to a version that is still loaded
            if adapter.lang == lang and adapter.version == version:
                with self._lock:
                    self._retired.remove(adapter)
                adapter.retired = False
                return adapter
        refuse_pickled_adapter(self.store.root / lang / f"v{version}")
        path = self.store.check_weights(lang, version)
        adapter = LoadedAdapter(lang, f"{lang}/v{version}", f"{lang}@v{version}", path, version)
        self._inject(adapter, self.store.card(lang, version))
        return adapter

    def _load_folder(self, lang: str, folder: Path) -> LoadedAdapter:
        """Load a PEFT folder given directly (its card, when it has one, names its base)."""
        refuse_pickled_adapter(folder)
        missing = [name for name in PEFT_FILES if not (folder / name).is_file()]
        if missing:
            raise LingualiftError(
                f"{folder} is not a PEFT adapter folder (no {', '.join(missing)}); give the "
                "folder 'save_pretrained' wrote."
            )
        problem = weights_problem(folder / PEFT_FILES[1])
        if problem:
            raise LingualiftError(
                f"{folder / PEFT_FILES[1]} is damaged ({problem}); save or train it again."
            )
        card: dict[str, Any] = {}
        if (folder / CARD_NAME).is_file():
            try:
                card = json.loads((folder / CARD_NAME).read_text("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise LingualiftError(
                    f"{folder / CARD_NAME} is corrupt; remove it or save the adapter again."
                ) from None
        adapter = LoadedAdapter(lang, str(folder), f"{lang}@folder", folder)
        self._inject(adapter, card)
        return adapter

    def _inject(self, adapter: LoadedAdapter, card: dict[str, Any]) -> None:
        """Check that the adapter fits, then load it into the PEFT model under its name."""
        check_base_model(card, self.signature, adapter.label)
        check_adapter_fits(adapter.path, self.model, adapter.label)
        if adapter.peft_name in self.loaded_names():  # kept in memory as PEFT's last adapter
            return
        try:
            if hasattr(self.model, "peft_config"):
                self.model.load_adapter(str(adapter.path), adapter_name=adapter.peft_name)
            else:
                from peft import PeftModel

                self.model = PeftModel.from_pretrained(
                    self.model, str(adapter.path), adapter_name=adapter.peft_name
                )
        except Exception as exc:  # PEFT, torch and safetensors raise many types here
            if adapter.peft_name in self.loaded_names() and len(self.loaded_names()) > 1:
                self.model.delete_adapter(adapter.peft_name)  # half-injected layers
            raise LingualiftError(
                f"Adapter {adapter.label} does not load ({first_line(exc, 160)}); promote "
                "another version or retrain it."
            ) from None
        self.model.eval()


PICKLED_ADAPTER_WEIGHTS = ("adapter_model*.bin", "*.pt", "*.pth", "*.pkl")
"""Adapter weight files that are Python pickles (loading one can run code)."""


def refuse_pickled_adapter(folder: str | Path) -> None:
    """Refuse, in one sentence, a PEFT folder whose weights exist only as pickles.

    PEFT falls back to ``adapter_model.bin`` (``torch.load``) when no safetensors file is
    there; lingualift loads safetensors only, everywhere an adapter is loaded (evaluation,
    the registry behind ``serve`` and ``generate``).
    """
    folder = Path(folder)
    if not folder.is_dir() or (folder / PEFT_FILES[1]).is_file():
        return
    pickled = sorted(p.name for pattern in PICKLED_ADAPTER_WEIGHTS for p in folder.glob(pattern))
    if pickled:
        raise LingualiftError(
            f"{folder} holds only pickled adapter weights ({pickled[0]}), which can run code "
            "when loaded, and lingualift loads safetensors only; re-save the adapter with "
            "save_pretrained(folder, safe_serialization=True) where you trust it."
        )


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
        with safe_open(str(path / PEFT_FILES[1]), framework="pt") as handle:
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
