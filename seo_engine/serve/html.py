"""HTML rendering: one autoescaping Jinja2 environment per site over templates/."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jinja2
import orjson
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import Expr, Output
from markupsafe import Markup, escape

from seo_engine import etags, resources
from seo_engine.ingest.sites import Site

# Private APIs, kept because they pay (bench/RESULTS.md, 2026-12-02) and pinned in
# pyproject.toml (jinja2 <3.2, markupsafe <3.1); tests/test_html.py fails if they move.
try:  # MarkupSafe's C escaping of a str, without wrapping the result in Markup
    from markupsafe._speedups import _escape_inner
except ImportError:  # pragma: no cover (pure-Python MarkupSafe)

    def _escape_inner(text: str, /) -> str:
        return str(escape(text))


SITE_OVERRIDES = "sites"  # templates/sites/<site slug>/page.html overrides templates/page.html


def escape_output(value: Any) -> str:
    """What `{{ value }}` writes in an autoescaped template: `markupsafe.escape(value)`,
    but without wrapping it in Markup, since output is only joined; a number's digits need
    no escaping (a page writes about fifteen numbers)."""
    kind = type(value)
    if kind is str:
        return _escape_inner(value)
    if kind is int or kind is float:
        return str(value)
    return escape(value)


class _PageCodeGenerator(CodeGenerator):
    """Compiles autoescaped output to `escape_output(…)` (markupsafe's `escape` wraps every
    value in a Markup object: a page took 42% more instructions with it) and each output
    statement to one `yield` (10% more without). Both override Jinja's compiler internals
    (`_output_child_pre`, `visit_Output`); a test compares the output with plain Jinja's."""

    def _output_child_pre(
        self, node: Expr, frame: Frame, finalize: CodeGenerator._FinalizeInfo
    ) -> None:
        if frame.eval_ctx.volatile or not frame.eval_ctx.autoescape:
            super()._output_child_pre(node, frame, finalize)
            return
        self.write("environment.escape_output(")
        if finalize.src is not None:
            self.write(finalize.src)

    def visit_Output(self, node: Output, frame: Frame) -> None:
        """One `yield` per output statement, of its parts joined, instead of one per part
        (about 250 a page): each yield passes through the block's, the layout's and the
        page's generators."""
        if frame.buffer is not None or frame.require_output_check or len(node.nodes) < 2:
            super().visit_Output(node, frame)
            return
        self.writeline("_output = []")
        frame.buffer = "_output"
        try:
            super().visit_Output(node, frame)
        finally:
            frame.buffer = None
        self.writeline("yield concat(_output)")


class _PageEnvironment(jinja2.Environment):
    """Templates read page data from plain dicts: `page.title` looks the key up first.

    Jinja's default tries a Python attribute first and falls back to the key, which made
    attribute access a sixth of rendering a page.
    """

    code_generator_class = _PageCodeGenerator
    escape_output = staticmethod(escape_output)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


HTML_UNSAFE_JSON = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"), (b"'", b"\\u0027"))


def numbered(items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
    """`{% for number, item in items|numbered %}`: numbers from 1, without the `loop`
    object (Jinja builds one per loop that mentions it: a seventh of rendering a page)."""
    return enumerate(items, 1)


def tojson(value: Any, indent: int | None = None) -> Markup:
    """`|tojson`: JSON safe inside HTML and `<script>`, as Jinja's filter writes it (`<`,
    `>`, `&` and `'` as \\u escapes), from orjson's bytes (half the time of Jinja's)."""
    if indent is not None:
        return jinja2.utils.htmlsafe_json_dumps(value, indent=indent)
    text = orjson.dumps(value)
    for char, code in HTML_UNSAFE_JSON:
        text = text.replace(char, code)
    return Markup(text.decode())


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
    environment.filters["tojson"] = tojson
    environment.filters["numbered"] = numbered
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


@cache  # asked for on every conditional request for a page
def current_template_version() -> str:
    return template_version(resources.templates_dir())


def page_etag(content_hash: bytes) -> str:
    """A rendered page's ETag under the current page templates."""
    return etags.of_page(content_hash, current_template_version())
