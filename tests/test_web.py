"""The rendered site through the real app: markup, links, status codes, caching, XSS."""

from __future__ import annotations

import asyncio
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.seeding import LOCATIONS, SERVICES

pytestmark = pytest.mark.anyio


class Markup(HTMLParser):
    """Collects what SEO checks look at: head tags, headings, links, JSON-LD blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.links: list[dict[str, str]] = []
        self.anchors: list[str] = []
        self.h1: list[str] = []
        self.json_ld: list[str] = []
        self.title = ""
        self.lang = ""
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = values.get("lang", "")
        elif tag == "meta":
            key = values.get("name") or values.get("property")
            if key:
                self.meta[key] = values.get("content", "")
        elif tag == "link":
            self.links.append(values)
        elif tag == "a" and "href" in values:
            self.anchors.append(values["href"])
        elif tag in ("h1", "title"):
            self._in = tag
        elif tag == "script" and values.get("type") == "application/ld+json":
            self._in = "json_ld"

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "h1":
            self.h1.append(data)
        elif self._in == "title":
            self.title += data
        elif self._in == "json_ld":
            self.json_ld.append(data)


def parse(body: str) -> Markup:
    markup = Markup()
    markup.feed(body)
    return markup


async def test_a_page_carries_every_seo_signal(site_client: httpx.AsyncClient) -> None:
    response = await site_client.get("/roof-repair/austin-tx")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = parse(response.text)
    assert page.lang == "en"
    assert page.title in ("Roof Repair in Austin", "Austin Roof Repair")
    assert page.meta["description"] == "Find roof repair in Austin, population 961,855."
    assert page.meta["robots"] == "index,follow"
    assert page.meta["viewport"].startswith("width=device-width")
    assert page.meta["og:url"] == "https://test.example/roof-repair/austin-tx"
    assert page.meta["og:title"] == page.title
    assert page.meta["twitter:card"] == "summary"
    canonical = [link for link in page.links if link.get("rel") == "canonical"]
    assert [link["href"] for link in canonical] == ["https://test.example/roof-repair/austin-tx"]
    alternate = [link for link in page.links if link.get("rel") == "alternate"]
    assert alternate[0]["type"] == "application/json"
    assert urlsplit(alternate[0]["href"]).path == "/api/v1/pages/roof-repair/austin-tx"
    assert page.h1 == ["Roof Repair in Austin"]
    graph = json.loads(page.json_ld[0])["@graph"]
    assert json.loads(page.json_ld[0])["@context"] == "https://schema.org"
    assert [node["@type"] for node in graph] == ["Service", "BreadcrumbList", "FAQPage"]
    assert graph[0]["areaServed"]["@type"] == "City"
    assert [item["name"] for item in graph[1]["itemListElement"]] == [
        "Home",
        "Roof Repair",
        "Austin",
    ]
    assert "/roof-repair/round-rock-tx" in page.anchors
    assert "/gutter-cleaning/austin-tx" in page.anchors
    # Sections are numbered from 1, each heading labelling its section; the last crumb
    # is the page itself.
    labelled = re.findall(r'<section aria-labelledby="([^"]+)">\n<h2 id="([^"]+)">', response.text)
    assert all(label == heading for label, heading in labelled)
    numbered = [label for label, _ in labelled if label.startswith("section-")]
    assert numbered == [f"section-{n}" for n in range(1, len(numbered) + 1)] and numbered
    assert '<li aria-current="page">Austin</li></ol>' in response.text


async def test_non_indexable_pages_say_noindex_in_markup_and_header(
    site_client: httpx.AsyncClient, fresh_dsn: str, tmp_path: Path
) -> None:
    from tests.seeding import DATA, cli

    strict = tmp_path / "strict.toml"  # no test page scores 100: none stays indexable
    site = (DATA / "site.toml").read_text()
    assert "index_threshold = 0\n" in site
    strict.write_text(site.replace("index_threshold = 0\n", "index_threshold = 100\n"))
    for args in (("sites", "add", str(strict)), ("generate",)):
        result = await asyncio.to_thread(cli, fresh_dsn, *args)
        assert result.exit_code == 0, result.output
    response = await site_client.get("/roof-repair/waco-tx")
    assert parse(response.text).meta["robots"] == "noindex,follow"
    assert response.headers["x-robots-tag"] == "noindex, follow"


async def test_every_link_from_home_resolves_within_three_clicks(
    site_client: httpx.AsyncClient,
) -> None:
    seen: dict[str, int] = {"/": 0}
    queue = ["/"]
    while queue:
        path = queue.pop(0)
        response = await site_client.get(path)
        assert response.status_code == 200, path
        if seen[path] == 3:
            continue
        for href in parse(response.text).anchors:
            target = urlsplit(href)
            if target.netloc or href.startswith("/sitemap"):
                continue
            local = target.path + (f"?{target.query}" if target.query else "")
            if local not in seen:
                seen[local] = seen[path] + 1
                queue.append(local)
    pages = {
        f"/{service.split(',')[1]}/{location.split(',')[1]}"
        for service in SERVICES
        for location in LOCATIONS
    }
    assert pages <= set(seen)
    assert max(seen[page] for page in pages) <= 3


async def test_unknown_paths_get_a_real_404_page(site_client: httpx.AsyncClient) -> None:
    response = await site_client.get("/no/such/page")
    assert response.status_code == 404
    assert response.headers["cache-control"] == "no-store"
    assert parse(response.text).h1 == ["Page not found"]
    assert (await site_client.get("/roof-repair/page/99/")).status_code == 404
    assert (await site_client.get("/roof-repair/page/1/")).status_code == 404
    assert (await site_client.get("/roof-repair/austin-tx%00")).status_code == 404


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/Roof-Repair/Austin-TX", "/roof-repair/austin-tx"),
        ("/roof-repair/austin-tx/", "/roof-repair/austin-tx"),
        ("/roof-repair", "/roof-repair/"),
        ("/in/austin-tx", "/in/austin-tx/"),
    ],
)
async def test_case_and_slash_variants_redirect_to_the_canonical_path(
    site_client: httpx.AsyncClient, path: str, target: str
) -> None:
    response = await site_client.get(path)
    assert response.status_code == 301
    assert response.headers["location"] == target


async def test_a_stored_redirect_answers_301(
    site_client: httpx.AsyncClient, fresh_dsn: str
) -> None:
    from tests.seeding import afetch

    await afetch(
        fresh_dsn,
        "INSERT INTO redirects (site_id, from_path, to_path) "
        "SELECT id, '/old/austin', '/roof-repair/austin-tx' FROM sites",
    )
    response = await site_client.get("/old/austin?utm=x")
    assert (response.status_code, response.headers["location"]) == (
        301,
        "/roof-repair/austin-tx?utm=x",
    )


async def test_head_works_everywhere(site_client: httpx.AsyncClient) -> None:
    for path in ("/", "/roof-repair/", "/roof-repair/austin-tx", "/sitemap.xml", "/robots.txt"):
        get = await site_client.get(path)
        head = await site_client.head(path)
        assert head.status_code == 200, path
        assert head.headers["content-type"] == get.headers["content-type"]
    assert (await site_client.head("/missing")).status_code == 404


async def test_conditional_requests_get_304(site_client: httpx.AsyncClient) -> None:
    for path in ("/roof-repair/austin-tx", "/", "/sitemap.xml"):
        first = await site_client.get(path)
        etag = first.headers["etag"]
        again = await site_client.get(path, headers={"If-None-Match": etag})
        assert (again.status_code, again.content) == (304, b""), path
    page = await site_client.get("/roof-repair/austin-tx")
    by_date = await site_client.get(
        "/roof-repair/austin-tx", headers={"If-Modified-Since": page.headers["last-modified"]}
    )
    assert by_date.status_code == 304
    cache = page.headers["cache-control"]
    assert all(
        part in cache for part in ("public", "s-maxage", "stale-while-revalidate", "stale-if-error")
    )


async def test_html_is_gzipped_for_clients_that_accept_it(site_client: httpx.AsyncClient) -> None:
    response = await site_client.get("/roof-repair/", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"


async def test_the_host_header_picks_the_site(
    site_client: httpx.AsyncClient, fresh_dsn: str, tmp_path: Path
) -> None:
    import asyncio

    from tests.seeding import DATA, cli

    second = (DATA / "site.toml").read_text()
    second = second.replace('"testsite"', '"second"').replace("test.example", "second.example")
    second = second.replace('name = "Test Pros"', 'name = "Second Pros"')
    (tmp_path / "second.toml").write_text(second)
    await asyncio.to_thread(cli, fresh_dsn, "sites", "add", str(tmp_path / "second.toml"))
    site_client._transport.app.state.sites = type(site_client._transport.app.state.sites)()  # type: ignore[attr-defined]
    home = await site_client.get("/", headers={"Host": "second.example"})
    assert parse(home.text).h1 == ["Second Pros"]
    default = await site_client.get("/", headers={"Host": "unknown.example"})
    assert parse(default.text).h1 == ["Test Pros"]


HOSTILE = '</script><script>alert("x")</script>\'"&<b>'


async def test_hostile_seed_data_is_escaped_everywhere(fresh_dsn: str, tmp_path: Path) -> None:
    import asyncio
    import csv

    from seo_engine.serve.app import create_app
    from tests.conftest import _client, make_settings
    from tests.seeding import DATA, LOCATION_HEADER, SERVICE_HEADER, cli

    locations = tmp_path / "l.csv"
    with locations.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(LOCATION_HEADER.split(","))
        writer.writerow(
            ["1", "evil-town", f"Evil{HOSTILE}", HOSTILE, "EV", "US", "5", "30", "-97", ""]
        )
        writer.writerow(["2", "calm-town", "Calm", "Texas", "TX", "US", "5", "30.1", "-97", ""])
    services = tmp_path / "s.csv"
    with services.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(SERVICE_HEADER.split(","))
        writer.writerow(["s1", "roof-repair", f"Roof{HOSTILE}", HOSTILE, HOSTILE, HOSTILE])

    def load() -> None:
        assert cli(fresh_dsn, "sites", "add", str(DATA / "site.toml")).exit_code == 0
        assert cli(fresh_dsn, "seed", "locations", str(locations)).exit_code == 0
        assert cli(fresh_dsn, "seed", "services", str(services)).exit_code == 0
        assert cli(fresh_dsn, "generate").exit_code == 0

    await asyncio.to_thread(load)
    async for client in _client(create_app(make_settings(fresh_dsn))):
        for path in (
            "/roof-repair/evil-town",
            "/roof-repair/calm-town",
            "/",
            "/roof-repair/",
            "/in/evil-town/",
            "/regions/us-ev/",
        ):
            response = await client.get(path)
            assert response.status_code == 200, path
            assert "<script>alert" not in response.text, path
            assert "<b>" not in response.text, path
            markup = parse(response.text)
            for block in markup.json_ld:
                assert "</script" not in block
                json.loads(block)
        page = parse((await client.get("/roof-repair/evil-town")).text)
        assert HOSTILE in page.h1[0]
        service = json.loads(page.json_ld[0])["@graph"][0]
        assert service["areaServed"]["name"] == f"Evil{HOSTILE}"
        document = (await client.get("/api/v1/pages/roof-repair/evil-town")).json()
        assert document["location"]["name"] == f"Evil{HOSTILE}"


def test_static_export_writes_the_whole_site(site_dsn: str, tmp_path: Path) -> None:
    from tests.seeding import cli

    out = tmp_path / "public"
    result = cli(site_dsn, "export", "static", str(out))
    assert result.exit_code == 0, result.output
    assert "8 pages" in result.stdout
    page = (out / "roof-repair" / "austin-tx.html").read_text()
    assert parse(page).h1 == ["Roof Repair in Austin"]
    for name in (
        "index.html",
        "404.html",
        "robots.txt",
        "sitemap.xml",
        "roof-repair/index.html",
        "in/austin-tx/index.html",
        "regions/index.html",
        "regions/us-tx/index.html",
    ):
        assert (out / name).is_file(), name
    for href in parse((out / "index.html").read_text()).anchors:
        path = urlsplit(href).path
        if not path:  # the skip link (#main)
            continue
        if path.endswith("/"):
            assert (out / path.lstrip("/") / "index.html").is_file(), href
        elif path != "/sitemap.xml":
            assert (out / (path.lstrip("/") + ".html")).is_file(), href


def test_ndjson_export_writes_every_document(site_dsn: str, tmp_path: Path) -> None:
    from tests.seeding import cli

    target = tmp_path / "pages.ndjson"
    result = cli(site_dsn, "export", "ndjson", str(target))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(lines) == len(SERVICES) * len(LOCATIONS)
    assert {line["site"] for line in lines} == {"testsite"}
    unwritable = cli(site_dsn, "export", "ndjson", str(tmp_path / "missing" / "x.ndjson"))
    assert unwritable.exit_code == 65
    assert "cannot write" in unwritable.stderr
