"""Find the job folders of a Hydra multirun of train.py and read what each job left behind.

A job folder holds ``.hydra/overrides.yaml`` (what the sweep changed for it), ``config.yaml``
(its resolved config, written at job start) and, once the job finished, ``summary.json``. A
folder without ``summary.json`` is a job that failed or is still running: it is kept and
reported, never dropped.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SUMMARY = "summary.json"
OVERRIDES = Path(".hydra") / "overrides.yaml"
CONFIG = "config.yaml"
# never jobs, and big: W&B's offline runs, checkpoints, submitit's logs, Hydra's own records
SKIP_DIRS = frozenset({"wandb", "checkpoints", ".submitit", ".hydra"})
SUMMARY_KEYS = ("task", "pruning", "metrics")
PRUNING_KEYS = ("scope", "target_sparsity", "achieved_sparsity", "compression_ratio")
# the only overrides jobs of one report may differ in: seeds are averaged over, pruning and
# sparsity make the rows
VARYING_KEYS = frozenset({"seed", "sparsity", "pruning"})
NOT_SET = "(not set)"
FAILED_REASON = "no summary.json (the job failed or is still running)"


class ReportError(ValueError):
    """Input the report cannot use; the message names the file or key and what was expected."""


@dataclass(frozen=True)
class Job:
    """One job folder; ``summary`` is None when the job did not finish."""

    folder: Path
    name: str  # the folder relative to the report's root ("." when the root is the job)
    overrides: tuple[str, ...]
    config: dict[str, Any] | None
    summary: dict[str, Any] | None

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def task(self) -> str:
        return str(self.summary["task"])

    @property
    def scope(self) -> str:
        return str(self.summary["pruning"]["scope"])

    @property
    def target_sparsity(self) -> float:
        """Rounded to 6 decimals so that 0.9375 from two jobs lands in one group."""
        return round(float(self.summary["pruning"]["target_sparsity"]), 6)

    @property
    def achieved_sparsity(self) -> float:
        return _number(self.summary["pruning"]["achieved_sparsity"])

    @property
    def compression_ratio(self) -> float:
        """Prunable weights / non-zero prunable weights; infinite when all of them are zero."""
        return _number(self.summary["pruning"]["compression_ratio"])

    @property
    def seed(self) -> int | None:
        return (self.config or {}).get("seed")

    @property
    def metrics(self) -> dict[str, float]:
        """The test metrics; NaN for a value that is not a number (e.g. null)."""
        items = self.summary["metrics"].items()
        return {k: _number(v) for k, v in items if str(k).startswith("test/")}

    def describe(self) -> str:
        overrides = " ".join(self.overrides) or "no overrides"
        return f"{self.name} ({overrides})"


@dataclass(frozen=True)
class JobSet:
    root: Path
    finished: list[Job]
    failed: list[Job]


def load_jobs(root: str | Path, select: Sequence[str] = ()) -> JobSet:
    """Every job under ``root`` (finished and failed), checked to form one report: one task,
    and no override other than seed, sparsity and pruning that differs between finished jobs.
    ``select`` keeps only jobs with these ``key=value`` overrides."""
    root = Path(root)
    expected = "expected the folder of a train.py multirun (e.g. logs/nuclei/multiruns/<time>)"
    if not root.exists():
        raise ReportError(f"{root} does not exist: {expected}")
    if not root.is_dir():
        raise ReportError(f"{root} is not a folder: {expected}")
    folders = find_job_folders(root)
    if not folders:
        raise ReportError(
            f"no train.py job found under {root}: expected <job>/{SUMMARY} or "
            f"<job>/{OVERRIDES.as_posix()} (the job folders `python train.py -m ...` writes)"
        )
    jobs = _select([_load_job(root, folder) for folder in folders], select, root)
    finished = [job for job in jobs if job.finished]
    failed = [job for job in jobs if not job.finished]
    if not finished:
        listed = "; ".join(job.describe() for job in failed)
        raise ReportError(
            f"none of the {len(failed)} jobs under {root} finished (no {SUMMARY}): {listed}"
        )
    check_one_task(finished)
    check_one_setting(finished)
    check_seeds_once(finished)
    return JobSet(root, finished, failed)


def find_job_folders(root: Path) -> list[Path]:
    """Folders holding summary.json or .hydra/overrides.yaml, in natural order (2 before 10).
    A job's own subfolders are not searched: they hold logs, not jobs."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if SUMMARY in filenames or (here / OVERRIDES).is_file():
            found.append(here)
            dirnames.clear()
        else:
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
    return sorted(found, key=lambda folder: _natural_key(folder.relative_to(root).as_posix()))


def parse_override(text: str) -> tuple[str, str]:
    """``++model.depth=3`` -> ("model.depth", "3"); ``~logger`` -> ("logger", "(deleted)")."""
    key, _, value = text.partition("=")
    if key.startswith("~"):
        return key.lstrip("~"), "(deleted)"
    return key.lstrip("+").strip(), value.strip()


