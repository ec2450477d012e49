"""Version ranges of the dependencies whose private APIs the product uses."""

from __future__ import annotations

from importlib import metadata

from packaging.requirements import Requirement
from packaging.version import Version


def pinned_below_next_minor(distribution: str) -> bool:
    """Whether seo-engine's requirement on `distribution` admits the installed version and
    not the next minor: a release that may move the private API we use."""
    installed = Version(metadata.version(distribution))
    next_minor = Version(f"{installed.major}.{installed.minor + 1}")
    for line in metadata.requires("seo-engine") or []:
        requirement = Requirement(line)
        if requirement.name.lower() == distribution.lower() and requirement.marker is None:
            specifier = requirement.specifier
            return specifier.contains(installed) and not specifier.contains(next_minor)
    return False
