"""HTML rendering: one autoescaping Jinja2 environment per site over templates/."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import orjson

from seo_engine import resources
from seo_engine.sites import Site

SITE_OVERRIDES = "sites"  # templates/sites/<site slug>/page.html overrides templates/page.html


class _PageEnvironment(jinja2.Environment):
    """Templates read page data from plain dicts: `page.title` looks the key up first.

    Jinja's default tries a Python attribute first and falls back to the key, which made
    attribute access a sixth of rendering a page.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


def _dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value).decode()


@lru_cache(maxsize=64)
def environment(templates: Path, site_slug: str) -> jinja2.Environment:
    """The site's environment: its own overrides first, then the shared templates.

    Autoescape is on for every template whatever its name (Starlette's default only
    escapes .html/.xml names), and templates only come from the project's folder.
    """
    loader = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(templates / SITE_OVERRIDES / site_slug),
            jinja2.FileSystemLoader(templates),
        ]
    )
    environment = _PageEnvironment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    environment.policies["json.dumps_function"] = _dumps  # |tojson, still HTML-escaped
    return environment


@lru_cache(maxsize=8)
def template_version(templates: Path) -> str:
    """A short hash of every template file: part of each page's ETag."""
    digest = hashlib.blake2b(digest_size=6)
    for path in sorted(templates.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(templates)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def render(site: Site, name: str, **context: Any) -> str:
    """Render one of the page templates for a site."""
    templates = resources.templates_dir()
    return environment(templates, site.slug).get_template(name).render(site=site, **context)


def page_etag(content_hash: bytes) -> str:
    """Strong ETag of a rendered page: stored content hash plus template version."""
    return f'"{content_hash.hex()}-{template_version(resources.templates_dir())}"'


def body_etag(body: bytes) -> str:
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
