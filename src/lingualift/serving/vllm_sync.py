"""Live adapter updates for a running vLLM: promote and rollback reach it without a restart.

vLLM names each LoRA adapter it serves (``lora_name``, what requests put in
``model``) and, when it runs with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``
(:data:`~lingualift.serving.vllm.RUNTIME_LORA_ENV`; the command
:func:`~lingualift.serving.vllm.vllm_plan` builds sets it), loads and unloads adapters while it serves:

- ``POST /v1/load_lora_adapter`` ``{"lora_name", "lora_path"}``: 200 and a
  plain-text success line; 400 when the name is already loaded (newer vLLM
  accepts ``load_inplace`` there) or the folder does not load (404 when vLLM
  finds no adapter in it), with an OpenAI-shaped error body;
- ``POST /v1/unload_lora_adapter`` ``{"lora_name"}``: 200, or 404 for a name it
  does not hold;
- ``GET /v1/models``: the base model and one card per adapter, whose ``root``
  is the path it was loaded from and ``parent`` the base model.

Without the variable the two routes do not exist (404).

**One name per version.** :class:`VllmAdapterSync` loads store version ``sw/v3``
under its own name, ``sw@v3`` (as the own server names PEFT adapters), and the
routing front sends requests for ``sw`` (or ``auto`` identified as Swahili) to
that name. Swapping the path behind a fixed name ``sw`` cannot be done safely:
unloading then loading it leaves a moment in which requests for ``sw`` get a 404,
and a load that fails leaves no ``sw`` at all; ``load_inplace`` (newer vLLM only)
replaces the weights behind the same adapter id, so requests decoding on it would
finish on the other version's weights. With a name per version the new version is
loaded next to the old one; only once vLLM has accepted it does the front route
the language to it; the old name is unloaded when no request the front sent to it
is still open (or after ``drain_timeout_s``, the front's upstream time-out, as a
backstop). vLLM's unload only drops the name from its table: a request already
inside its engine holds its adapter and finishes on it.

**What vLLM already serves** is read from its ``/v1/models`` at every pass, so
the sync recognises versions loaded by vLLM's start-up command (``--lora-modules
sw=<store>/sw/v1``: plain language names, matched by their path in the store)
or by an earlier front process, and notices when vLLM restarted without them.
Which languages may have a new current version is the store's
:class:`~lingualift.adapters.watch.StoreWatch`, as for the own server.

**Failures.** A load that fails (vLLM unreachable, busy, or refusing the folder)
keeps the previous version serving, is logged with the reason, reported to
``on_event('failed', ...)``, and retried with exponential backoff (``retry_min_s``
doubling up to ``retry_max_s``). A version lingualift can tell vLLM will not
serve (damaged weights, DoRA, trained biases, a rank above vLLM's
``--max-lora-rank``) is reported once and not retried: a store version never
changes. Every load, unload and failure is logged.

All methods run on the event loop of the front that owns the sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from lingualift.adapters.store import AdapterStore
from lingualift.adapters.watch import StoreWatch
from lingualift.errors import LingualiftError, first_line
from lingualift.languages import normalize_language
from lingualift.serving.vllm import RUNTIME_LORA_ENV, adapter_rank, vllm_adapter_problems

logger = logging.getLogger(__name__)

LOAD_LORA = "/v1/load_lora_adapter"
UNLOAD_LORA = "/v1/unload_lora_adapter"
MODELS = "/v1/models"

_VERSIONED = re.compile(r"^(?P<lang>[^@/\s]+)@v(?P<version>\d+)$")

SyncEvent = Callable[[str, str, "str | None"], None]
"""``on_event(kind, lang, detail)``: 'loaded', 'failed' or 'deleted', as the registry reports."""


def vllm_lora_name(lang: str, version: int) -> str:
    """The name a store version is loaded under in vLLM: ``sw@v3``."""
    return f"{lang}@v{version}"


@dataclasses.dataclass(eq=False)
class VllmAdapter:
    """One adapter vLLM holds for a language."""

    lang: str
    name: str
    """vLLM's ``lora_name``: ``sw@v3``, or ``sw`` as vLLM's start-up command names it."""
    version: int | None
    """The store version (None when vLLM holds it under a name and path the store does not
    explain)."""
    users: int = 0
    """Requests the front sent to it that have not ended."""
    retired_at: float | None = None
    """When a newer version replaced it (monotonic seconds); None while it is current."""

    @property
    def label(self) -> str:
        """What answers and the traffic log name it by: ``sw/v3`` (or vLLM's name)."""
        return f"{self.lang}/v{self.version}" if self.version is not None else self.name


@dataclasses.dataclass
class _Retry:
    version: int
    attempts: int
    due: float


class VllmAdapterSync:
    """Keeps a running vLLM serving each language's current store version (module docstring)."""

    def __init__(
        self,
        upstream: str,
        store: AdapterStore,
        *,
        langs: Sequence[str] | None = None,
        api_key: str | None = None,
        max_lora_rank: int | None = None,
        retry_min_s: float = 1.0,
        retry_max_s: float = 60.0,
        drain_timeout_s: float = 600.0,
        timeout_s: float = 120.0,
        on_event: SyncEvent | None = None,
    ) -> None:
        """``upstream``: vLLM's URL; ``langs``: the languages to follow (default every language
        of the store, including ones that get a first version later); ``api_key``: what vLLM
        was started with (``VLLM_API_KEY``); ``max_lora_rank``: vLLM's ``--max-lora-rank`` when
        known (a version above it is refused before vLLM is asked)."""
        self.upstream = upstream.rstrip("/")
        self.store = store
        self.langs = [normalize_language(x) for x in langs] if langs else None
        self.max_lora_rank = max_lora_rank
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.drain_timeout_s = drain_timeout_s
        self.timeout_s = timeout_s
        self.on_event = on_event
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.client: httpx.AsyncClient | None = None
        self.failures: dict[str, str] = {}
        """Language -> why its current store version is not served (until it is)."""
        self._watch = StoreWatch(store)
        self._wanted: dict[str, int] = {}
        self._serving: dict[str, VllmAdapter] = {}
        self._retired: list[VllmAdapter] = []
        self._retry: dict[str, _Retry] = {}
        self._refused: dict[str, int] = {}
        self._reachable: bool | None = None

    # -- the front's side -----------------------------------------------------------------

    def current(self, lang: str | None) -> VllmAdapter | None:
        """The adapter new requests in ``lang`` go to (None: the base model)."""
        return self._serving.get(lang) if lang else None

    def acquire(self, lang: str | None) -> VllmAdapter | None:
        """:meth:`current`, held until :meth:`release` so it is not unloaded under the request."""
        adapter = self.current(lang)
        if adapter is not None:
            adapter.users += 1
        return adapter

    def release(self, adapter: VllmAdapter | None) -> None:
        if adapter is not None and adapter.users > 0:
            adapter.users -= 1

    def snapshot(self) -> dict[str, str]:
        """Language -> label of the version new requests get (``{'sw': 'sw/v3'}``)."""
        return {lang: a.label for lang, a in sorted(self._serving.items())}

    def client_models(self, entries: list[Any]) -> list[Any]:
        """vLLM's model cards as clients of the front see them: each current adapter under its
        language's id (``sw``, its vLLM name and version beside), older versions not listed."""
        current = {a.name: a for a in self._serving.values()}
        out = []
        for entry in entries:
            name = entry.get("id") if isinstance(entry, dict) else None
            adapter = current.get(name) if isinstance(name, str) else None
            if adapter is not None:
                out.append({**entry, "id": adapter.lang, "lingualift": _card_note(adapter)})
            elif not (isinstance(entry, dict) and self._identify(entry) is not None):
                out.append(entry)  # the base model, or adapters the sync does not manage
        return out

    # -- the sync -------------------------------------------------------------------------

    async def open(self) -> None:
        if self.client is None:
            self.client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s, connect=5.0))

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def run(self, interval_s: float) -> None:
        """Sync every ``interval_s`` seconds until cancelled (a pass never raises)."""
        await self.open()
        try:
            while True:
                try:
                    await self.sync()
                except Exception:  # a bug must not stop live updates for good; it is logged
                    logger.exception("the vLLM adapter sync failed; trying again")
                await asyncio.sleep(interval_s)
        finally:
            await self.aclose()

    async def sync(self) -> bool:
        """One pass: read the store where it changed, read what vLLM holds, load each current
        version it lacks, unload replaced versions nobody uses. True when routing changed."""
        await self.open()
        await asyncio.to_thread(self._read_store)
        loaded = await self._loaded()
        if loaded is None:
            return False
        changed = self._adopt(loaded)
        for lang, version in sorted(self._wanted.items()):
            serving = self._serving.get(lang)
            if serving is not None and serving.version == version:
                continue
            if self._refused.get(lang) == version:
                continue
            retry = self._retry.get(lang)
            if retry is not None and retry.version == version and time.monotonic() < retry.due:
                continue
            changed |= await self._load(lang, version)
        await self._unload_drained()
        return changed

    def _languages(self) -> list[str]:
        return self.langs if self.langs is not None else self.store.languages()

    def _read_store(self) -> None:
        """The current version of each language whose history or pointer changed."""
        for lang in self._watch.changed(self._languages()):
            try:
                version = self.store.current_version(lang)
            except LingualiftError as exc:  # reported once: the stamp is kept until files move
                logger.error("cannot read the current version of %s: %s", lang, exc)
                continue
            if version is None:
                self._wanted.pop(lang, None)
            else:
                self._wanted[lang] = version

    async def _loaded(self) -> dict[str, tuple[str, int | None]] | None:
        """vLLM's adapters of the languages (name -> (lang, version)), None when it does not
        answer."""
        assert self.client is not None
        try:
            response = await self.client.get(f"{self.upstream}{MODELS}", headers=self.headers)
            response.raise_for_status()
            entries = response.json().get("data", [])
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            if self._reachable is not False:
                logger.warning(
                    "vLLM at %s does not answer (%s); live adapter updates wait for it",
                    self.upstream,
                    f"{type(exc).__name__}: {first_line(exc, 120)}",
                )
            self._reachable = False
            return None
        if self._reachable is False:
            logger.info("vLLM at %s answers again", self.upstream)
        self._reachable = True
        loaded = {}
        for entry in entries:
            found = self._identify(entry) if isinstance(entry, dict) else None
            if found is not None:
                loaded[str(entry["id"])] = found
        return loaded

    def _identify(self, entry: dict[str, Any]) -> tuple[str, int | None] | None:
        """(lang, version) of an adapter card: by the path it was loaded from when that is a
        version folder of the store, else by a ``sw@v3`` or ``sw`` name; None for the base
        model and for adapters that are not a language's."""
        name = entry.get("id")
        if not isinstance(name, str) or entry.get("parent") is None:
            return None  # vLLM lists the base model(s) without a parent
        root = entry.get("root")
        if isinstance(root, str) and root:
            with contextlib.suppress(ValueError, LingualiftError):  # not a folder of the store
                lang, folder = Path(root).resolve().relative_to(self.store.root.resolve()).parts
                match = re.fullmatch(r"v(\d+)", folder)
                if match:
                    return normalize_language(lang), int(match.group(1))
        versioned = _VERSIONED.match(name)
        with contextlib.suppress(LingualiftError):  # not a language's name
            if versioned:
                return normalize_language(versioned["lang"]), int(versioned["version"])
            if normalize_language(name) == name:
                return name, None
        return None

    def _adopt(self, loaded: dict[str, tuple[str, int | None]]) -> bool:
        """Match routing to what vLLM holds; True when it changed.

        Names vLLM lost are forgotten (it restarted, or someone unloaded them); a rollback to
        a version it still holds routes back to it; a language without a route gets the one
        vLLM holds (its current version, else its newest), so a version that is still loading,
        or fails to, leaves the previous one serving; other names of a followed language are
        retired, to be unloaded once drained.
        """
        changed = False
        for lang, adapter in list(self._serving.items()):
            if adapter.name not in loaded:
                logger.warning("vLLM no longer serves %s (%s)", adapter.label, adapter.name)
                del self._serving[lang]
                changed = True
        self._retired = [a for a in self._retired if a.name in loaded]
        for lang, wanted in self._wanted.items():
            serving = self._serving.get(lang)
            back = next((a for a in self._retired if a.lang == lang and a.version == wanted), None)
            if back is not None and (serving is None or serving.version != wanted):
                self._retired.remove(back)
                back.retired_at = None
                self._install(back)
                changed = True
        known = {a.name for a in (*self._serving.values(), *self._retired)}
        unknown: dict[str, list[VllmAdapter]] = {}
        for name, (lang, version) in sorted(loaded.items()):
            if name not in known:
                unknown.setdefault(lang, []).append(VllmAdapter(lang, name, version))
        followed = set(self._languages())
        for lang, found in unknown.items():
            wanted = self._wanted.get(lang)
            serving = self._serving.get(lang)
            best = next((a for a in found if a.version == wanted), None)
            if serving is None and best is None:
                best = max(found, key=lambda a: -1 if a.version is None else a.version)
            if best is not None and (serving is None or serving.version != wanted):
                self._install(best)
                found.remove(best)
                changed = True
            if lang in followed:
                for stray in found:
                    self._retire(stray)
        return changed

    def _install(self, adapter: VllmAdapter) -> None:
        previous = self._serving.get(adapter.lang)
        self._serving[adapter.lang] = adapter
        self._retry.pop(adapter.lang, None)
        self._refused.pop(adapter.lang, None)
        self.failures.pop(adapter.lang, None)
        if previous is not None and previous is not adapter:
            self._retire(previous)
        was = f" (was {previous.label})" if previous is not None else ""
        logger.info("vLLM serves %s as %s%s", adapter.label, adapter.name, was)
        self._emit("loaded", adapter.lang, adapter.label)

    def _retire(self, adapter: VllmAdapter) -> None:
        adapter.retired_at = time.monotonic()
        self._retired.append(adapter)
        logger.info("%s (%s) unloads once its requests end", adapter.label, adapter.name)

    def _refuse(self, lang: str, version: int, message: str) -> None:
        self._refused[lang] = version
        self._report(lang, f"{lang}/v{version}", message, retry_in=None)

    async def _load(self, lang: str, version: int) -> bool:
        """Load one store version into vLLM; True when it serves the language from now on."""
        try:
            path = self.store.check_weights(lang, version).resolve()
        except LingualiftError as exc:
            self._refuse(lang, version, str(exc))
            return False
        problems = vllm_adapter_problems(path)
        if problems:
            self._refuse(lang, version, f"vLLM cannot serve it: {problems[0]}")
            return False
        rank = adapter_rank(path)
        if self.max_lora_rank is not None and rank > self.max_lora_rank:
            self._refuse(
                lang,
                version,
                f"its LoRA rank {rank} is above vLLM's --max-lora-rank {self.max_lora_rank}; "
                "restart vLLM with a larger one (lingualift serve engine=vllm sizes it from the "
                "store) or retrain with a smaller r",
            )
            return False
        name = vllm_lora_name(lang, version)
        body = {"lora_name": name, "lora_path": str(path)}
        assert self.client is not None
        try:
            response = await self.client.post(
                f"{self.upstream}{LOAD_LORA}", json=body, headers=self.headers
            )
        except httpx.HTTPError as exc:
            return self._load_failed(lang, version, f"{type(exc).__name__}: {first_line(exc)}")
        if response.status_code == 200 or _already_loaded(response):
            # 'already loaded': a name only ever stands for its own store version.
            self._install(VllmAdapter(lang, name, version))
            return True
        reason = _error_message(response)
        if response.status_code == 404 and reason == "Not Found":  # the route itself is missing
            reason += f" (vLLM serves {LOAD_LORA} only with {RUNTIME_LORA_ENV}=True)"
        return self._load_failed(lang, version, f"HTTP {response.status_code}: {reason}")

    def _load_failed(self, lang: str, version: int, reason: str) -> bool:
        retry = self._retry.get(lang)
        attempts = retry.attempts + 1 if retry is not None and retry.version == version else 1
        delay = min(self.retry_max_s, self.retry_min_s * 2 ** (attempts - 1))
        self._retry[lang] = _Retry(version, attempts, time.monotonic() + delay)
        self._report(lang, f"{lang}/v{version}", f"vLLM did not load it ({reason})", delay)
        return False

    def _report(self, lang: str, label: str, message: str, retry_in: float | None) -> None:
        self.failures[lang] = message
        still = self._serving.get(lang)
        keeps = f"; {still.label} keeps serving" if still else "; the base model answers"
        again = f"; next try in {retry_in:g} s" if retry_in is not None else ""
        logger.error("cannot serve %s: %s%s%s", label, message, keeps, again)
        self._emit("failed", lang, message)

    async def _unload_drained(self) -> None:
        """Unload replaced versions whose requests ended (or that waited ``drain_timeout_s``)."""
        assert self.client is not None
        now = time.monotonic()
        for adapter in list(self._retired):
            waited = now - (adapter.retired_at or now)
            if adapter.users > 0 and waited < self.drain_timeout_s:
                continue
            try:
                response = await self.client.post(
                    f"{self.upstream}{UNLOAD_LORA}",
                    json={"lora_name": adapter.name},
                    headers=self.headers,
                )
            except httpx.HTTPError as exc:
                logger.warning("cannot unload %s yet (%s)", adapter.name, type(exc).__name__)
                continue
            if response.status_code not in (200, 404):  # 404: vLLM no longer holds it
                logger.warning(
                    "vLLM did not unload %s (HTTP %s: %s); trying again",
                    adapter.name,
                    response.status_code,
                    _error_message(response),
                )
                continue
            self._retired.remove(adapter)
            logger.info("unloaded %s (%s) from vLLM", adapter.label, adapter.name)
            self._emit("deleted", adapter.lang, adapter.label)

    def _emit(self, kind: str, lang: str, detail: str | None) -> None:
        if self.on_event is not None:
            self.on_event(kind, lang, detail)


def _card_note(adapter: VllmAdapter) -> dict[str, Any]:
    return {"adapter": adapter.label, "vllm_name": adapter.name}


def _already_loaded(response: httpx.Response) -> bool:
    return response.status_code == 400 and "already been loaded" in _error_message(response)


def _error_message(response: httpx.Response) -> str:
    """vLLM's error message: ``{"error": {"message"}}`` (newer) or ``{"message"}`` (older)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip().split("\n")[0][:200] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("message", "detail"):
            if body.get(key):
                return str(body[key])
    return response.text.strip().split("\n")[0][:200]
