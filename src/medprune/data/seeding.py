"""Per-process random streams for data loading that follow ``seed_everything``.

Lightning seeds torch, numpy and ``random`` alike on every DDP rank, and albumentations'
``Compose`` ignores all of them (it draws from its own generator, seeded from OS entropy
unless given a seed). So without care, augmentations never repeat between runs of one seed,
forked loader workers replay the same augmentation sequence, and draws from torch's global
RNG in the main process are identical on every rank. Here each process (rank x loader
worker) derives its own seed from torch's seed, its rank and its worker id, on first use.
"""

from __future__ import annotations

import os

import albumentations as A
import numpy as np
import torch
from torch.utils.data import get_worker_info


def process_rank() -> int:
    """This process's rank in the default process group (0 without distributed training)."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def process_seed(stream: int = 0) -> int:
    """A 63-bit seed for this process and ``stream`` (independent uses in one process get
    different streams), from ``torch.initial_seed()`` (set by ``seed_everything``; in a
    loader worker, the worker's seed), the DDP rank and the loader worker id."""
    worker = get_worker_info()
    key = [torch.initial_seed(), process_rank(), worker.id if worker else 0, stream]
    return int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0] >> 1)


class ProcessSeeded:
    """Mixin for objects that keep their own random state: ``new_process_seed(stream)`` is
    ``process_seed(stream)`` on the first call in each process (a forked loader worker is a
    new process) and None after, when the state seeded from it is still this process's."""

    _seeded_pid = -1

    def new_process_seed(self, stream: int) -> int | None:
        if self._seeded_pid == os.getpid():
            return None
        self._seeded_pid = os.getpid()
        return process_seed(stream)


class SeededCompose(ProcessSeeded, A.Compose):
    """``albumentations.Compose`` reseeded from ``process_seed()`` on its first call in each
    process, so augmentations repeat for a seed and differ between ranks and workers."""

    def __call__(self, *args, **data):
        seed = self.new_process_seed(stream=0)
        if seed is not None:
            self.set_random_seed(seed)
        return super().__call__(*args, **data)
