"""Find the job folders of a Hydra multirun of train.py and read what each job left behind:
``.hydra/overrides.yaml`` (what the sweep changed), ``config.yaml`` (the resolved config) and,
once it finished, ``summary.json``; then pick the metric the report ranks by. A job without
summary.json failed or is still running: it is kept and reported, never dropped."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml

SUMMARY, CONFIG, OVERRIDES = "summary.json", "config.yaml", Path(".hydra") / "overrides.yaml"
# never jobs, and big: W&B's offline runs, checkpoints, submitit's logs, Hydra's own records
SKIP_DIRS = frozenset({"wandb", "checkpoints", ".submitit", ".hydra"})
SUMMARY_KEYS = ("task", "pruning", "metrics")
PRUNING_KEYS = ("scope", "target_sparsity", "achieved_sparsity", "compression_ratio")
# the only overrides jobs of one report may differ in: seeds are averaged over, pruning and
# sparsity make the rows
VARYING_KEYS = frozenset({"seed", "sparsity", "pruning"})
NOT_SET = "(not set)"
FAILED_REASON = "no summary.json (the job failed or is still running)"
# the metric conf/task/<task>.yaml monitors, on test: used when a job has no config.yaml
FALLBACK_METRICS = {"nuclei": ("test/aji", "max"), "cardiac": ("test/dice_mean", "max")}
# name parts of metrics where lower is better (--metric other than the monitored one)
LOWER_IS_BETTER = ("loss", "mse", "hd95")


class ReportError(ValueError):
    """Input the report cannot use; the message names the file or key and what was expected."""


def _number(value: Any) -> float:
    """NaN for what is not a number (e.g. null)."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if is_number else math.nan


class Job(NamedTuple):
    folder: Path
    name: str  # the folder relative to the report's root ("." when the root is the job)
    overrides: tuple[str, ...]
    config: dict[str, Any] | None
    summary: dict[str, Any] | None  # None: the job did not finish

    finished = property(lambda self: self.summary is not None)
    task = property(lambda self: str(self.summary["task"]))
    pruning = property(lambda self: self.summary["pruning"])
    scope = property(lambda self: str(self.pruning["scope"]))
    # rounded to 6 decimals so that 0.9375 from two jobs lands in one group
    target_sparsity = property(lambda self: round(float(self.pruning["target_sparsity"]), 6))
    achieved_sparsity = property(lambda self: _number(self.pruning["achieved_sparsity"]))
    # prunable weights / non-zero prunable weights; infinite when all of them are zero
    compression_ratio = property(lambda self: _number(self.pruning["compression_ratio"]))
    seed = property(lambda self: (self.config or {}).get("seed"))

    @property
    def metrics(self) -> dict[str, float]:  # the test metrics
        items = self.summary["metrics"].items()
        return {k: _number(v) for k, v in items if str(k).startswith("test/")}

    def describe(self) -> str:
        return f"{self.name} ({' '.join(self.overrides) or 'no overrides'})"


class JobSet(NamedTuple):
    root: Path
    finished: list[Job]
    failed: list[Job]


def load_jobs(root: str | Path, select: Sequence[str] = ()) -> JobSet:
    """Every job under ``root`` (finished and failed), checked to form one report; ``select``
    keeps only jobs with these ``key=value`` overrides."""
    root = Path(root)
    if not root.is_dir():
        why = "is not a folder" if root.exists() else "does not exist"
        raise ReportError(
            f"{root} {why}: expected the folder of a train.py multirun (e.g. "
            "logs/nuclei/multiruns/<time>)"
        )
    folders = find_job_folders(root)
    if not folders:
        raise ReportError(
            f"no train.py job found under {root}: expected <job>/{SUMMARY} or "
            f"<job>/{OVERRIDES.as_posix()} (the job folders `python train.py -m ...` writes)"
        )
    jobs = [_load_job(root, folder) for folder in folders]
    for text in select:
        if "=" not in text:
            raise ReportError(f"--select '{text}': expected key=value, e.g. model.depth=3")
    wanted = {parse_override(text) for text in select}
    jobs = [job for job in jobs if wanted <= {parse_override(o) for o in job.overrides}]
    if not jobs:
        raise ReportError(f"no job under {root} has the overrides {' '.join(select)}")
    finished = [job for job in jobs if job.finished]
    failed = [job for job in jobs if not job.finished]
    if not finished:
        listed = "; ".join(job.describe() for job in failed)
        raise ReportError(
            f"none of the {len(failed)} jobs under {root} finished (no {SUMMARY}): {listed}"
        )
    _check_one_report(finished)
    return JobSet(root, finished, failed)


