"""Per-language routing at inference: one base model, several adapters, mixed batches.

:class:`Router` loads the base model once and attaches each language's
current adapter from the store under the language code as its PEFT adapter
name. For every request it picks the adapter from the language the caller
gives or, failing that, from language identification (py3langid: a naive
Bayes model shipped inside the wheel, so it works offline). A batch that
mixes languages runs in one forward pass with PEFT's ``adapter_names``: each
LoRA layer applies every row's own adapter. A language without an adapter
runs on the base model (PEFT's ``__base__``), and the result says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lingualift.adapters.store import (
    CARD_NAME,
    AdapterStore,
    base_model_signature,
    check_base_model,
)
from lingualift.errors import LingualiftError, first_line
from lingualift.langid import LanguageIdentifier, default_identifier
from lingualift.languages import normalize_language

logger = logging.getLogger(__name__)

BASE = "__base__"  # PEFT's name for "no adapter on this row"


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
        model: str | Any = None,
        tokenizer: Any = None,
        *,
        store: AdapterStore | str | Path | None = None,
        langs: Sequence[str] | None = None,
        adapters: dict[str, str | Path] | None = None,
        identifier: LanguageIdentifier | None = None,
        strict: bool = False,
    ) -> None:
        """Load the base model and the adapters.

        ``model`` is a model spec (the embedded Gemma 3 270M by default) or a
        loaded model, with ``tokenizer``. Adapters come from ``adapters``
        (language -> PEFT folder) or else from the store: the current version
        of each language in ``langs`` (default: every language in the store).
        With ``strict`` a request in a language without an adapter is an error
        instead of a base-model fallback.
        """
        from peft import PeftModel

        self.store = store if isinstance(store, AdapterStore) else AdapterStore(store)
        self.spec = model if isinstance(model, str) or model is None else None
        # Adapters are found (and bad ones refused) before the base model takes minutes to load.
        folders = self._adapter_folders(langs, adapters)
        if not folders:
            raise LingualiftError(
                f"No adapters to route to in {self.store.root}; train one with 'lingualift train' "
                "or pass langs=/adapters=."
            )
        if model is None or isinstance(model, str):
            from lingualift.models import DEFAULT_MODEL, load_causal_lm

            model, tokenizer = load_causal_lm(model or DEFAULT_MODEL)
        if tokenizer is None:
            raise ValueError("pass the tokenizer together with the model")
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.identifier = identifier or default_identifier()
        self.strict = strict
        self._warned: set[str | None] = set()
        signature = base_model_signature(model, self.spec)
        self.adapters: dict[str, str] = {}  # lang -> 'sw/v3' (or the folder)
        peft_model = None
        for lang, (folder, label, card) in folders.items():
            check_base_model(card, signature, label)
            try:
                if peft_model is None:
                    peft_model = PeftModel.from_pretrained(model, str(folder), adapter_name=lang)
                else:
                    peft_model.load_adapter(str(folder), adapter_name=lang)
            except Exception as exc:  # PEFT, torch and safetensors raise many types here
                raise LingualiftError(_load_error(label, exc)) from None
            self.adapters[lang] = label
        peft_model.eval()
        self.model = peft_model

    def _adapter_folders(
        self, langs: Sequence[str] | None, adapters: dict[str, str | Path] | None
    ) -> dict[str, tuple[Path, str, dict[str, Any]]]:
        import json

        out: dict[str, tuple[Path, str, dict[str, Any]]] = {}
        if adapters:
            for lang, folder in adapters.items():
                folder = Path(folder)
                if not (folder / "adapter_config.json").is_file():
                    raise LingualiftError(
                        f"{folder} is not a PEFT adapter folder (no adapter_config.json)."
                    )
                card_path = folder / CARD_NAME
                card = json.loads(card_path.read_text("utf-8")) if card_path.is_file() else {}
                out[normalize_language(lang)] = (folder, str(folder), card)
            return out
        if langs is None:  # every language with a current version
            langs = [x for x in self.store.languages() if self.store.current_version(x)]
        for lang in langs:
            version = self.store.get(lang)  # clear errors for unknown or broken adapters
            out[version.lang] = (version.path, version.name, version.card)
        return out

    @property
    def languages(self) -> list[str]:
        return sorted(self.adapters)

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
        if lang is not None and lang in self.adapters:
            return Route(lang, self.adapters[lang], detected, confidence)
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

    def adapter_names(self, routes: Sequence[Route]) -> list[str]:
        """PEFT adapter names of routed rows (``__base__`` for the base model)."""
        return [r.lang if r.adapter is not None else BASE for r in routes]  # type: ignore[misc]

    @contextlib.contextmanager
    def _adapters_for(self, names: list[str]):
        """Run a batch with its rows' adapters: one active adapter when all rows agree
        (no per-row dispatch cost), PEFT's mixed-batch ``adapter_names`` otherwise."""
        unique = set(names)
        if unique == {BASE}:
            with self.model.disable_adapter():
                yield {}
        elif len(unique) == 1:
            self.model.set_adapter(names[0])
            yield {}
        else:
            yield {"adapter_names": names}

    def logits(self, texts: Sequence[str], langs: Sequence[str | None] | None = None):
        """Next-token logits of every position of each text, each row through its route."""
        import torch

        routes = self.route(texts, langs)
        batch = self.tokenizer(list(texts), return_tensors="pt", padding=True)
        batch = {k: v.to(self.model.device) for k, v in batch.items()}
        with torch.no_grad(), self._adapters_for(self.adapter_names(routes)) as extra:
            return self.model(**batch, **extra).logits

    def generate(
        self,
        prompts: Sequence[str],
        langs: Sequence[str | None] | None = None,
        max_new_tokens: int = 64,
        batch_size: int = 8,
        chat: bool = False,
        **generate_kwargs: Any,
    ) -> list[Generation]:
        """Generate for each prompt with its language's adapter; batches may mix languages."""
        from lingualift.generation import chat_prompts, generate_texts

        if not prompts:
            raise LingualiftError("No prompts given; pass at least one.")
        routes = self.route(prompts, langs)
        names = self.adapter_names(routes)
        completions = generate_texts(
            self.model,
            self.tokenizer,
            chat_prompts(self.tokenizer, prompts) if chat else list(prompts),
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            context=lambda rows: self._adapters_for([names[i] for i in rows]),
            add_special_tokens=not chat,
            **generate_kwargs,
        )
        return [
            Generation(prompt=p, text=c.text, route=r, new_tokens=c.new_tokens)
            for p, c, r in zip(prompts, completions, routes, strict=True)
        ]


def _load_error(label: str, exc: Exception) -> str:
    """One sentence for an adapter that PEFT could not load."""
    first = first_line(exc, 160)
    if "safetensor" in type(exc).__name__.lower() or "deserializ" in str(exc).lower():
        return (
            f"Adapter {label} has corrupt weights ({first}); promote another version or retrain it."
        )
    return (
        f"Adapter {label} does not load on this base model ({first}); "
        "load it with the base model it was trained on or retrain it."
    )
