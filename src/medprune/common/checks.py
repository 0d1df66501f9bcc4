"""Checks of DataModule arguments, with messages that name the config key (``data.<name>``)."""

from __future__ import annotations

import numbers


def check_data_ints(**keys: tuple[object, int]) -> None:
    """``name=(value, minimum)``: each value must be an integer (not a bool) >= its minimum."""
    for name, (value, minimum) in keys.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ValueError(f"data.{name}={value!r}: expected an integer >= {minimum}")
