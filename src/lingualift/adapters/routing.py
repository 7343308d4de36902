"""Per-language routing at inference: one base model, several adapters, mixed batches.

:class:`Router` loads the base model once and each language's current adapter
from the store (or a PEFT folder per language) into an
:class:`~lingualift.adapters.registry.AdapterRegistry`, the same registry the
server uses, so every adapter is checked to fit the model before PEFT loads it.
For every request it picks the adapter from the language the caller gives or,
failing that, from language identification (py3langid: a naive Bayes model
shipped inside the wheel, so it works offline). A batch that mixes languages
runs in one forward pass with each row on its own adapter (stacked LoRA, see
:meth:`~lingualift.adapters.registry.AdapterRegistry.batch`). A language
without an adapter runs on the base model, and the result says so.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lingualift.adapters.registry import AdapterRegistry, LoadedAdapter
from lingualift.adapters.store import PEFT_FILES, AdapterStore
from lingualift.embedded import DEFAULT_MODEL
from lingualift.errors import LingualiftError
from lingualift.langid import LanguageIdentifier, default_identifier
from lingualift.languages import normalize_language
from lingualift.placement import ModelSettings, as_model_settings

if TYPE_CHECKING:
    from lingualift.chat import ChatTemplate

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Route:
    """Which adapter serves one request, and why."""

    lang: str | None
    """Language of the request (given or detected; None if detection was unsure)."""
    adapter: str | None
    """Adapter that serves it, e.g. 'sw/v3'; None means the base model."""
    detected: bool
    """True when the language came from language identification."""
    confidence: float | None = None
    """Language-identification probability (None when the language was given)."""
    note: str | None = None
    """Why the base model was used, when it was."""


@dataclasses.dataclass
class Generation:
    """One generated continuation with its route."""

    prompt: str
    text: str
    route: Route
    new_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "text": self.text,
            "new_tokens": self.new_tokens,
            **dataclasses.asdict(self.route),
        }


class Router:
    """Serve several language adapters on one base model.

    >>> router = Router("embedded:gemma-3-270m", langs=["sw", "fr"])  # doctest: +SKIP
    >>> router.generate(["Habari ya asubuhi", "Bonjour"])  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | ModelSettings | Any = None,
        tokenizer: Any = None,
        *,
        store: AdapterStore | str | Path | None = None,
        langs: Sequence[str] | None = None,
        adapters: dict[str, str | Path] | None = None,
        identifier: LanguageIdentifier | None = None,
        strict: bool = False,
        before_load: Callable[[ModelSettings], Any] | None = None,
    ) -> None:
        """Load the base model and the adapters.

        ``model`` is a model spec (the embedded Gemma 3 270M by default), its
        :class:`~lingualift.placement.ModelSettings` (precision, placement,
        quantization), or a loaded model, with ``tokenizer``. Adapters come from ``adapters``
        (language -> PEFT folder) or else from the store: the current version
        of each language in ``langs`` (default: every language in the store).
        With ``strict`` a request in a language without an adapter is an error
        instead of a base-model fallback. ``before_load(settings)`` runs once the
        adapters are found, before a base model given by spec or settings loads
        (the ``generate`` verb's memory check).
        """
        self.store = store if isinstance(store, AdapterStore) else AdapterStore(store)
        settings = None
        if model is None or isinstance(model, str | ModelSettings):
            settings = as_model_settings(model or DEFAULT_MODEL)
        spec = settings.model if settings is not None else None
        # Adapters are found (and missing ones refused) before the base model takes minutes
        # to load; the registry checks each one against the loaded model.
        folders = {normalize_language(k): Path(v) for k, v in (adapters or {}).items()}
        if adapters is None:
            langs = self._store_languages(langs)
        else:
            langs = []
            for folder in folders.values():
                if not (folder / PEFT_FILES[0]).is_file():
                    raise LingualiftError(
                        f"{folder} is not a PEFT adapter folder (no {PEFT_FILES[0]})."
                    )
        if not langs and not folders:
            raise LingualiftError(
                f"No adapters to route to in {self.store.root}; train one with 'lingualift train' "
                "or pass langs=/adapters=."
            )
        if settings is not None:
            from lingualift.models import load_causal_lm

            if before_load is not None:
                before_load(settings)
            model, tokenizer = load_causal_lm(settings)
        if tokenizer is None:
            raise ValueError("pass the tokenizer together with the model")
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.identifier = identifier or default_identifier()
        self.strict = strict
        self._warned: set[str | None] = set()
        self.registry = AdapterRegistry(
            model,
            self.store if adapters is None else None,
            langs=langs,
            folders=folders,
            spec=spec,
            strict=True,
        )

    def _store_languages(self, langs: Sequence[str] | None) -> list[str]:
        """The languages to load from the store, each checked to have a whole current version."""
        if langs is None:  # every language with a current version
            langs = [x for x in self.store.languages() if self.store.current_version(x)]
        return [self.store.get(lang).lang for lang in langs]  # clear errors for unknown ones

    @property
    def model(self) -> Any:
        """The PEFT model carrying every adapter."""
        return self.registry.model

    @property
    def adapters(self) -> dict[str, str]:
        """Language -> label of its adapter ('sw/v3', or the folder it came from)."""
        return self.registry.snapshot()

    @property
    def languages(self) -> list[str]:
        return self.registry.served_languages()

    def route(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> list[Route]:
        """Pick an adapter for each text (``langs`` entries override detection)."""
        if langs is not None and len(langs) != len(texts):
            raise LingualiftError(
                f"Got {len(langs)} languages for {len(texts)} prompts; give one per prompt or none."
            )
        routes = []
        for i, text in enumerate(texts):
            given = langs[i] if langs is not None else None
            if given:
                lang, confidence, detected = normalize_language(given), None, False
            else:
                found = self.identifier.identify(text)
                lang, confidence, detected = found.lang, found.confidence, True
            routes.append(self._route_for(lang, confidence, detected))
        return routes

    def _route_for(self, lang: str | None, confidence: float | None, detected: bool) -> Route:
        adapter = self.registry.current(lang)
        if adapter is not None:
            return Route(lang, adapter.label, detected, confidence)
        if lang is None:
            note = f"language not identified (p={confidence:.2f}); used the base model"
        else:
            note = (
                f"no adapter for {lang!r} (have {', '.join(self.languages)}); used the base model"
            )
        if self.strict:
            raise LingualiftError(
                note.replace("; used the base model", "") + "; train one or drop --strict."
            )
        if lang not in self._warned:  # once per language, not once per row
            self._warned.add(lang)
            logger.warning(note)
        return Route(lang, None, detected, confidence, note)

    def _loaded(self, routes: Sequence[Route]) -> list[LoadedAdapter | None]:
        """Each routed row's adapter in the registry (None: the base model)."""
        return [self.registry.current(r.lang) if r.adapter is not None else None for r in routes]

    def logits(self, texts: Sequence[str], langs: Sequence[str | None] | None = None):
        """Next-token logits of every position of each text, each row through its route."""
        import torch

        routes = self.route(texts, langs)
        batch = self.tokenizer(list(texts), return_tensors="pt", padding=True)
        batch = {k: v.to(self.model.device) for k, v in batch.items()}
        with torch.no_grad(), self.registry.batch(self._loaded(routes)) as extra:
            return self.model(**batch, **extra).logits

    def generate(
        self,
        prompts: Sequence[str],
        langs: Sequence[str | None] | None = None,
        max_new_tokens: int = 64,
        batch_size: int = 8,
        chat: bool = False,
        chat_template: ChatTemplate | None = None,
        **generate_kwargs: Any,
    ) -> list[Generation]:
        """Generate for each prompt with its language's adapter; batches may mix languages.

        With ``chat``, each prompt is a user turn of ``chat_template`` (default: the
        tokenizer's own, else lingualift's default), and the answer ends where its turn ends.
        """
        from lingualift.chat import resolve_chat_template
        from lingualift.generation import generate_texts

        if not prompts:
            raise LingualiftError("No prompts given; pass at least one.")
        routes = self.route(prompts, langs)
        rows = self._loaded(routes)
        texts = list(prompts)
        if chat:
            template = chat_template or resolve_chat_template(self.tokenizer)
            texts = template.user_prompts(self.tokenizer, prompts)
            stop = [*generate_kwargs.pop("stop", ()), *template.stop]
            if stop:
                generate_kwargs["stop"] = stop
        completions = generate_texts(
            self.model,
            self.tokenizer,
            texts,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            context=lambda batch: self.registry.batch([rows[i] for i in batch]),
            add_special_tokens=not chat,  # a chat template writes the special tokens itself
            **generate_kwargs,
        )
        return [
            Generation(prompt=p, text=c.text, route=r, new_tokens=c.new_tokens)
            for p, c, r in zip(prompts, completions, routes, strict=True)
        ]
