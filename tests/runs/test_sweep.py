"""What a job reads from the multirun it is in: W&B group, threads, DDP rank command, SLURM
GPUs; and the grid sweeper that trains a dense baseline once per seed."""

import sys

import pytest
from hydra.conf import HydraConf
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, read_write

from hydra_plugins.medprune_sweeper.grid_sweeper import GridSweeper, drop_ignored_overrides
from medprune.runs.multirun import (
    check_launcher,
    ddp_ranks_run_this_job,
    slurm_devices,
    slurm_gpus,
    sweep_group,
)

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


@pytest.fixture
def hydra_job(tmp_path):
    """Set Hydra's job-time config as a launcher does, and put it back afterwards."""
    instance = HydraConfig.instance()
    before = instance.cfg

    def make(mode=RunMode.MULTIRUN, launcher=BASIC, n_jobs=None, overrides=()):
        hydra = OmegaConf.structured(HydraConf)
        hydra.mode = mode
        hydra.run.dir = str(tmp_path / "run")
        hydra.sweep.dir = str(tmp_path / "multiruns" / "2026-11-22_21-00-00")
        hydra.launcher = {"_target_": launcher, "n_jobs": n_jobs}
        hydra.overrides.task = list(overrides)
        hydra.runtime.cwd = str(tmp_path)
        instance.set_config(OmegaConf.create({"hydra": hydra}))
        return instance.cfg.hydra

    yield make
    instance.cfg = before


def test_dense_jobs_ignore_sparsity_and_are_not_repeated():
    grid = [
        [f"pruning={p}", f"sparsity={s}", f"seed={seed}"]
        for p in ("none", "global")
        for s in (0.5, 0.9)
        for seed in (0, 1)
    ]
    jobs = drop_ignored_overrides(grid, "pruning=none", ["sparsity"])
    assert jobs == [
        ["pruning=none", "seed=0"],
        ["pruning=none", "seed=1"],
        ["pruning=global", "sparsity=0.5", "seed=0"],
        ["pruning=global", "sparsity=0.5", "seed=1"],
        ["pruning=global", "sparsity=0.9", "seed=0"],
        ["pruning=global", "sparsity=0.9", "seed=1"],
    ]
    # `+key=` overrides are matched by key; without a trigger nothing is dropped
    assert drop_ignored_overrides(
        [["pruning=none", "+sparsity=0.5"]], "pruning=none", ["sparsity"]
    ) == [["pruning=none"]]
    assert drop_ignored_overrides(grid, None, ["sparsity"]) == grid


def test_wandb_group_is_the_sweep_folder_in_a_multirun(hydra_job):
    assert sweep_group("nuclei") == "nuclei"  # no Hydra run at all (tests, notebooks)
    hydra_job(mode=RunMode.RUN)
    assert sweep_group("nuclei") == "nuclei"
    hydra_job()
    assert sweep_group("cardiac") == "cardiac-2026-11-22_21-00-00"


def test_slurm_asks_for_gpus_only_on_gpu():
    assert slurm_gpus("gpu", 4) == 4
    assert slurm_gpus("cuda", 2) == 2
    assert slurm_gpus("cpu", 2) == 0
    assert slurm_devices(4) == 4
    for devices in ("auto", [0, 1], 0):  # one SLURM task per device needs a count
        with pytest.raises(ValueError, match=r"trainer.devices=.*: hydra/launcher=slurm needs"):
            slurm_gpus("gpu", devices)


def test_sweeper_refuses_ignores_that_are_not_a_list():
    from hydra.core.plugins import Plugins

    # the class as Hydra instantiates it: its plugin scan re-imports the sweeper modules
    sweeper = Plugins.instance().class_name_to_class[f"{GridSweeper.__module__}.GridSweeper"]
    with pytest.raises(ValueError, match=r"dense.ignores='sparsity': expected a list"):
        sweeper(dense={"override": "pruning=none", "ignores": "sparsity"})
    dense = {"override": "pruning=none", "ignores": ["sparsity"]}
    assert sweeper(dense=dense).ignores == ["sparsity"]


def test_ddp_ranks_of_a_multirun_job_run_that_job_alone(hydra_job, tmp_path, monkeypatch):
    from lightning.fabric.strategies.launchers.subprocess_script import _hydra_subprocess_cmd

    overrides = ["trainer=ddp", "pruning=global", "sparsity=0.5", "+sweep=sparsity_grid"]
    hydra = hydra_job(overrides=overrides)
    # the sweep's own Hydra settings reach the ranks, its launcher and folders do not
    with read_write(hydra):
        hydra.overrides.hydra = [
            "hydra.job.env_set.X=1",
            "hydra/launcher=joblib",
            "hydra.sweep.dir=d",
        ]
    argv = ["train.py", "-m", "trainer=ddp", "pruning=global", "sparsity=0.5,0.75"]
    monkeypatch.setattr(sys, "argv", argv)
    job_dir = str(tmp_path / "multiruns" / "2026-11-22_21-00-00" / "3")
    with ddp_ranks_run_this_job(job_dir):
        command, _ = _hydra_subprocess_cmd(local_rank=1)
    # this job's overrides as a single run in this job's folder, not the sweep again
    args = command[command.index("hydra.job.env_set.X=1") :]  # after python + script
    assert args[:6] == ["hydra.job.env_set.X=1", *overrides, "hydra.mode=RUN"]
    assert "sparsity=0.5,0.75" not in command and "hydra/launcher=joblib" not in command
    assert command.count("-m") == (1 if command[1] == "-m" else 0)  # `python -m pytest` only
    assert f'hydra.run.dir="{job_dir}"' in args
    assert sys.argv == argv and hydra.run.dir == str(tmp_path / "run")  # put back


def test_single_runs_leave_lightning_alone(hydra_job, monkeypatch):
    hydra = hydra_job(mode=RunMode.RUN)
    monkeypatch.setattr(sys, "argv", ["train.py", "trainer=ddp"])
    with ddp_ranks_run_this_job("/elsewhere"):
        assert sys.argv == ["train.py", "trainer=ddp"] and hydra.run.dir.endswith("run")


def test_ddp_inside_joblib_workers_is_refused_naming_both(hydra_job):
    hydra_job(launcher=JOBLIB, n_jobs=2)
    with pytest.raises(ValueError, match="trainer.strategy=ddp trainer.devices=2 with hydra/"):
        check_launcher("ddp", 2)
    two = OmegaConf.create({"devices": [0, 1]}).devices  # as train() reads it from the config
    multis = [("fsdp", 1, 1), ("auto", 2, 1), ("auto", two, 1), ("auto", "0,1", 1)]
    for multi in [*multis, ("auto", "2", 1), ("auto", -1, 1), ("auto", 1, 2)]:
        with pytest.raises(ValueError, match="cannot run inside joblib workers"):
            check_launcher(*multi)
    check_launcher("auto")  # one process per job: fine
    check_launcher("auto", [0])
    check_launcher("auto", "auto")
    hydra_job(launcher=BASIC)
    check_launcher("ddp", 2)  # jobs one after another: each starts its own ranks
