"""Output files that never replace anything: claimed before they are written, removed again
when writing them fails, so a failed input leaves no half-written result behind."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def new_files(paths: Sequence[Path]) -> Iterator[None]:
    """Create every path empty and exclusively (FileExistsError if one exists), let the block
    write them, and remove those this call created if the block raises."""
    created = []
    try:
        for path in paths:
            open(path, "xb").close()
            created.append(path)
        yield
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
