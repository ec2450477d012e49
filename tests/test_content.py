from __future__ import annotations

from typing import Any

import pytest

from seo_engine.ingest.content import ContentError, ContentTemplates

BASE: dict[str, Any] = {
    "title": ["{{ name }} short", "{{ name }} is the longer variant of the title"],
    "meta_description": "About {{ name }}.",
    "h1": "{{ name }}",
    "intro": "Intro for {{ name }}.",
    "sections": [{"heading": "H {{ name }}", "body": ["B1", "B2", "B3"]}],
    "faq": [{"question": "Q?", "answer": "A."}],
}


def templates(**changes: Any) -> ContentTemplates:
    return ContentTemplates({**BASE, **changes})


def test_a_page_renders_every_block_in_order() -> None:
    texts, _ = templates().render({"name": "Austin"}, seed=1)
    page = templates().page_text(texts)
    assert page.meta_description == "About Austin."
    assert page.sections[0][0] == "H Austin"
    assert page.faq == [("Q?", "A.")]


def test_the_variant_choice_is_stable_for_a_seed() -> None:
    first = templates().render({"name": "X"}, seed=12345)
    assert templates().render({"name": "X"}, seed=12345) == first


def test_different_pages_use_different_variants() -> None:
    bodies = {templates().render({"name": "X"}, seed=seed)[0][5] for seed in range(50)}
    assert bodies == {"B1", "B2", "B3"}


def test_whitespace_from_template_logic_is_collapsed() -> None:
    texts, _ = templates(h1="{% if true %}\n  {{ name }}\n{% endif %}  !").render({"name": "A"}, 1)
    assert texts[2] == "A !"


def test_an_over_long_block_falls_back_to_a_variant_that_fits() -> None:
    content = templates()
    context = {"name": "Austin"}
    texts, chosen = content.render(context, seed=1)
    fitted = content.fit(0, ["x" * 100, *texts[1:]], chosen, 20, context)
    assert fitted == "Austin short"


def test_a_syntax_error_names_the_block_and_variant() -> None:
    with pytest.raises(ContentError, match=r"title variant 2: .*line 1"):
        templates(title=["ok", "{% if %}"])


def test_an_unknown_block_is_refused() -> None:
    with pytest.raises(ContentError, match="unknown block"):
        templates(footer="x")


def test_an_undefined_name_is_an_error_not_a_blank() -> None:
    with pytest.raises(ContentError, match="h1 variant 1: 'missing' is undefined"):
        templates(h1="{{ missing }}").render({"name": "A"}, seed=1)


@pytest.mark.parametrize(
    "hostile",
    [
        "{{ name.__class__.__mro__ }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ name|attr('__class__') }}",
        "{{ lipsum.__globals__['os'] }}",
    ],
)
def test_the_sandbox_refuses_python_internals(hostile: str) -> None:
    with pytest.raises(ContentError):
        templates(h1=hostile).render({"name": "A"}, seed=1)


def test_data_cannot_be_mutated_from_a_template() -> None:
    with pytest.raises(ContentError):
        templates(h1="{{ data.update({'x': 1}) }}").render({"name": "A", "data": {}}, seed=1)
