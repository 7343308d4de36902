"""Language adapters: LoRA training, the versioned adapter store, per-language routing.

* :func:`train` / :class:`LoraTrainer` train one language's LoRA adapter
  (PEFT + accelerate) on text, prompt/completion or chat data, optionally mixed
  with a COMPASS selection;
* :class:`AdapterStore` keeps ``<root>/<lang>/v<N>/`` PEFT folders with a
  ``card.json`` and a ``current`` pointer per language;
* :class:`Router` serves several adapters on one base model, routing each row
  of a mixed-language batch by its given or detected language.

Heavy libraries (torch, transformers, peft) load on first use.
"""

from lingualift.adapters.config import LoraSettings, TrainConfig
from lingualift.adapters.store import AdapterStore, AdapterVersion, base_model_signature

__all__ = [
    "AdapterStore",
    "AdapterVersion",
    "LoraSettings",
    "LoraTrainer",
    "Router",
    "TrainConfig",
    "TrainResult",
    "base_model_signature",
    "train",
]


def __getattr__(name: str):
    # Keep `import lingualift.adapters` light: the trainer and router pull in torch.
    if name in ("LoraTrainer", "TrainResult", "train"):
        from lingualift.adapters import trainer

        return getattr(trainer, name)
    if name in ("Router", "Route", "Generation"):
        from lingualift.adapters import routing

        return getattr(routing, name)
    raise AttributeError(name)
