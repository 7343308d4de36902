"""Experiment trackers: which ones a run reports to, where they write, and the user's own settings.

Training (:class:`lingualift.training.TrainingLoop`, through accelerate), the
drift monitor and the ECDA loop (:class:`RunTrackers`) share one set of keys,
:class:`TrackerSettings`, with one meaning everywhere:

- ``report_to``: ``auto`` (TensorBoard when it is installed), ``none``, or some
  of ``tensorboard``, ``wandb``, ``mlflow`` joined by commas;
- where each one writes: the config first, then the tracker's own environment
  variables, then the run folder. TensorBoard: ``<run>/logs/lingualift/``. W&B:
  ``tracker_project`` / ``tracker_entity``, else ``WANDB_PROJECT`` /
  ``WANDB_ENTITY`` (project ``lingualift``), files in ``WANDB_DIR``, else
  ``<run>/logs/``. MLflow: ``tracker_uri``, else ``MLFLOW_TRACKING_URI``, else a
  file store in ``<run>/logs/mlruns``; experiment ``tracker_project``, else
  ``MLFLOW_EXPERIMENT_NAME``, else ``lingualift``.

W&B's other variables (``WANDB_MODE=offline``, ``WANDB_API_KEY``...) are W&B's
own business and reach it untouched. accelerate's own W&B and MLflow trackers
pass a project name that overrides ``WANDB_PROJECT`` and log to MLflow's
process-wide default location; :mod:`lingualift.tracker_backends` holds the two
small accelerate trackers that take the resolved values instead.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from lingualift.config import bookkeeping
from lingualift.errors import require

TRACKERS = ("tensorboard", "wandb", "mlflow")
REPORT_TO = ("auto", "none", *TRACKERS)
DEFAULT_PROJECT = "lingualift"
"""W&B project and MLflow experiment when neither the config nor the environment names one;
also the TensorBoard folder under a run's logs/."""


def tracker_names(report_to: str) -> list[str]:
    """The names in ``report_to``, checked to be known (not yet to be installed)."""
    names = [n.strip() for n in str(report_to).split(",") if n.strip()]
    unknown = [n for n in names if n not in REPORT_TO]
    require(
        names and not unknown,
        f"report_to must be auto, none or some of {', '.join(TRACKERS)}, got {report_to!r}.",
    )
    return names


@dataclasses.dataclass
class TrackerSettings:
    """Which experiment trackers a run reports to, and where (training, monitor and ECDA alike)."""

    report_to: str = bookkeeping("auto")
    """Experiment trackers: 'auto' (TensorBoard when it is installed, else none), 'none', or
    tensorboard, wandb, mlflow (several joined by commas). TensorBoard writes into the run's
    logs/ folder; W&B and MLflow follow tracker_project/tracker_entity/tracker_uri, else their
    own environment variables. Changing it never changes what a run computes."""
    tracker_project: str = bookkeeping("")
    """W&B project and MLflow experiment; empty: WANDB_PROJECT (W&B) or MLFLOW_EXPERIMENT_NAME
    (MLflow) when set, else 'lingualift'."""
    tracker_entity: str = bookkeeping("")
    """W&B entity (team or user); empty: WANDB_ENTITY when set, else W&B's default."""
    tracker_uri: str = bookkeeping("")
    """MLflow tracking URI (a server, a database or a folder); empty: MLFLOW_TRACKING_URI when
    set, else a file store in the run's logs/mlruns."""

    def __post_init__(self) -> None:
        tracker_names(self.report_to)
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:  # a config that also inherits other settings checks those too
            parent()


def resolve_trackers(report_to: str) -> list[str]:
    """The trackers ``report_to`` names, checked to be installed (``auto``: TensorBoard if so)."""
    from accelerate.utils import is_mlflow_available, is_tensorboard_available, is_wandb_available

    available = {
        "tensorboard": is_tensorboard_available,
        "wandb": is_wandb_available,
        "mlflow": is_mlflow_available,
    }
    names = tracker_names(report_to)
    if names == ["auto"]:
        return ["tensorboard"] if available["tensorboard"]() else []
    if names == ["none"]:
        return []
    require(
        "auto" not in names and "none" not in names,
        f"report_to={report_to} mixes auto or none with trackers; name the trackers alone.",
    )
    for name in names:
        extra = "lingualift[tensorboard]" if name == "tensorboard" else "lingualift[trackers]"
        require(
            available[name](),
            f"report_to={name} needs the {name} package; pip install {extra} or set "
            "report_to=none.",
        )
    return names


def wandb_project(settings: TrackerSettings, default: str = DEFAULT_PROJECT) -> str:
    """The W&B project: the config's, else ``WANDB_PROJECT``, else ``default``."""
    return settings.tracker_project or os.environ.get("WANDB_PROJECT") or default


