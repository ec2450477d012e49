"""Files shipped with the package: templates and the bundled seed data."""

from __future__ import annotations

from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent


def _shipped(name: str) -> Path:
    """Inside an installed wheel the folder is in the package; in a checkout, beside it."""
    installed = PACKAGE / name
    return installed if installed.is_dir() else CHECKOUT / name


@cache
def seeds_dir() -> Path:
    return _shipped("seeds")


@cache  # asked for on every rendered page
def templates_dir() -> Path:
    return _shipped("templates")
