"""The page templates' environment: autoescaped output, written by our own escape call."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import markupsafe._speedups
import orjson
import pytest
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup, escape

from seo_engine.serve import html
from tests.pins import pinned_below_next_minor

HOSTILE = '</script><script>alert("x")</script>\'"&<b>'


def test_output_is_escaped_exactly_like_markupsafe_escape() -> None:
    for value in (
        HOSTILE,
        "plain",
        42,
        -7,
        2**70,
        1.5,
        -2.5e300,
        float("nan"),
        float("inf"),
        True,
        None,
        Markup("<b>safe</b>"),
    ):
        assert html.escape_output(value) == str(escape(value))


def test_templates_escape_values_but_keep_safe_markup_and_json(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text(
        "{{ x }}|{{ x|safe }}|{{ x ~ '!' }}|{% autoescape false %}{{ x }}{% endautoescape %}|"
        "{{ y|tojson }}"
    )
    rendered = (
        html.environment(tmp_path, "test")
        .get_template("page.html")
        .render(x=HOSTILE, y={"a": HOSTILE})
    )
    escaped, safe, joined, raw, data = rendered.split("|")
    assert (escaped, safe, joined, raw) == (str(escape(HOSTILE)), HOSTILE, escaped + "!", HOSTILE)
    assert "<" not in data and json.loads(data) == {"a": HOSTILE}


def test_tojson_writes_what_jinjas_filter_writes() -> None:
    for value in ({"a": HOSTILE, "b": [1, 2.5, None, True]}, HOSTILE, "ok", ["<&>'"]):
        expected = htmlsafe_json_dumps(value, dumps=lambda v, **_: orjson.dumps(v).decode())
        assert html.tojson(value) == expected and isinstance(html.tojson(value), Markup)


def test_tojson_with_an_indent_is_still_safe_in_html() -> None:
    written = html.tojson({"a": HOSTILE}, indent=2)
    assert "\n  " in written and "<" not in written and "'" not in written
    assert json.loads(written) == {"a": HOSTILE} and isinstance(written, Markup)


def test_templates_render_what_plain_jinja_renders(tmp_path: Path) -> None:
    """Our code generator (escaping, one yield per output statement) and dict-first
    attribute lookup change nothing a template writes: layouts, blocks, loops, macros,
    call and filter blocks, includes, attribute access on dicts and other objects."""
    (tmp_path / "layout.html").write_text(
        "<title>{% block title %}{{ x }}{% endblock %}</title>{% block main %}{% endblock %}"
        "{% include 'part.html' %}{% include 'part.html' without context %}"
    )
    (tmp_path / "part.html").write_text("[{{ x is defined and x }}|{{ 1 + 1 }}]")
    (tmp_path / "page.html").write_text(
        "{% extends 'layout.html' %}{% macro item(v) %}<i>{{ v }}{{ caller() }}</i>{% endmacro %}"
        "{% block title %}{{ super() }}-{{ n }}{% endblock %}{% block main %}"
        "{% for v in items %}{{ loop.index }}:{{ v }},{% else %}none{% endfor %}"
        "{% set joined %}{{ items|join('/') }}<{{ x }}{% endset %}{{ joined }}"
        "{% call item(x) %}+{{ n * 2 }}{% endcall %}"
        "{% filter upper %}{{ x }}a{{ n }}{% endfilter %}"
        "{% if n > 1 %}{{ x }}{{ n }}{% else %}{{ n }}{% endif %}{{ x|safe }}"
        "{{ d.a.b }}{{ d.a.b ~ d.c }}{% for e in d.list %}{{ e.k }}{{ loop.last }}{% endfor %}"
        "{{ d.obj.real }}{{ d['c'] }}{{ (d.a if n else d).b }}{% endblock %}"
    )
    d = {"a": {"b": HOSTILE}, "c": 1.5, "list": [{"k": "<1>"}, {"k": 2}], "obj": 3}
    context = {"x": HOSTILE, "n": 3, "items": ["a<", 2, None, Markup("<b>")], "d": d}
    ours = html.environment(tmp_path, "test").get_template("page.html").render(**context)
    plain = jinja2.Environment(
        loader=jinja2.FileSystemLoader(tmp_path),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    assert ours == plain.get_template("page.html").render(**context)
    assert str(escape(HOSTILE)) in ours and "none" not in ours


def test_a_missing_key_is_an_error_not_an_empty_string(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("{{ page.title }}|{{ page.missing }}")
    template = html.environment(tmp_path, "test").get_template("page.html")
    with pytest.raises(jinja2.UndefinedError, match="missing"):
        template.render(page={"title": "t"})


def test_output_statements_compile_to_our_escape_call_and_one_yield(tmp_path: Path) -> None:
    """Fails if Jinja moves the compiler internals we override (`_output_child_pre`,
    `visit_Output`): our code would no longer be called, and pages would render slower."""
    code = html.environment(tmp_path, "test").compile("<b>{{ x }}</b>{{ y }}", raw=True)
    assert "environment.escape_output(" in code and "yield concat(_output)" in code
    assert "escape(" not in code.replace("escape_output(", "")


def test_escaping_is_markupsafes_own_c_function() -> None:
    """Fails if MarkupSafe moves `_speedups._escape_inner`: the fallback escapes correctly
    but wraps every value in Markup, 42% more instructions a page."""
    assert html._escape_inner is markupsafe._speedups._escape_inner


def test_jinja_and_markupsafe_are_pinned_below_their_next_minor() -> None:
    assert pinned_below_next_minor("jinja2") and pinned_below_next_minor("markupsafe")
