"""``python -m medprune.report <multirun dir>``: the quality-vs-sparsity report of a sweep."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from medprune.report.build import OUTPUTS, build_report
from medprune.report.jobs import FAILED_REASON, ReportError

DESCRIPTION = """\
Quality vs sparsity over a Hydra multirun of train.py: every job folder below the root (one
holding summary.json or .hydra/overrides.yaml) is read, grouped by pruning scope and target
sparsity and averaged over seeds into report.csv, jobs.csv, report.md and
quality_vs_sparsity.png. See docs/sweeps.md for the outputs, the crossover and the checks."""

EPILOG = """\
example: python -m medprune.report logs/nuclei/multiruns/<time>
Exit status 2 on bad input (the message names the file or key)."""


def parser() -> argparse.ArgumentParser:
    """The options are named (dest) after build_report's parameters."""
    p = argparse.ArgumentParser(
        prog="python -m medprune.report",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", help="the multirun folder (or any folder holding train.py jobs)")
    p.add_argument("--out", help="folder for the report files (default: the multirun folder)")
    p.add_argument(
        "--metric",
        help="main metric, a key of summary.json's metrics (default: the jobs' monitor.metric "
        "with val/ read as test/, e.g. test/aji)",
    )
    p.add_argument(
        "--mode",
        choices=("max", "min"),
        help="max: higher is better, min: lower is better (default: the jobs' monitor.mode "
        "for the monitored metric, else min for loss, mse and hd95 metrics, max otherwise)",
    )
    p.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only jobs with this override (repeatable), for sweeps over other settings",
    )
    p.add_argument("--force", action="store_true", help=f"overwrite {', '.join(OUTPUTS)}")
    p.add_argument(
        "--wandb",
        dest="log_wandb",
        action="store_true",
        help="also log the table and the plot to W&B (offline unless WANDB_MODE is set), in "
        "the project and group of the jobs' logger.wandb",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        report = build_report(**vars(parser().parse_args(argv)))
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for job in report.failed:
        print(f"failed job {job.describe()}: {FAILED_REASON}", file=sys.stderr)
    for point in report.skipped:
        print(f"not plotted: {point}", file=sys.stderr)
    print(f"{len(report.finished)} jobs finished, {len(report.failed)} failed")
    print(f"wrote {', '.join(OUTPUTS)} to {report.out}")
    print(f"crossover: {report.crossover.text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
