"""/favicon.ico: the default icon, a site's own from its site file, caching, the export."""

from __future__ import annotations

import asyncio
import struct
import zlib
from pathlib import Path

import httpx
import pytest

from seo_engine.ingest.sites import SiteError, load_definition
from tests.seeding import DATA, cli

pytestmark = pytest.mark.anyio

ICO_MAGIC = b"\x00\x00\x01\x00"
SHIPPED = Path(__file__).parent.parent / "seo_engine" / "serve" / "favicon.ico"


def png(width: int, height: int) -> bytes:
    """A real PNG image of this size (transparent)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"".join(b"\x00" + b"\x00" * 4 * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def site_file_with_favicon(folder: Path, icon: bytes, name: str = "icon.png") -> Path:
    """The test site's file, naming `name` (holding `icon`) beside it as its favicon."""
    (folder / name).write_bytes(icon)
    site_file = folder / "site.toml"
    site_file.write_text(f'favicon = "{name}"\n' + (DATA / "site.toml").read_text())
    return site_file


async def test_favicon_ico_is_an_icon_cached_for_days(site_client: httpx.AsyncClient) -> None:
    response = await site_client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/x-icon"
    assert response.content.startswith(ICO_MAGIC)
    assert response.content == SHIPPED.read_bytes()
    assert "max-age=604800" in response.headers["cache-control"]


async def test_a_favicon_request_with_its_etag_gets_304(site_client: httpx.AsyncClient) -> None:
    etag = (await site_client.get("/favicon.ico")).headers["etag"]
    again = await site_client.get("/favicon.ico", headers={"If-None-Match": f"W/{etag}"})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)


async def test_head_of_the_favicon_answers_like_get(site_client: httpx.AsyncClient) -> None:
    head = await site_client.head("/favicon.ico")
    assert head.status_code == 200
    assert head.headers["content-type"] == "image/x-icon"


async def test_every_page_links_the_favicon(site_client: httpx.AsyncClient) -> None:
    for path in ("/", "/roof-repair/", "/roof-repair/austin-tx", "/no/such/page"):
        body = (await site_client.get(path)).text
        assert '<link rel="icon" href="/favicon.ico">' in body, path


async def test_a_site_serves_the_favicon_its_site_file_names(
    site_client: httpx.AsyncClient, fresh_dsn: str, tmp_path: Path
) -> None:
    icon = png(48, 48)
    added = await asyncio.to_thread(
        cli, fresh_dsn, "sites", "add", str(site_file_with_favicon(tmp_path, icon))
    )
    assert added.exit_code == 0, added.output
    response = await site_client.get("/favicon.ico")
    assert (response.status_code, response.content) == (200, icon)
    assert response.headers["content-type"] == "image/png"
    again = await site_client.get(
        "/favicon.ico", headers={"If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304


@pytest.mark.parametrize(
    ("icon", "reason"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "is not a PNG or ICO image"),
        (png(48, 32), "is 48x32 px; a favicon must be square"),
        (png(48, 48) + b"\x00" * 200_000, "is larger than 100 KiB"),
        (b"", "is empty"),
    ],
)
def test_a_bad_favicon_is_refused_naming_the_file(icon: bytes, reason: str, tmp_path: Path) -> None:
    site_file = site_file_with_favicon(tmp_path, icon, "bad-icon.png")
    with pytest.raises(SiteError) as refused:
        load_definition(site_file)
    assert str(refused.value) == f"{site_file}: favicon {tmp_path / 'bad-icon.png'} {reason}"


def test_sites_add_refuses_a_missing_favicon_and_names_it(fresh_dsn: str, tmp_path: Path) -> None:
    site_file = site_file_with_favicon(tmp_path, png(48, 48))
    (tmp_path / "icon.png").unlink()
    result = cli(fresh_dsn, "sites", "add", str(site_file))
    assert result.exit_code == 65
    assert f"favicon {tmp_path / 'icon.png'}: No such file or directory" in result.stderr


def test_static_export_writes_the_favicon(site_dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "public"
    result = cli(site_dsn, "export", "static", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "favicon.ico").read_bytes() == SHIPPED.read_bytes()
