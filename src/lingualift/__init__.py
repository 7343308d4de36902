"""lingualift: lift a large language model's quality in non-dominant languages.

Two levers and the evaluation that proves them:

* COMPASS (:mod:`lingualift.compass`): choose auxiliary multilingual data where
  target usage is poorly covered by the training data, and train one LoRA
  adapter per language (:mod:`lingualift.adapters`), kept fresh under drift
  (:mod:`lingualift.continual`).
* ShifCon (:mod:`lingualift.shifcon`): shift non-dominant hidden states into the
  dominant language's subspace in the middle layers, with a contrastive loss.
* Evaluation (:mod:`lingualift.evaluation`).
"""

from lingualift.errors import LingualiftError

__version__ = "0.1.0"

__all__ = ["LingualiftError", "__version__"]
