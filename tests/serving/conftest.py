"""Fixtures for serving tests: a tiny model on disk, a store of random adapters, live servers."""

from __future__ import annotations

import contextlib
import threading

import pytest
import torch

from lingualift.jobs.serve import ServeConfig
from lingualift.serving.engine import Event, Failed, Finished, Started, TextDelta
from lingualift.testing import save_tiny_causal_lm

from ..adapters.conftest import TINY, make_store

SWAHILI = "Habari ya asubuhi rafiki yangu, ninakwenda sokoni leo kununua matunda."
FRENCH = "Bonjour mon ami, je vais au marché aujourd'hui pour acheter des fruits."
ENGLISH = "Good morning my friend, I am going to the market today to buy some fruit."


@pytest.fixture(autouse=True)
def serving_on_one_thread(one_thread):
    """Tiny models run fastest on one thread, and the machine's cores are shared."""


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """The tiny Llama of the adapter tests, saved as a local model folder."""
    return save_tiny_causal_lm(tmp_path_factory.mktemp("serving-model"), "llama", **TINY)


@pytest.fixture
def store(tmp_path):
    """sw/v1 and fr/v1, random adapters on the tiny model."""
    return make_store(tmp_path / "store")


def serve_config(model_dir, store, tmp_path, **overrides) -> ServeConfig:
    values = dict(
        model=str(model_dir),
        model_name="tiny",
        store=str(store.root),
        log_dir=str(tmp_path / "traffic"),
        reload_interval_s=0.05,
        batch_wait_ms=5,
    )
    return ServeConfig(**{**values, **overrides})


@contextlib.contextmanager
def live_server(config: ServeConfig):
    """Build a server from ``config`` and serve it on a free localhost port."""
    from lingualift.jobs.serve import build_server
    from lingualift.serving.server import ServerThread

    parts = build_server(config)
    with ServerThread(parts.app) as server:
        yield parts, server.url


def openai_client(url: str, api_key: str = "unused"):
    import openai

    return openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=30)


class Collector:
    """An engine event sink that keeps every event and signals the end (of ``choices``)."""

    def __init__(self, choices: int = 1) -> None:
        self.choices = choices
        self.events: list[Event] = []
        self.done = threading.Event()
        self.first_text = threading.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, TextDelta):
            self.first_text.set()
        if isinstance(event, Failed) or len(self.finished) == self.choices:
            self.done.set()

    @property
    def finished(self) -> list[Finished]:
        """Every choice's end, by index."""
        return sorted((e for e in self.events if isinstance(e, Finished)), key=lambda e: e.index)

    def wait_all(self, timeout: float = 30.0) -> list[Finished]:
        assert self.done.wait(timeout), "the request did not finish"
        assert not any(isinstance(e, Failed) for e in self.events), self.events
        return self.finished

    def wait(self, timeout: float = 30.0) -> Finished:
        assert self.done.wait(timeout), "the request did not finish"
        last = self.events[-1]
        assert isinstance(last, Finished), last
        return last

    @property
    def started(self) -> Started:
        first = self.events[0]
        assert isinstance(first, Started)
        return first

    @property
    def streamed(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, TextDelta))


def greedy_alone(model_dir, store, lang, prompt_ids, max_new_tokens, version=None):
    """Token ids ``model.generate`` gives one prompt with one adapter applied the plain PEFT way."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    if lang is not None:
        model = PeftModel.from_pretrained(model, str(store.path(lang, version)))
    model.eval()
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=0,
        )
    return out[0, len(prompt_ids) :].tolist()


def greedy_reference(model_dir, store, lang, prompt_ids, steps, version=None):
    """Greedy text without a KV cache or early stop: the slow, obvious loop (past EOS too)."""
    from peft import PeftModel

    from lingualift.models import load_causal_lm

    model, tokenizer = load_causal_lm(str(model_dir))
    if lang is not None:
        model = PeftModel.from_pretrained(model, str(store.path(lang, version))).eval()
    ids = list(prompt_ids)
    with torch.inference_mode():
        for _ in range(steps):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return tokenizer.decode(ids[len(prompt_ids) :], skip_special_tokens=True)


def wait_for(condition, timeout: float = 15.0, what: str = "condition"):
    """Poll ``condition()`` until it is truthy (returns it) or fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


EMBEDDED = "embedded:gemma-3-270m"


def convert_like_embedded(name, out_dir):
    """A tiny stand-in for the embedded Gemma 3 270M with its tokenizer's shape for chat: no
    chat template, and a beginning-of-sequence token added to plain text (as Gemma's)."""
    from tokenizers import processors

    from lingualift.testing import byte_tokenizer, convert_tiny_embedded

    convert_tiny_embedded(name, out_dir)
    tokenizer = byte_tokenizer()
    tokenizer.chat_template = None
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", 1)]
    )
    for stale in ("tokenizer_config.json", "chat_template.jinja", "tokenizer.json"):
        (out_dir / stale).unlink(missing_ok=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@contextlib.contextmanager
def embedded_home(root):
    """``$LINGUALIFT_HOME`` under ``root`` where ``embedded:gemma-3-270m`` is a tiny model of the
    real one's tokenizer shape, and whose default store holds random sw and fr adapters for it:
    commands written for the embedded model (docs, recipes) run as written, in seconds."""
    with pytest.MonkeyPatch.context() as mp:
        use_embedded_home(mp, root)
        yield random_store(None, EMBEDDED)


def random_store(root, spec: str):
    """A store (``root``, or the home's default) with random sw and fr adapters for the model
    ``spec`` names, its card naming that model."""
    from lingualift import models
    from lingualift.adapters import AdapterStore, base_model_signature

    from ..adapters.conftest import random_adapter

    store = AdapterStore(root)
    for seed, lang in enumerate(("sw", "fr"), start=1):
        model, _ = models.load_causal_lm(spec)
        peft_model = random_adapter(model, seed)
        card = {"base_model": base_model_signature(peft_model, spec)}
        store.save(lang, peft_model, card=card, promote=True)
    return store


def use_embedded_home(mp, root) -> None:
    """Point ``mp`` (a MonkeyPatch) at the home :func:`embedded_home` made under ``root``; a
    test inside a module-scoped home calls it again, since every test gets its own home."""
    from lingualift import models

    mp.setenv("LINGUALIFT_HOME", str(root / "home"))
    mp.setenv("HF_HUB_CACHE", str(root / "hf"))
    mp.delenv("LINGUALIFT_API_KEY", raising=False)
    mp.setattr(models, "_convert_embedded", convert_like_embedded)
