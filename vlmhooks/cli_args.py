"""Shared command-line plumbing: argparse value types and the width of printed tables."""

from __future__ import annotations

import argparse
import math
import sys

__all__ = ["PIPED_TABLE_WIDTH", "port_number", "positive_int", "positive_seconds", "table_width"]

# Piped output has no terminal width; rich's 80-column default would squeeze the ids.
PIPED_TABLE_WIDTH = 200


def positive_int(text: str) -> int:
    """A whole number of at least 1, in ASCII digits (``int()`` would take "+1" and "٣")."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def port_number(text: str) -> int:
    """A TCP port, 1-65535: a port out of range is an `OverflowError` traceback at bind."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def positive_seconds(text: str) -> float:
    """A finite number of seconds above 0: ``float()`` also takes "nan", "inf" and "1e400"."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


def table_width() -> int | None:
    """The width to print a table at: the terminal's (None lets rich ask), or a wide one when
    piped."""
    return None if sys.stdout.isatty() else PIPED_TABLE_WIDTH