def check_one_task(jobs: Sequence[Job]) -> None:
    by_task: dict[str, list[Job]] = {}
    for job in jobs:
        by_task.setdefault(job.task, []).append(job)
    if len(by_task) > 1:
        parts = [
            f"{task} ({_count(len(members), 'job')}, e.g. {members[0].name})"
            for task, members in sorted(by_task.items())
        ]
        raise ReportError(
            f"the jobs come from {len(by_task)} tasks: {', '.join(parts)}; a report compares "
            "one task: pass each task's multirun folder separately"
        )


def check_one_setting(jobs: Sequence[Job]) -> None:
    """Jobs differing in e.g. model.base_channels would be averaged as if they were seeds."""
    parsed = [dict(parse_override(text) for text in job.overrides) for job in jobs]
    keys = set().union(*parsed) - VARYING_KEYS
    for key in sorted(keys):
        values = sorted({overrides.get(key, NOT_SET) for overrides in parsed})
        if len(values) > 1:
            example = next(v for v in values if v != NOT_SET)
            raise ReportError(
                f"the jobs differ in override '{key}' (values: {', '.join(values)}): the report "
                "averages over seeds only, rows are pruning and sparsity; report each "
                f"setting's jobs separately, e.g. with --select {key}={example}"
            )


def check_seeds_once(jobs: Sequence[Job]) -> None:
    """A seed counts once per row: repeats (two sweeps under one folder, or a dense model
    trained once per sparsity by Hydra's basic sweeper) would shrink the std."""
    seen: dict[tuple[str, float, int | None], Job] = {}
    for job in jobs:
        key = (job.scope, job.target_sparsity, job.seed)
        if key in seen:
            raise ReportError(
                f"jobs {seen[key].name} and {job.name} are both {job.scope} at target sparsity "
                f"{job.target_sparsity:g} with seed {job.seed}: each seed counts once in a row; "
                "report each sweep's folder separately (or remove the repeat)"
            )
        seen[key] = job


def _load_job(root: Path, folder: Path) -> Job:
    overrides_path = folder / OVERRIDES
    overrides = _read_yaml(overrides_path) if overrides_path.is_file() else []
    if not isinstance(overrides, list):
        raise ReportError(f"{overrides_path}: expected a YAML list of override strings")
    config_path = folder / CONFIG
    config = _read_yaml(config_path) if config_path.is_file() else None
    if config is not None and not isinstance(config, dict):
        raise ReportError(f"{config_path}: expected a YAML mapping (the job's resolved config)")
    seed = (config or {}).get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ReportError(f"{config_path}: seed={seed!r}, expected an integer")
    summary_path = folder / SUMMARY
    summary = _read_summary(summary_path) if summary_path.is_file() else None
    name = folder.relative_to(root).as_posix()
    return Job(folder, name, tuple(str(o) for o in overrides), config, summary)


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        summary = json.loads(path.read_text())
    except ValueError as err:  # also UnicodeDecodeError
        raise ReportError(f"{path} is not valid JSON ({err}): expected a train.py summary") from err
    if not isinstance(summary, dict):
        raise ReportError(f"{path}: expected a JSON object with keys {', '.join(SUMMARY_KEYS)}")
    if "ckpt" in summary and "baseline" in summary:
        raise ReportError(
            f"{path} is a prune.py summary (it has 'ckpt' and 'baseline'): this report reads the "
            f"summary.json of train.py jobs (keys {', '.join(SUMMARY_KEYS)})"
        )
    for key in SUMMARY_KEYS:
        if key not in summary:
            raise ReportError(
                f"{path} lacks key '{key}': a train.py summary.json has {', '.join(SUMMARY_KEYS)}"
            )
    for key in ("pruning", "metrics"):
        if not isinstance(summary[key], dict):
            raise ReportError(f"{path}: '{key}' should be a JSON object")
    for key in PRUNING_KEYS:
        if key not in summary["pruning"]:
            raise ReportError(f"{path} lacks key 'pruning.{key}' (a train.py summary has it)")
    target = summary["pruning"]["target_sparsity"]
    if isinstance(target, bool) or not isinstance(target, (int, float)):
        raise ReportError(f"{path}: pruning.target_sparsity={target!r}, expected a number")
    return summary


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, ValueError) as err:
        raise ReportError(f"{path} is not valid YAML: {err}") from err


def _select(jobs: list[Job], select: Sequence[str], root: Path) -> list[Job]:
    wanted = []
    for text in select:
        if "=" not in text:
            raise ReportError(f"--select '{text}': expected key=value, e.g. model.depth=3")
        wanted.append(parse_override(text))
    if not wanted:
        return jobs
    kept = [
        job
        for job in jobs
        if all(pair in {parse_override(o) for o in job.overrides} for pair in wanted)
    ]
    if not kept:
        raise ReportError(f"no job under {root} has the overrides {' '.join(select)}")
    return kept


def _number(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


def _natural_key(text: str) -> list[Any]:
    # re.split with a group alternates text and digits, so positions always compare alike
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
