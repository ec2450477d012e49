"""Files shipped with the package: templates and the bundled seed data."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent


def _shipped(name: str) -> Path:
    """Inside an installed wheel the folder is in the package; in a checkout, beside it."""
    installed = PACKAGE / name
    return installed if installed.is_dir() else CHECKOUT / name


def seeds_dir() -> Path:
    return _shipped("seeds")


def templates_dir() -> Path:
    return _shipped("templates")
