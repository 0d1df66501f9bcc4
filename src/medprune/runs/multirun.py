"""What a job needs to know about the multirun it belongs to (Hydra's ``HydraConfig``).

- ``sweep_group``: the W&B group, one per multirun, so a sweep's runs sit together;
- ``check_launcher``: refuses multi-process training inside joblib workers;
- ``ddp_child_argv``: the command Lightning's DDP launcher starts its other ranks with;
- ``slurm_devices``/``slurm_gpus``: tasks and GPUs per node for the SLURM launcher.

Threads need nothing here: joblib's workers get cores / n_jobs OpenMP threads from joblib
itself (it sets ``OMP_NUM_THREADS``), and ``threads=N`` sets torch's count for any job.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
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


def _multi_process(strategy: object, devices: object, num_nodes: object) -> bool:
    """Whether Lightning would start more than one process: a multi-process strategy, or
    several devices (2, "2", -1, "0,1", [0, 1], a ListConfig) or nodes."""
    if any(kind in str(strategy).lower() for kind in ("ddp", "fsdp", "deepspeed")):
        return True
    if isinstance(devices, str):
        devices = int(devices) if devices.lstrip("-").isdigit() else devices.split(",")
    if isinstance(devices, Sequence):
        return len(devices) > 1
    if isinstance(devices, int) and (devices > 1 or devices == -1):
        return True
    return isinstance(num_nodes, int) and num_nodes > 1


def check_launcher(strategy: object, devices: object = 1, num_nodes: object = 1) -> None:
    """Multi-process training (DDP, FSDP, DeepSpeed, several devices) starts its ranks as new
    processes from the command line; a joblib worker has no command line of its own to start
    them from (its ``sys.argv`` is joblib's)."""
    if _joblib_launcher() is not None and _multi_process(strategy, devices, num_nodes):
        raise ValueError(
            f"trainer.strategy={strategy} trainer.devices={devices} with "
            "hydra/launcher=joblib: multi-process jobs start their own processes and cannot "
            "run inside joblib workers; run them one after another (drop hydra/launcher=joblib: "
            "each job uses all trainer.devices) or on a cluster (hydra/launcher=slurm)"
        )


def slurm_devices(devices: object) -> int:
    """SLURM tasks per node: one per Lightning device, so ``trainer.devices`` must be a count.
    Resolver ``${slurm_devices:${trainer.devices}}``."""
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(
            f"trainer.devices={devices!r}: hydra/launcher=slurm needs a number of devices per "
            "node (one SLURM task each), e.g. trainer.devices=4"
        )
    return devices


def slurm_gpus(accelerator: str, devices: object) -> int:
    """GPUs per node to ask SLURM for: one per Lightning device on GPU, none on CPU.
    Resolver ``${slurm_gpus:${trainer.accelerator},${trainer.devices}}``."""
    return slurm_devices(devices) if str(accelerator) in ("gpu", "cuda") else 0


#: Hydra overrides that belong to the sweep, not to one of its jobs.
SWEEP_ONLY = ("hydra.mode", "hydra.sweep", "hydra.run", "hydra/launcher", "hydra.launcher")
SWEEP_ONLY += ("hydra/sweeper", "hydra.sweeper")


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
    own = [o for o in hydra.overrides.hydra if not o.lstrip("+~").startswith(SWEEP_ONLY)]
    sys.argv = ddp_child_argv(argv[0], [*own, *hydra.overrides.task])
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
