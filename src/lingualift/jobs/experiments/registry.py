"""The one table of experiments: name -> (config class, run function).

A recipe names its experiment (``experiment: shifcon_vs_lora``); :func:`load_experiment`
reads the rest of the recipe into that experiment's config class, so each
experiment accepts only its own keys. :func:`experiment_name` goes back from a
config to its name (the default output folder, the saved ``config.yaml``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from lingualift.config import apply_overrides, from_dict, read_yaml
from lingualift.errors import require
from lingualift.jobs.experiments.compass import run_compass_vs_baselines
from lingualift.jobs.experiments.config import (
    CompassGenresConfig,
    CompassVsBaselinesConfig,
    EcdaDriftConfig,
    ExperimentConfig,
    LayerAreaConfig,
    ShifConVsLoraConfig,
)
from lingualift.jobs.experiments.ecda import run_ecda_drift
from lingualift.jobs.experiments.genres import run_compass_genres
from lingualift.jobs.experiments.shifcon import run_layer_area, run_shifcon_vs_lora


class Experiment(NamedTuple):
    """One experiment: its config class and the function that runs (or resumes) it."""

    config: type[ExperimentConfig]
    run: Callable[..., dict[str, Any]]


EXPERIMENTS: Mapping[str, Experiment] = {
    "compass_vs_baselines": Experiment(CompassVsBaselinesConfig, run_compass_vs_baselines),
    "compass_genres": Experiment(CompassGenresConfig, run_compass_genres),
    "shifcon_vs_lora": Experiment(ShifConVsLoraConfig, run_shifcon_vs_lora),
    "layer_area": Experiment(LayerAreaConfig, run_layer_area),
    "ecda_drift": Experiment(EcdaDriftConfig, run_ecda_drift),
}
"""Every experiment, by the name a recipe's ``experiment:`` key gives."""


def experiment_name(config: ExperimentConfig) -> str:
    """The name of the experiment ``config`` configures."""
    for name, experiment in EXPERIMENTS.items():
        if type(config) is experiment.config:
            return name
    raise TypeError(f"{type(config).__name__} is not the config of a registered experiment")


def load_experiment(
    path: str | Path | None = None, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """The config of the experiment a recipe (plus ``key=value`` overrides) names."""
    data = apply_overrides(read_yaml(path) if path else {}, overrides)
    where = str(path) if path else "the command line"
    name = data.pop("experiment", None)
    require(
        name in EXPERIMENTS,
        f"{where} must name the experiment (experiment: <name>), one of "
        f"{', '.join(EXPERIMENTS)}; got {name!r}.",
    )
    return from_dict(EXPERIMENTS[str(name)].config, data, where=where)
