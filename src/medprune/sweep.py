"""What a job needs to know about the multirun it belongs to (Hydra's ``HydraConfig``).

- ``sweep_group``: the W&B group, one per multirun, so a sweep's runs sit together;
- ``job_threads``: torch threads per job, so parallel jobs share the cores instead of each
  starting one thread per core (oversubscribed OpenMP threads slow every job down);
- ``ddp_child_argv``: the command Lightning's DDP launcher starts its other ranks with;
- ``slurm_gpus``: GPUs per node for the SLURM launcher, from the trainer config.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch.distributed
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import read_write


def _hydra() -> Any | None:
    return HydraConfig.get() if HydraConfig.initialized() else None


def in_multirun() -> bool:
    hydra = _hydra()
    return hydra is not None and hydra.mode == RunMode.MULTIRUN


def sweep_group(task_name: str) -> str:
    """``<task>-<sweep folder name>`` in a multirun (e.g. ``nuclei-2026-11-22_21-05-00-123``),
    the task name for a single run. Resolver ``${sweep_group:${task_name}}``."""
    if not in_multirun():
        return task_name
    return f"{task_name}-{Path(_hydra().sweep.dir).name}"


def _joblib_launcher() -> Any | None:
    hydra = _hydra()
    launcher = hydra.launcher if hydra is not None and in_multirun() else None
    if launcher is None or "joblib" not in str(launcher.get("_target_", "")):
        return None
    return launcher


def check_launcher(strategy: object) -> None:
    """DDP starts its ranks as new processes from the command line; a joblib worker has no
    command line of its own to start them from (its ``sys.argv`` is joblib's)."""
    if _joblib_launcher() is not None and str(strategy).startswith("ddp"):
        raise ValueError(
            f"trainer.strategy={strategy} with hydra/launcher=joblib: DDP jobs start their own "
            "processes and cannot run inside joblib workers; run them one after another "
            "(drop hydra/launcher=joblib: each job uses all trainer.devices) or on a cluster "
            "(hydra/launcher=slurm)"
        )


def job_threads(requested: int | None, cores: int | None = None) -> int | None:
    """torch intra-op threads for this job: ``requested`` if set; under the joblib launcher
    the cores divided among its ``n_jobs`` (at least 1); otherwise None (torch's default,
    all cores)."""
    if requested is not None:
        return requested
    launcher = _joblib_launcher()
    if launcher is None:
        return None
    cores = cores or os.cpu_count() or 1
    n_jobs = launcher.get("n_jobs") or -1
    if n_jobs < 0:  # joblib: -1 = one job per core, -2 = all but one, ...
        n_jobs = max(1, cores + 1 + n_jobs)
    return max(1, cores // n_jobs)


def slurm_gpus(accelerator: str, devices: int) -> int:
    """GPUs per node to ask SLURM for: one per Lightning device on GPU, none on CPU.
    Resolver ``${slurm_gpus:${trainer.accelerator},${trainer.devices}}``."""
    return int(devices) if str(accelerator) in ("gpu", "cuda") else 0


def ddp_child_argv(script: str, job_overrides: list[str]) -> list[str]:
    """argv for a DDP rank of one multirun job: that job's overrides as a single run.
    Lightning builds the command from ``sys.argv``, which in a multirun is the whole sweep
    (``-m pruning=global,layerwise ...``): each rank would start the sweep again. It appends
    ``hydra.run.dir=<HydraConfig run.dir>``; ``hydra.mode=RUN`` overrides a sweep preset's
    ``hydra.mode: MULTIRUN``."""
    return [script, *job_overrides, "hydra.mode=RUN"]


#: What Lightning's DDP launcher leaves in ``os.environ``; while ``LOCAL_RANK`` is set, the
#: next job's launcher takes its ranks as started already and starts none.
DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def ddp_ranks_run_this_job(output_dir: str):
    """Around one multirun job: Lightning's DDP subprocess launcher starts the other ranks on
    this job alone, in this job's folder (it reads ``sys.argv`` and ``HydraConfig.run.dir``);
    afterwards the process group and the DDP environment go, so the next job in this
    process starts its own ranks."""
    hydra = _hydra()
    if hydra is None or not in_multirun():
        yield
        return
    argv, run_dir = sys.argv, hydra.run.dir
    env = {k: os.environ.get(k) for k in DDP_ENV}
    sys.argv = ddp_child_argv(argv[0], list(hydra.overrides.task))
    with read_write(hydra):
        hydra.run.dir = output_dir
    try:
        yield
    finally:
        sys.argv = argv
        with read_write(hydra):
            hydra.run.dir = run_dir
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
