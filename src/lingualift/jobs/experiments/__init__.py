"""Experiments that test the papers' claims on the embedded model.

``run_experiment(ExperimentConfig(experiment=...))`` runs one of:

* ``compass_vs_baselines``: LoRA adapters trained on D_tr(t) + a COMPASS, random,
  lang-similarity or all selection at equal budget and steps, scored on
  held-out target-language NLL and a cloze set, for each target language;
* ``shifcon_vs_lora``: ShifCon vs plain LoRA on the same pairs and steps,
  non-English NLL and cloze accuracy, and English NLL;
* ``layer_area``: ShifCon trained with the distance curve's band vs a sweep of bands.

Each is orchestration over the library (compass, adapters, shifcon,
evaluation); every seed of every system is a resumable unit, and the output
folder gets ``results.json``, ``results.png`` and ``table.md``.
"""

from lingualift.jobs.experiments.config import EXPERIMENTS, ExperimentConfig
from lingualift.jobs.experiments.runner import run_experiment

__all__ = ["EXPERIMENTS", "ExperimentConfig", "run_experiment"]