def wandb_entity(settings: TrackerSettings) -> str | None:
    """The W&B entity: the config's, else ``WANDB_ENTITY``, else None (W&B's default)."""
    return settings.tracker_entity or os.environ.get("WANDB_ENTITY") or None


def mlflow_experiment(settings: TrackerSettings, default: str = DEFAULT_PROJECT) -> str:
    """The MLflow experiment: the config's project, else ``MLFLOW_EXPERIMENT_NAME``, else ``default``."""
    return settings.tracker_project or os.environ.get("MLFLOW_EXPERIMENT_NAME") or default


def mlflow_uri(settings: TrackerSettings, log_dir: str | Path) -> str:
    """The MLflow tracking URI: the config's, else ``MLFLOW_TRACKING_URI``, else a file store
    in ``log_dir/mlruns``."""
    return (
        settings.tracker_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or (Path(log_dir).resolve() / "mlruns").as_uri()
    )


def build_trackers(
    names: list[Any],
    settings: TrackerSettings,
    log_dir: str | Path,
    *,
    run_name: str,
    project: str = DEFAULT_PROJECT,
) -> list[Any]:
    """accelerate trackers (not yet started) for ``names``, writing where the settings say.

    An entry that is already a tracker object (an ``accelerate.tracking.GeneralTracker``)
    is kept as it is. ``run_name`` names the W&B and MLflow run; ``project`` is the
    TensorBoard folder under ``log_dir`` and the fallback project/experiment.
    """
    from accelerate.tracking import TensorBoardTracker

    from lingualift.tracker_backends import MlflowRunTracker, WandbRunTracker

    trackers = []
    for name in names:
        if name == "tensorboard":
            trackers.append(TensorBoardTracker(project, str(log_dir)))
        elif name == "wandb":
            options: dict[str, Any] = {"name": run_name}
            entity = wandb_entity(settings)
            if entity:
                options["entity"] = entity
            if not os.environ.get("WANDB_DIR"):  # an explicit dir would override the user's
                options["dir"] = str(log_dir)
            trackers.append(WandbRunTracker(wandb_project(settings, project), **options))
        elif name == "mlflow":
            uri = mlflow_uri(settings, log_dir)
            trackers.append(
                MlflowRunTracker(mlflow_experiment(settings, project), uri, run_name=run_name)
            )
        else:
            trackers.append(name)  # a tracker object brought by the caller (tests, plugins)
    return trackers


def scalar_values(values: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of ``values`` (booleans as 0/1), as floats: what every tracker takes."""
    numbers = {}
    for key, value in values.items():
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int | float) and math.isfinite(value):
            numbers[key] = float(value)
    return numbers


def flat_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as ``a.b: value`` pairs of plain scalars (what trackers record as
    hyperparameters); lists become their text, None is left out."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_hparams(value, f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = ",".join(str(v) for v in value)
        elif isinstance(value, int | float | str | bool):
            flat[name] = value
    return flat


class RunTrackers:
    """The trackers of a run outside the training loop (the drift monitor, the ECDA loop).

    The same :class:`TrackerSettings` as training and the same backends, opened
    with the first value logged (so a job that fails before it has anything to
    report leaves no tracker files) and closed by :meth:`close` (or as a context
    manager). Values are logged at a step the caller chooses; W&B needs steps that
    never go back.

    Args:
        settings: report_to and where each tracker writes.
        log_dir: the run's logs/ folder (TensorBoard, W&B files, MLflow's default store).
        run_name: the W&B/MLflow run's name (e.g. 'monitor', 'ecda').
        config: recorded as the run's hyperparameters (flattened to scalars).
    """

    def __init__(
        self,
        settings: TrackerSettings,
        log_dir: str | Path,
        run_name: str,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.names = resolve_trackers(settings.report_to)
        self.settings = settings
        self.log_dir = Path(log_dir)
        self.run_name = run_name
        self.config = flat_hparams(config or {})
        self.trackers: list[Any] = []

    def start(self) -> RunTrackers:
        if self.names and not self.trackers:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            trackers = build_trackers(
                self.names, self.settings, self.log_dir, run_name=self.run_name
            )
            for tracker in trackers:
                tracker.start()
                self.trackers.append(tracker)  # started ones are closed even if a later one fails
                if self.config:
                    tracker.store_init_configuration(self.config)
        return self

    def log(self, values: dict[str, Any], step: int) -> None:
        """Send the numbers among ``values`` to every tracker at ``step`` (opening them)."""
        numbers = scalar_values(values)
        if numbers and self.names:
            self.start()
            for tracker in self.trackers:
                tracker.log(numbers, step=step)

    def close(self) -> None:
        trackers, self.trackers = self.trackers, []
        for tracker in trackers:
            tracker.finish()

    def __enter__(self) -> RunTrackers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
