"""Experiments that test the papers' claims on the embedded model.

``run_experiment(ShifConVsLoraConfig(...))`` runs the experiment the config
class belongs to (:data:`EXPERIMENTS` maps each name to its config class and
run function; ``load_experiment(recipe)`` reads a recipe's ``experiment:``):

* ``compass_vs_baselines``: LoRA adapters trained on D_tr(t) + a COMPASS, random,
  lang-similarity or all selection at equal budget and steps, scored on
  held-out target-language NLL and a cloze set, for each target language;
* ``compass_genres``: COMPASS where a real semantic gap between genres exists,
  its control (no gap) and a realistic pool;
* ``shifcon_vs_lora``: ShifCon vs plain LoRA on the same pairs and steps,
  non-English NLL and cloze accuracy, and English NLL;
* ``layer_area``: ShifCon trained with the distance curve's band vs a sweep of bands;
* ``ecda_drift``: COMPASS-ECDA under a usage change against no update, naive
  fine-tuning and full retraining.

Each is orchestration over the library (compass, adapters, shifcon,
evaluation, continual); every seed of every system is a resumable unit, and the
output folder gets ``results.json``, ``results.png`` and ``table.md``.
"""

from lingualift.jobs.experiments.config import (
    CompassGenresConfig,
    CompassVsBaselinesConfig,
    EcdaDriftConfig,
    ExperimentConfig,
    GenreSettings,
    LayerAreaConfig,
    ShifConVsLoraConfig,
)
from lingualift.jobs.experiments.registry import (
    EXPERIMENTS,
    Experiment,
    experiment_name,
    load_experiment,
)
from lingualift.jobs.experiments.runner import run_experiment

__all__ = [
    "EXPERIMENTS",
    "CompassGenresConfig",
    "CompassVsBaselinesConfig",
    "EcdaDriftConfig",
    "Experiment",
    "ExperimentConfig",
    "GenreSettings",
    "LayerAreaConfig",
    "ShifConVsLoraConfig",
    "experiment_name",
    "load_experiment",
    "run_experiment",
]
