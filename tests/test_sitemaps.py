"""Sitemaps and robots.txt through the real app, and the sitemaps the static export writes."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from seo_engine.serve.rendering import HTML_CACHE
from tests.seeding import LOCATIONS, SERVICES

pytestmark = pytest.mark.anyio

BASE = "https://test.example"
LOC = re.compile(r"<loc>([^<]+)</loc>")
CANONICAL = re.compile(r'<link rel="canonical" href="([^"]+)">')
# Every sitemap the test site has, each with and without gzip.
SITEMAPS = (
    "/sitemap.xml",
    "/sitemap-hubs.xml",
    "/sitemap-hubs.xml.gz",
    "/sitemap-pages-1.xml",
    "/sitemap-pages-1.xml.gz",
)
MOVED = {
    "/sitemaps/hubs.xml": "/sitemap-hubs.xml",
    "/sitemaps/hubs.xml.gz": "/sitemap-hubs.xml.gz",
    "/sitemaps/pages-1.xml": "/sitemap-pages-1.xml",
    "/sitemaps/pages-1.xml.gz": "/sitemap-pages-1.xml.gz",
}


async def test_the_index_lists_the_child_sitemaps_at_the_site_root(
    site_client: httpx.AsyncClient,
) -> None:
    index = await site_client.get("/sitemap.xml")
    assert index.headers["content-type"] == "application/xml"
    assert LOC.findall(index.text) == [f"{BASE}/sitemap-hubs.xml", f"{BASE}/sitemap-pages-1.xml"]


async def test_every_url_in_a_child_sitemap_is_under_the_child_sitemaps_directory(
    site_client: httpx.AsyncClient,
) -> None:
    children = LOC.findall((await site_client.get("/sitemap.xml")).text)
    assert children
    for child in children:
        response = await site_client.get(urlsplit(child).path)
        assert response.status_code == 200, child
        directory = child.rsplit("/", 1)[0] + "/"
        urls = LOC.findall(response.text)
        assert urls, child
        assert [url for url in urls if not url.startswith(directory)] == [], child


async def test_the_pages_sitemap_lists_every_indexable_page_once(
    site_client: httpx.AsyncClient, fresh_dsn: str
) -> None:
    from tests.seeding import afetch

    await afetch(
        fresh_dsn, "UPDATE pages SET indexable = false WHERE path = '/roof-repair/waco-tx'"
    )
    response = await site_client.get("/sitemap-pages-1.xml")
    assert response.headers["content-type"] == "application/xml"
    urls = LOC.findall(response.text)
    assert len(urls) == len(set(urls)) == len(SERVICES) * len(LOCATIONS) - 1
    assert f"{BASE}/roof-repair/waco-tx" not in urls
    for url in urls[:3]:
        page = await site_client.get(urlsplit(url).path)
        assert CANONICAL.findall(page.text) == [url]


async def test_the_gzip_variants_hold_the_same_sitemaps(site_client: httpx.AsyncClient) -> None:
    for path in ("/sitemap-hubs.xml", "/sitemap-pages-1.xml"):
        plain = await site_client.get(path)
        packed = await site_client.get(path + ".gz")
        assert packed.headers["content-type"] == "application/gzip", path
        assert gzip.decompress(packed.content).decode() == plain.text, path


async def test_a_pages_sitemap_past_the_last_shard_is_not_found(
    site_client: httpx.AsyncClient,
) -> None:
    for path in ("/sitemap-pages-2.xml", "/sitemap-pages-0.xml.gz", "/sitemap-pages-x.xml"):
        response = await site_client.get(path)
        assert (response.status_code, response.headers["cache-control"]) == (404, "no-store"), path


async def test_a_shard_number_that_is_not_plain_decimal_is_not_found(
    site_client: httpx.AsyncClient,
) -> None:
    # "²" is a digit to str.isdigit() but not to int(); "01" would be a second URL for shard 1.
    for number in ("%C2%B2", "01", "+1", "1000000"):
        for path in (f"/sitemap-pages-{number}.xml", f"/sitemaps/pages-{number}.xml.gz"):
            response = await site_client.get(path)
            assert response.status_code == 404, path


async def test_the_old_sitemap_paths_move_permanently_to_the_root(
    site_client: httpx.AsyncClient,
) -> None:
    for old, new in MOVED.items():
        for method in ("GET", "HEAD"):
            response = await site_client.request(method, old)
            assert (
                response.status_code,
                response.headers["location"],
                response.headers["cache-control"],
            ) == (301, new, HTML_CACHE), f"{method} {old}"


async def test_a_weak_tag_gets_304_from_every_sitemap(site_client: httpx.AsyncClient) -> None:
    for path in SITEMAPS:
        etag = (await site_client.get(path)).headers["etag"]
        again = await site_client.get(path, headers={"If-None-Match": f"W/{etag}"})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag), path


async def test_a_star_gets_304_from_every_sitemap(site_client: httpx.AsyncClient) -> None:
    for path in SITEMAPS:
        again = await site_client.get(path, headers={"If-None-Match": "*"})
        assert (again.status_code, again.content) == (304, b""), path


async def test_a_list_naming_the_tag_gets_304_from_every_sitemap(
    site_client: httpx.AsyncClient,
) -> None:
    for path in SITEMAPS:
        etag = (await site_client.get(path)).headers["etag"]
        again = await site_client.get(path, headers={"If-None-Match": f'"stale", {etag}'})
        assert (again.status_code, again.content) == (304, b""), path


async def test_a_list_without_the_tag_gets_the_whole_sitemap(
    site_client: httpx.AsyncClient,
) -> None:
    for path in SITEMAPS:
        first = await site_client.get(path)
        again = await site_client.get(path, headers={"If-None-Match": '"stale", W/"older"'})
        assert (again.status_code, again.content) == (200, first.content), path


async def test_the_gzip_variant_has_a_tag_of_its_own(site_client: httpx.AsyncClient) -> None:
    for path in ("/sitemap-hubs.xml", "/sitemap-pages-1.xml"):
        plain = (await site_client.get(path)).headers["etag"]
        packed = (await site_client.get(path + ".gz")).headers["etag"]
        assert plain != packed, path


async def test_robots_txt_points_at_the_sitemap_and_keeps_crawlers_out_of_the_api(
    site_client: httpx.AsyncClient,
) -> None:
    body = (await site_client.get("/robots.txt")).text
    assert "Sitemap: https://test.example/sitemap.xml" in body
    assert "Disallow: /api/" in body
    assert "Allow: /" in body


def test_the_static_export_writes_the_sitemaps_the_index_lists_at_its_root(
    fresh_dsn: str, tmp_path: Path
) -> None:
    from tests.seeding import cli, setup_site

    setup_site(fresh_dsn, tmp_path)
    out = tmp_path / "public"
    result = cli(fresh_dsn, "export", "static", str(out))
    assert result.exit_code == 0, result.output
    listed = [urlsplit(url).path for url in LOC.findall((out / "sitemap.xml").read_text())]
    assert listed == ["/sitemap-hubs.xml", "/sitemap-pages-1.xml"]
    for path in listed:
        plain = (out / path.lstrip("/")).read_text()
        assert gzip.decompress((out / (path.lstrip("/") + ".gz")).read_bytes()).decode() == plain
    pages = LOC.findall((out / "sitemap-pages-1.xml").read_text())
    assert len(pages) == len(SERVICES) * len(LOCATIONS)
    assert not (out / "sitemaps").exists()
