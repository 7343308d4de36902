"""The steps several jobs share, typed, below the jobs: jobs compose them, never each other.

- :mod:`~lingualift.workflows.base`: :class:`LoadedBase`, a base model loaded once
  on first use and shared by a job's stages (fresh copies for training);
- :mod:`~lingualift.workflows.selection`: :func:`select_into` (a sampler's
  selection, report and profile written into a folder) and :func:`select_stage`
  (the same as a one-stage job);
- :mod:`~lingualift.workflows.training`: :class:`TrainConfig`,
  :func:`read_training_data`, :func:`train_settings`, :func:`train_and_store` (train,
  write the run outputs, store the version with its card and held-out set, promote
  only as decided), :func:`adapter_card`;
- :mod:`~lingualift.workflows.ecda_update`: :class:`EcdaUpdater`, one continual
  update as five stages (usage, select, train, gate, decide);
- :mod:`~lingualift.workflows.ecda`: :class:`EcdaConfig` and :func:`ecda_over_log`,
  the drift monitor, the ECDA loop and its updates composed over a traffic log.

Nothing here imports :mod:`lingualift.jobs`; the modules are imported by name
(``from lingualift.workflows.training import train_and_store``) so that this
package stays light to import.
"""
