"""Argument checks with one message style: ``<key>=<value>: expected <what>``.

``key`` is what the user wrote: a Hydra key (``data.batch_size``, ``pruning.begin``) when
the caller knows it, the argument's name otherwise. Booleans are refused where a number is
expected (``True`` is an ``int`` to Python, never a count or a fraction to a user).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value: object, key: str, low: int = 1, *, what: str | None = None) -> int:
    """An integer >= ``low`` (a count: steps, epochs, threads, px); ``what`` replaces the
    default description in the message (``null or an integer >= 1`` for an optional one)."""
    if not _is_int(value) or value < low:
        raise ValueError(f"{key}={value!r}: expected {what or f'an integer >= {low}'}")
    return int(value)


def check_range(
    value: object,
    key: str,
    low: float = 0.0,
    high: float = 1.0,
    *,
    low_open: bool = False,
    high_open: bool = True,
    what: str = "a number",
) -> float:
    """A number in the interval from ``low`` to ``high``, by default ``[0, 1)`` (a fraction:
    sparsity, overlap, a share of the run's steps)."""
    ok = _is_number(value)
    ok = ok and (low < value if low_open else low <= value)
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{key}={value!r}: expected {what} in {interval}")
    return float(value)


def check_positive(value: object, key: str, what: str = "a number") -> float:
    """A finite number > 0 (a learning rate, a time in ms)."""
    if not _is_number(value) or not 0 < value < float("inf"):
        raise ValueError(f"{key}={value!r}: expected {what} > 0")
    return float(value)


def check_choice(value: Any, key: str, allowed: Iterable[Any]) -> Any:
    """One of ``allowed`` (a scope, a schedule, a file format)."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{key}={value!r}: expected one of {', '.join(map(str, allowed))}")
    return value


def check_bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key}={value!r}: expected true or false")
    return value


def check_ints(
    values: object, key: str, length: int | None = None, low: int = 1, what: str | None = None
) -> list[int]:
    """A list of integers >= ``low``, of ``length`` items when given (a size [H, W] in px);
    ``what`` replaces the default description in the message."""
    is_list = isinstance(values, Iterable) and not isinstance(values, (str, bytes))
    items = list(values) if is_list else []
    ok = is_list and (length is None or len(items) == length)
    if not ok or not all(_is_int(v) and v >= low for v in items):
        count = f"{length} " if length else ""
        raise ValueError(
            f"{key}={values!r}: expected {what or f'a list of {count}integers >= {low}'}"
        )
    return [int(v) for v in items]


def check_data_ints(**keys: tuple[object, int]) -> None:
    """DataModule arguments: ``name=(value, minimum)``, named ``data.<name>`` in messages."""
    for name, (value, minimum) in keys.items():
        check_int(value, f"data.{name}", minimum)
