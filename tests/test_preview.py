"""`seo-engine preview` through the real CLI: the page generate would store and the server
would send, judged like every other page, with nothing written."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from seo_engine.serve.app import create_app
from tests.conftest import _client, make_settings
from tests.seeding import cli, fetch
from tests.test_quality import QUALITY_SITE, prose, setup_quality_site


def stored_pages(dsn: str) -> list[tuple[str, bytes, bytes]]:
    rows = fetch(dsn, "SELECT path, content_hash, document FROM pages ORDER BY path")
    return [(row["path"], row["content_hash"], row["document"]) for row in rows]


async def served(dsn: str, path: str) -> str:
    async for client in _client(create_app(make_settings(dsn))):
        return (await client.get(path)).text
    raise AssertionError("no client")


# Synchronous: rendering runs under a SIGALRM time limit, which needs the main thread.
def test_preview_builds_the_stored_document_and_the_served_page(
    fresh_dsn: str, tmp_path: Path
) -> None:
    setup_quality_site(fresh_dsn, tmp_path, prose(23, 40))
    before = stored_pages(fresh_dsn)
    result = cli(fresh_dsn, "preview", "repair", "delta-xx", "--json")
    assert result.exit_code == 0, result.output
    previewed = json.loads(result.stdout)
    stored = json.loads(next(doc for path, _, doc in before if path == "/repair/delta-xx"))
    assert previewed["updated_at"] != stored["updated_at"]  # the preview's own time
    del previewed["updated_at"], stored["updated_at"]
    assert previewed == stored  # the same etag too: the same content hash
    assert "score" in result.stderr and "thin_content: 40 words" in result.stderr

    page = tmp_path / "page.html"
    result = cli(fresh_dsn, "preview", "repair", "alpha-xx", "--output", str(page))
    assert result.exit_code == 0, result.output
    assert "duplicate_content: its text is the same as /repair/bravo-xx's" in result.stdout
    assert page.read_text() == asyncio.run(served(fresh_dsn, "/repair/alpha-xx"))
    assert stored_pages(fresh_dsn) == before


def test_preview_with_an_edited_site_file_writes_nothing(fresh_dsn: str, tmp_path: Path) -> None:
    setup_quality_site(fresh_dsn, tmp_path, prose(23, 40))
    before = stored_pages(fresh_dsn)
    edited = tmp_path / "edited.toml"
    edited.write_text(
        QUALITY_SITE.replace(
            'intro = "{{ location.attributes.story }}"',
            'intro = "{{ location.attributes.story }} {{ location.attributes.story }}"',
        )
    )
    result = cli(fresh_dsn, "preview", "repair", "delta-xx", "--site-file", str(edited), "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["intro"] == f"{prose(23, 40)} {prose(23, 40)}"
    assert document["quality"]["reasons"][0]["message"] == "80 words of body text (at least 100)"
    assert stored_pages(fresh_dsn) == before
    assert fetch(fresh_dsn, "SELECT count(*) FROM sites")[0][0] == 1


def test_preview_names_what_does_not_exist(fresh_dsn: str, tmp_path: Path) -> None:
    setup_quality_site(fresh_dsn, tmp_path, prose(23, 40))
    result = cli(fresh_dsn, "preview", "nosuch", "delta-xx")
    assert result.exit_code == 65 and "no service 'nosuch' in site 'qualitysite'" in result.output
    result = cli(fresh_dsn, "preview", "repair", "nowhere")
    assert result.exit_code == 65 and "no location 'nowhere'" in result.output
    result = cli(fresh_dsn, "preview", "repair", "delta-xx", "--output", "/nonexistent/dir/p.html")
    assert result.exit_code == 73 and "No such file or directory" in result.output
    assert "Traceback" not in result.output


def test_preview_sample_audits_rendered_pages_and_stores_none(
    fresh_dsn: str, tmp_path: Path
) -> None:
    setup_quality_site(fresh_dsn, tmp_path, prose(23, 40))
    before = stored_pages(fresh_dsn)
    result = cli(fresh_dsn, "preview", "--sample", "3")
    assert result.exit_code == 0, result.output
    # Three of the five locations, spread over their regions: alpha, bravo and delta.
    assert "qualitysite, a sample rendered now: 0 of 3 pages would pass (0%)" in result.stdout
    assert "duplicate_content │     2" in result.stdout
    assert "thin_content      │     1" in result.stdout
    assert stored_pages(fresh_dsn) == before
    assert fetch(fresh_dsn, "SELECT to_regclass('pg_temp.pages') IS NULL AS gone")[0]["gone"]
    usage = cli(fresh_dsn, "preview", "repair", "delta-xx", "--sample", "3")
    assert usage.exit_code == 2 and "--sample takes no service or location" in usage.output
    assert cli(fresh_dsn, "preview").exit_code == 2
