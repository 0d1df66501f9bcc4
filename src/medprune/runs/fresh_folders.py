"""A refused run writes nothing: the Hydra callback that checks output folders first.

Hydra writes ``<run dir>/.hydra/{config,hydra,overrides}.yaml`` before it calls train.py's
or prune.py's main, and a multirun writes ``<sweep dir>/multirun.yaml`` and every job's
``.hydra/`` as it starts them. ``train``/``sculpt`` refuse a folder that holds an earlier run,
but by then Hydra would already have rewritten that run's record of its config. Hydra calls
``on_run_start``/``on_multirun_start`` before it writes anything, so the check is made there
(conf/hydra/default.yaml registers it for both scripts). Hydra turns an exception raised in a
callback into a warning and goes on, so a refusal leaves as ``SystemExit``: the message on
stderr, exit status 1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from medprune.runs.job import (
    PRUNE_HINT,
    PRUNE_OUTPUTS,
    TRAIN_HINT,
    TRAIN_OUTPUTS,
    check_fresh_output_dir,
)

#: Per script (Hydra's config name): what its runs write, and the hint that ends a refusal.
OUTPUTS = {"train": (TRAIN_OUTPUTS, TRAIN_HINT), "prune": (PRUNE_OUTPUTS, PRUNE_HINT)}


class RefusedFolder(SystemExit):
    """Exit status 1 with ``Error: <why>`` on stderr (SystemExit passes Hydra's callback
    wrapper, which would turn any Exception into a warning)."""

    def __init__(self, err: Exception) -> None:
        super().__init__(f"Error: {err}")


class RefuseUsedFolders(Callback):
    """Stops a run before Hydra writes into a folder that holds an earlier run's results."""

    def on_run_start(self, config: DictConfig, config_name: str | None = None, **_: Any) -> None:
        if os.environ.get("LOCAL_RANK", "0") != "0":
            return  # a DDP rank Lightning started inside rank 0's (checked) run folder
        names, hint = OUTPUTS.get(config_name, OUTPUTS["train"])
        try:
            check_fresh_output_dir(Path(config.hydra.run.dir), names, hint)
        except FileExistsError as err:
            raise RefusedFolder(err) from None

    def on_multirun_start(
        self, config: DictConfig, config_name: str | None = None, **_: Any
    ) -> None:
        sweep = Path(config.hydra.sweep.dir)
        names, hint = OUTPUTS.get(config_name, OUTPUTS["train"])
        try:
            if (sweep / "multirun.yaml").is_file():
                raise FileExistsError(
                    f"{sweep / 'multirun.yaml'} exists: hydra.sweep.dir={sweep} holds an "
                    "earlier sweep; choose a new hydra.sweep.dir"
                )
            for job in sorted(sweep.iterdir()) if sweep.is_dir() else ():
                if job.is_dir():
                    check_fresh_output_dir(job, names, hint)
        except FileExistsError as err:
            raise RefusedFolder(err) from None