def find_job_folders(root: Path) -> list[Path]:
    """Folders holding summary.json or .hydra/overrides.yaml, in natural order (2 before 10).
    A job's own subfolders are not searched: they hold logs, not jobs."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if SUMMARY in filenames or (Path(dirpath) / OVERRIDES).is_file():
            found.append(Path(dirpath))
            dirnames.clear()
        else:
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]

    def natural_key(folder: Path) -> list[Any]:
        # re.split with a group alternates text and digits, so positions always compare alike
        parts = re.split(r"(\d+)", folder.relative_to(root).as_posix())
        return [int(part) if part.isdigit() else part for part in parts]

    return sorted(found, key=natural_key)


def parse_override(text: str) -> tuple[str, str]:
    """``++model.depth=3`` -> ("model.depth", "3"); ``~logger`` -> ("logger", "(deleted)")."""
    key, _, value = text.partition("=")
    if key.startswith("~"):
        return key.lstrip("~"), "(deleted)"
    return key.lstrip("+").strip(), value.strip()


def _check_one_report(jobs: Sequence[Job]) -> None:
    """One task; no override but seed, sparsity and pruning differing (jobs differing in e.g.
    model.base_channels would be averaged as if they were seeds); each seed once per row."""
    by_task: dict[str, list[Job]] = {}
    for job in jobs:
        by_task.setdefault(job.task, []).append(job)
    if len(by_task) > 1:
        parts = [
            f"{task} ({len(members)} job{'' if len(members) == 1 else 's'}, e.g. {members[0].name})"
            for task, members in sorted(by_task.items())
        ]
        raise ReportError(
            f"the jobs come from {len(by_task)} tasks: {', '.join(parts)}; a report compares "
            "one task: pass each task's multirun folder separately"
        )
    parsed = [dict(parse_override(text) for text in job.overrides) for job in jobs]
    for key in sorted(set().union(*parsed) - VARYING_KEYS):
        values = sorted({overrides.get(key, NOT_SET) for overrides in parsed})
        if len(values) > 1:
            example = next(v for v in values if v != NOT_SET)
            raise ReportError(
                f"the jobs differ in override '{key}' (values: {', '.join(values)}): the report "
                "averages over seeds only, rows are pruning and sparsity; report each "
                f"setting's jobs separately, e.g. with --select {key}={example}"
            )
    # repeats (two sweeps under one folder, or a dense model trained once per sparsity by
    # Hydra's basic sweeper) would shrink the std
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
    overrides = _read_yaml(folder / OVERRIDES, [])
    if not isinstance(overrides, list):
        raise ReportError(f"{folder / OVERRIDES}: expected a YAML list of override strings")
    config = _read_yaml(folder / CONFIG, None)
    if config is not None and not isinstance(config, dict):
        raise ReportError(f"{folder / CONFIG}: expected a YAML mapping (the job's resolved config)")
    seed = (config or {}).get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ReportError(f"{folder / CONFIG}: seed={seed!r}, expected an integer")
    summary = _read_summary(folder / SUMMARY) if (folder / SUMMARY).is_file() else None
    name = folder.relative_to(root).as_posix()
    return Job(folder, name, tuple(str(o) for o in overrides), config, summary)


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        summary = json.loads(path.read_text())
    except ValueError as err:  # also UnicodeDecodeError
        raise ReportError(f"{path} is not valid JSON ({err}): expected a train.py summary") from err
    keys = ", ".join(SUMMARY_KEYS)
    if not isinstance(summary, dict):
        raise ReportError(f"{path}: expected a JSON object with keys {keys}")
    if "ckpt" in summary and "baseline" in summary:
        raise ReportError(
            f"{path} is a prune.py summary (it has 'ckpt' and 'baseline'): this report reads the "
            f"summary.json of train.py jobs (keys {keys})"
        )
    for key in SUMMARY_KEYS:
        if key not in summary:
            raise ReportError(f"{path} lacks key '{key}': a train.py summary.json has {keys}")
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


def _read_yaml(path: Path, missing: Any) -> Any:
    """The file's content, ``missing`` when there is no such file."""
    if not path.is_file():
        return missing
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, ValueError) as err:
        raise ReportError(f"{path} is not valid YAML: {err}") from err


def main_metric(
    jobs: Sequence[Job], metric: str | None = None, mode: str | None = None
) -> tuple[str, str]:
    """(test metric, "max" | "min"): --metric/--mode when given, else the jobs' monitor.metric
    (config.yaml) with val/ read as test/, else the task's usual metric, higher is better."""
    found = set()
    for job in jobs:
        monitor = (job.config or {}).get("monitor")
        if isinstance(monitor, dict) and monitor.get("metric"):
            name = str(monitor["metric"])
            name = "test/" + name[len("val/") :] if name.startswith("val/") else name
            found.add((name, str(monitor.get("mode", "max"))))
    if len(found) > 1:
        listed = ", ".join(f"{m} ({mode})" for m, mode in sorted(found))
        raise ReportError(
            f"the jobs' {CONFIG} monitor different metrics: {listed}; pass --metric and --mode"
        )
    task = jobs[0].task
    monitored = found.pop() if found else FALLBACK_METRICS.get(task)
    if metric is None:
        if monitored is None:
            raise ReportError(
                f"no main metric: the jobs have no {CONFIG} with monitor.metric and task "
                f"'{task}' has no default; pass --metric (one of: "
                f"{', '.join(sorted(jobs[0].metrics))})"
            )
        metric = monitored[0]
    if mode is None and monitored is not None and metric == monitored[0]:
        mode = monitored[1]
    elif mode is None:
        mode = "min" if any(part in metric for part in LOWER_IS_BETTER) else "max"
    if mode not in ("max", "min"):
        raise ReportError(f"mode '{mode}': expected max (higher is better) or min")
    for job in jobs:
        if metric not in job.metrics:
            raise ReportError(
                f"{job.folder / SUMMARY} has no metric '{metric}' (available test metrics: "
                f"{', '.join(sorted(job.metrics)) or 'none'}); pass --metric with one of them"
            )
    return metric, mode
