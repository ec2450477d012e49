from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from seo_engine.ingest.sites import SiteError, load_definition, parse_definition

SEEDS = Path(__file__).parent.parent / "seeds"


def site(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "slug": "demo",
        "name": "Demo",
        "base_url": "https://demo.example/",
        "content": {"title": "t", "meta_description": "d", "h1": "h", "intro": "i"},
    }
    base.update(changes)
    return base


def test_the_bundled_site_file_is_valid() -> None:
    definition = load_definition(SEEDS / "site.toml")
    assert definition.slug == "localpros"
    assert definition.domain == "www.localpros.example"


def test_defaults_and_normalisation() -> None:
    definition = parse_definition(site(), "site.toml")
    assert definition.base_url == "https://demo.example"
    assert definition.path_pattern == "/{service}/{location}"
    assert definition.locale == "en"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"slug": "Not A Slug"}, "slug 'Not A Slug'"),
        ({"base_url": "https://demo.example/pages"}, "base_url must look like"),
        ({"base_url": "ftp://demo.example"}, "base_url must look like"),
        ({"path_pattern": "/{service}"}, "must start with / and contain {service} and {location}"),
        ({"path_pattern": "/{service}/../{location}"}, "must not contain"),
        ({"content": {"title": "t"}}, "needs a 'meta_description' template"),
        ({"generate": {"workers": 3}}, "unknown option 'workers'"),
        ({"generate": {"index_threshold": 0.6}}, "index_threshold has moved to [quality]"),
        ({"quality": {"index_threshold": 101}}, "index_threshold must be a number from 0 to 100"),
        ({"quality": {"near_duplicate": -0.1}}, "near_duplicate must be a number from 0 to 1"),
        ({"quality": {"min_body_words": 2.5}}, "min_body_words must be a whole number"),
        ({"quality": {"thin": 3}}, "[quality] has unknown rule 'thin'"),
        ({"quality": {"thin_body_words": 400}}, "thin_body_words must not exceed min_body_words"),
        ({"name": ""}, "'name' must be a non-empty string"),
    ],
)
def test_invalid_site_files_are_refused_with_the_reason(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(SiteError, match=re.escape(message)):
        parse_definition(site(**change), "site.toml")


def test_a_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text("slug = [unclosed")
    with pytest.raises(SiteError, match="invalid TOML"):
        load_definition(path)
