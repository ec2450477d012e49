"""Hostile input in every place a client controls: never a 500, never a leak."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest

from seo_engine.serve.app import create_app
from tests.conftest import _client, make_settings
from tests.live import live_server
from tests.seeding import afetch, cli

pytestmark = pytest.mark.anyio

NASTY = [
    "' OR '1'='1",
    "1; DROP TABLE pages; --",
    '"; SELECT pg_sleep(10); --',
    "%00",
    "\x00",
    "a" * 5000,
    "../../../etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "\u202e\u0000\ufeff",
    "😀" * 100,
    "<script>alert(1)</script>",
    "{{7*7}}",
    "-1",
    "99999999999999999999999",
    "NaN",
    "1e309",
]
API_PARAMETERS = {
    "/api/v1/pages": [
        "site",
        "service",
        "location",
        "region",
        "indexable",
        "state",
        "sync",
        "updated_since",
        "cursor",
        "limit",
        "count",
    ],
    "/api/v1/locations": ["site", "region", "cursor", "limit"],
    "/api/v1/services": ["site"],
    "/api/v1/export.ndjson": ["site", "sync", "updated_since"],
    "/api/v1/pages/roof-repair/austin-tx": ["site"],
}
LEAKS = ("Traceback", "asyncpg", "SELECT ", "syntax error", "postgres", 'File "')


def assert_clean(response: httpx.Response, where: str) -> None:
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:200]}"
    for leak in LEAKS:
        assert leak not in response.text, f"{where} leaks {leak!r}"


async def test_nasty_query_parameters_never_cause_a_server_error(
    site_client: httpx.AsyncClient,
) -> None:
    for endpoint, parameters in API_PARAMETERS.items():
        for parameter in parameters:
            for value in NASTY:
                response = await site_client.get(endpoint, params={parameter: value})
                assert_clean(response, f"{endpoint}?{parameter}={value[:20]!r}")
                if response.status_code >= 400:
                    assert response.headers["content-type"] == "application/problem+json"


async def test_nasty_path_segments_never_cause_a_server_error(
    site_client: httpx.AsyncClient,
) -> None:
    for value in NASTY:
        for template in (
            "/api/v1/pages/{v}/austin-tx",
            "/api/v1/pages/roof-repair/{v}",
            "/{v}",
            "/{v}/",
            "/roof-repair/{v}",
            "/in/{v}/",
            "/regions/{v}/",
            "/sitemaps/pages-{v}.xml",
            "/sitemap-pages-{v}.xml.gz",
            "/api/v1/pages/roof-repair/austin-tx?site={v}",
            "/{v}/page/2/",
        ):
            path = template.replace("{v}", quote(value, safe="%"))
            response = await site_client.get(path)
            assert_clean(response, path[:60])


async def test_nasty_headers_never_cause_a_server_error(site_client: httpx.AsyncClient) -> None:
    for value in NASTY:
        raw = value.replace("\x00", "").encode("utf-8")  # header values travel as bytes
        headers = {
            "If-None-Match": raw,
            "If-Modified-Since": raw,
            "Host": raw[:200] or b"x",
            "Accept-Encoding": raw,
        }
        for path in (
            "/roof-repair/austin-tx",
            "/api/v1/pages/roof-repair/austin-tx",
            "/",
            "/sitemap.xml",
        ):
            response = await site_client.get(path, headers=headers)
            assert_clean(response, f"{path} with {value[:20]!r}")


def raw_request(url: str, request: bytes) -> bytes:
    """Send bytes httpx would refuse to build; return what came back (maybe nothing)."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as raw:
        try:
            raw.sendall(request)
            return raw.recv(200)
        except (ConnectionResetError, BrokenPipeError):
            return b""


def test_oversized_requests_are_refused_and_the_server_carries_on(site_dsn: str) -> None:
    with live_server(make_settings(site_dsn)) as url:
        huge_query = b"GET /api/v1/pages?region=" + b"x" * 200_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
        huge_header = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"y" * 200_000 + b"\r\n\r\n"
        many_headers = b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-A: b\r\n" * 20_000 + b"\r\n"
        for request in (huge_query, huge_header, many_headers):
            answer = raw_request(url, request)
            # A 4xx status line, or the connection closed without an answer: both refuse it.
            assert answer == b"" or answer[9:10] == b"4", answer[:40]
        with httpx.Client(base_url=url) as client:
            assert client.get("/healthz").status_code == 200
            assert client.get("/roof-repair/austin-tx").status_code == 200


def test_an_export_never_writes_outside_its_folder(site_dsn: str, tmp_path: Path) -> None:
    canary = tmp_path / "canary.html"
    canary.write_text("untouched")
    asyncio.run(
        afetch(
            site_dsn, "UPDATE pages SET path = '/../../canary' WHERE path = '/roof-repair/waco-tx'"
        )
    )
    out = tmp_path / "deep" / "public"
    result = cli(site_dsn, "export", "static", str(out))
    assert result.exit_code == 65
    assert "refusing to write outside" in result.stderr
    assert canary.read_text() == "untouched"


async def test_no_password_reaches_a_response_or_a_log(
    caplog: pytest.LogCaptureFixture, fresh_dsn: str
) -> None:
    secret = "s3cr3t-Passw0rd"
    dsn = f"postgresql://postgres:{secret}@127.0.0.1:9/nowhere"
    caplog.set_level(logging.DEBUG)
    app = create_app(make_settings(dsn, acquire_timeout=0.5))
    async for client in _client(app):
        for path in ("/readyz", "/api/v1/pages", "/roof-repair/austin-tx", "/sitemap.xml"):
            response = await client.get(path)
            assert response.status_code == 503, path
            assert response.headers["retry-after"] == "1"
            assert secret not in response.text
    assert secret not in caplog.text
