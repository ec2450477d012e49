"""Structured data on the hubs: WebSite and Organization at home, breadcrumbs elsewhere."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

HUBS = ("/regions/", "/regions/us-tx/", "/in/austin-tx/", "/roof-repair/")


class Hub(HTMLParser):
    """The JSON-LD blocks, the canonical URL and the visible breadcrumb trail of a page."""

    def __init__(self, body: str) -> None:
        super().__init__()
        self.json_ld: list[Any] = []
        self.canonical = ""
        self.crumbs: list[list[str]] = []  # [name, link or ""]
        self._in_script = self._in_trail = self._in_crumb = False
        self.feed(body)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("type") == "application/ld+json":
            self._in_script = True
        elif tag == "link" and values.get("rel") == "canonical":
            self.canonical = values["href"] or ""
        elif tag == "nav" and values.get("aria-label") == "Breadcrumb":
            self._in_trail = True
        elif tag == "li" and self._in_trail:
            self.crumbs.append(["", ""])
            self._in_crumb = True
        elif tag == "a" and self._in_crumb:
            self.crumbs[-1][1] = values["href"] or ""

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"
        self._in_trail = self._in_trail and tag != "nav"
        self._in_crumb = self._in_crumb and tag != "li"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.json_ld.append(json.loads(data))
        elif self._in_crumb:
            self.crumbs[-1][0] += data

    def trail(self) -> list[tuple[str, str]]:
        """The visible crumbs with their URLs; the current page's is the canonical URL."""
        return [(name, link or self.canonical) for name, link in self.crumbs]


async def test_the_home_page_names_the_website_and_its_organization(
    site_client: httpx.AsyncClient,
) -> None:
    home = Hub((await site_client.get("/")).text)
    [data] = home.json_ld
    assert data["@context"] == "https://schema.org"
    by_type = {node["@type"]: node for node in data["@graph"]}
    website, organization = by_type["WebSite"], by_type["Organization"]
    assert (website["name"], website["url"], website["inLanguage"]) == (
        "Test Pros",
        "https://test.example/",
        "en",
    )
    assert (organization["name"], organization["url"]) == ("Test Pros", "https://test.example/")
    assert website["publisher"] == {"@id": organization["@id"]}


async def test_each_hub_carries_its_visible_breadcrumbs_as_a_breadcrumb_list(
    site_client: httpx.AsyncClient,
) -> None:
    for path in HUBS:
        hub = Hub((await site_client.get(path)).text)
        [data] = hub.json_ld
        assert data["@type"] == "BreadcrumbList", path
        listed = [(item["name"], item["item"]) for item in data["itemListElement"]]
        assert listed == hub.trail(), path
        assert len(listed) == 2, path
        positions = [item["position"] for item in data["itemListElement"]]
        assert positions == list(range(1, len(listed) + 1)), path
