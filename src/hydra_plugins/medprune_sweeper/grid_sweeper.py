"""Hydra's cartesian grid, where a dense job (``pruning=none``) ignores ``sparsity``.

``-m pruning=none,global,layerwise sparsity=0.5,0.9375 seed=0,1`` is 2 dense + 8 pruned jobs,
not 12: the basic sweeper would train the same dense model once per sparsity.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.types import Override

log = logging.getLogger(__name__)


def _key(override: str) -> str:
    """``+sparsity=0.5`` -> ``sparsity``."""
    return override.split("=", 1)[0].lstrip("+~")


def drop_ignored_overrides(
    jobs: Sequence[Sequence[str]], trigger: str | None, ignores: Sequence[str]
) -> list[list[str]]:
    """Drop the ``ignores`` keys from every job holding the override ``trigger``, then the
    jobs that became repeats (the first of each stays, so job numbers follow the grid)."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for job in jobs:
        if trigger is not None and trigger in job:
            job = [o for o in job if _key(o) not in ignores]
        if tuple(job) not in seen:
            seen.add(tuple(job))
            kept.append(list(job))
    return kept


class GridSweeper(BasicSweeper):
    """``BasicSweeper`` plus ``dense``: ``{override: pruning=none, ignores: [sparsity]}``."""

    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        dense: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        dense = dense or {}
        self.trigger = dense.get("override")
        ignores = dense.get("ignores") or []
        if isinstance(ignores, str) or not all(isinstance(k, str) for k in ignores):
            raise ValueError(
                f"hydra.sweeper.dense.ignores={ignores!r}: expected a list of keys, e.g. [sparsity]"
            )
        self.ignores = list(ignores)

    def split_arguments(  # type: ignore[override]  # an instance method: it needs the dense keys
        self, overrides: list[Override], max_batch_size: int | None
    ) -> list[list[list[str]]]:
        (grid,) = BasicSweeper.split_arguments(overrides, None)
        jobs = drop_ignored_overrides(grid, self.trigger, self.ignores)
        if len(jobs) < len(grid):
            log.info(
                "%d jobs: %d repeats dropped (%s ignores %s)",
                len(jobs),
                len(grid) - len(jobs),
                self.trigger,
                ", ".join(self.ignores),
            )
        size = max_batch_size or len(jobs) or 1
        return [jobs[i : i + size] for i in range(0, len(jobs), size)]
