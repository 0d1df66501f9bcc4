"""Which test metric the report ranks by, and whether higher or lower is better.

By default the metric the jobs' checkpointing monitored (``monitor.metric`` in config.yaml),
read on the test set: val/aji -> test/aji, val/dice_mean -> test/dice_mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from medprune.report.jobs import CONFIG, SUMMARY, Job, ReportError

# the metric conf/task/<task>.yaml monitors, on test: used when a job has no config.yaml
FALLBACK_METRICS = {"nuclei": "test/aji", "cardiac": "test/dice_mean"}
# name parts of metrics where lower is better (--metric other than the monitored one)
LOWER_IS_BETTER = ("loss", "mse", "hd95")


def main_metric(
    jobs: Sequence[Job], metric: str | None = None, mode: str | None = None
) -> tuple[str, str]:
    """(test metric, "max" | "min"): --metric/--mode when given, else what the jobs' config
    monitors with val/ read as test/, else the task's usual metric, higher is better."""
    monitored = _monitored(jobs)
    if monitored is None and jobs[0].task in FALLBACK_METRICS:
        monitored = (FALLBACK_METRICS[jobs[0].task], "max")
    if metric is None:
        if monitored is None:
            raise ReportError(
                f"no main metric: the jobs have no {CONFIG} with monitor.metric and task "
                f"'{jobs[0].task}' has no default; pass --metric (one of: "
                f"{', '.join(sorted(jobs[0].metrics))})"
            )
        metric = monitored[0]
    if mode is None:
        if monitored is not None and metric == monitored[0]:
            mode = monitored[1]
        else:
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


def _monitored(jobs: Iterable[Job]) -> tuple[str, str] | None:
    found = set()
    for job in jobs:
        monitor = (job.config or {}).get("monitor")
        if isinstance(monitor, dict) and monitor.get("metric"):
            metric = str(monitor["metric"])
            if metric.startswith("val/"):
                metric = "test/" + metric[len("val/") :]
            found.add((metric, str(monitor.get("mode", "max"))))
    if len(found) > 1:
        listed = ", ".join(f"{m} ({mode})" for m, mode in sorted(found))
        raise ReportError(
            f"the jobs' {CONFIG} monitor different metrics: {listed}; pass --metric and --mode"
        )
    return found.pop() if found else None
