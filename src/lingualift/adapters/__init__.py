"""Language adapters: LoRA training, the versioned adapter store, per-language routing.

* :class:`LoraTrainer` trains one language's LoRA adapter (PEFT + accelerate)
  on text, prompt/completion or chat examples and returns a
  :class:`TrainedAdapter`; the ``train`` job (:mod:`lingualift.jobs.train`)
  reads the data, trains and stores;
* :class:`AdapterStore` keeps ``<root>/<lang>/v<N>/`` PEFT folders with a
  ``card.json``, a history and a ``current`` pointer per language;
* :class:`Router` serves several adapters on one base model, routing each row
  of a mixed-language batch by its given or identified language;
* :class:`~lingualift.adapters.registry.AdapterRegistry` holds the adapters a
  model carries (fit checks, versions side by side, hot reload, stacked LoRA
  for mixed batches), for the router and the server alike.

Heavy libraries (torch, transformers, peft) load on first use.
"""

from lingualift.adapters.store import AdapterStore, AdapterVersion, base_model_signature

__all__ = [
    "AdapterStore",
    "AdapterVersion",
    "Generation",
    "LoraTrainer",
    "Route",
    "Router",
    "TrainedAdapter",
    "base_model_signature",
]


def __getattr__(name: str):
    # Keep `import lingualift.adapters` light: the trainer and router pull in torch.
    if name in ("LoraTrainer", "TrainedAdapter"):
        from lingualift.adapters import trainer

        return getattr(trainer, name)
    if name in ("Router", "Route", "Generation"):
        from lingualift.adapters import routing

        return getattr(routing, name)
    raise AttributeError(name)
