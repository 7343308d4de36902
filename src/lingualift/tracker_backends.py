"""W&B and MLflow as accelerate trackers that write where :mod:`lingualift.tracking` resolved.

accelerate's own ``WandBTracker`` always passes a project (which overrides
``WANDB_PROJECT``) and records the configuration through W&B's global run;
its ``MLflowTracker`` logs through MLflow's process-wide fluent API to the
default tracking URI. These two take the resolved project, entity and URI
instead, and keep to their own run object, so a monitor's or ECDA loop's run
stays open while an update trains and reports a run of its own in the same
process. Imported only when a tracker is built (accelerate imports torch).
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import urlparse

from accelerate.tracking import GeneralTracker, WandBTracker, on_main_process

MLFLOW_PARAM_BATCH = 100
"""Most parameters MLflow takes in one ``log_batch`` call."""
MLFLOW_PARAM_LENGTH = 6000
"""Longest parameter value MLflow stores."""


def is_file_store(uri: str) -> bool:
    """Whether an MLflow tracking URI names a local folder (``file:`` or a bare path)."""
    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


class WandbRunTracker(WandBTracker):
    """accelerate's W&B tracker with its own run (``reinit='create_new'``) and config."""

    @on_main_process
    def start(self) -> None:
        import wandb

        self.run = wandb.init(project=self.run_name, reinit="create_new", **self.init_kwargs)

    @on_main_process
    def store_init_configuration(self, values: dict[str, Any]) -> None:
        # On this run, not wandb.config: a second open run does not become W&B's global one.
        self.run.config.update(values, allow_val_change=True)


class MlflowRunTracker(GeneralTracker):
    """An MLflow run through ``MlflowClient`` bound to one tracking URI (no process-wide state).

    Args:
        experiment: the experiment's name (created when missing).
        uri: the tracking URI: a server, a database, or a local folder (file store).
        run_name: the run's name in the experiment.
    """

    name = "mlflow"
    requires_logging_directory = False

    def __init__(self, experiment: str, uri: str, run_name: str | None = None) -> None:
        super().__init__()
        self.experiment = experiment
        self.uri = uri
        self.run_name = run_name
        self.client: Any = None
        self.run_id: str | None = None

    @on_main_process
    def start(self) -> None:
        from mlflow.tracking import MlflowClient

        if is_file_store(self.uri):
            # MLflow 3 keeps its folder store in maintenance mode and refuses it unless asked;
            # a local folder is what the user (or the run-folder default) named here.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = (
            found.experiment_id if found else self.client.create_experiment(self.experiment)
        )
        run = self.client.create_run(experiment_id, run_name=self.run_name)
        self.run_id = run.info.run_id

    @property
    def tracker(self) -> Any:
        return self.client

    @on_main_process
    def store_init_configuration(self, values: dict[str, Any]) -> None:
        from mlflow.entities import Param

        params = [
            Param(str(k), str(v)[:MLFLOW_PARAM_LENGTH]) for k, v in values.items() if v is not None
        ]
        for start in range(0, len(params), MLFLOW_PARAM_BATCH):
            self.client.log_batch(self.run_id, params=params[start : start + MLFLOW_PARAM_BATCH])

    @on_main_process
    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), stamp, step or 0)
            for key, value in values.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        ]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    @on_main_process
    def finish(self) -> None:
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id)
