"""Incremental generate: a page whose inputs are unchanged since it was built is not rendered
again, what it skips equals what a full render would store, and a page whose siblings
changed is judged again without being among the rendered ones."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
from asyncpg import Record

from tests.seeding import (
    DATA,
    LOCATION_HEADER,
    LOCATIONS,
    SERVICE_HEADER,
    SERVICES,
    cli,
    fetch,
    setup_site,
    subset_of_bundled_locations,
    write,
)

PAINTING = "s3,house-painting,House Painting,Painting,Painting walls and trim.,500"
SNAPSHOT = """
SELECT path, title, document, content_hash, quality_score, quality_flags, indexable,
       updated_at, deleted_at
FROM pages ORDER BY path
"""


def snapshot(dsn: str) -> list[tuple[object, ...]]:
    return [tuple(row) for row in fetch(dsn, SNAPSHOT)]


def skipped(output: str) -> str:
    """The CLI's line about pages not rendered, or '' when every page was rendered."""
    return next((line for line in output.splitlines() if "not rendered" in line), "")


def generate(dsn: str, *args: str) -> str:
    result = cli(dsn, "generate", "--workers", "1", *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_an_unchanged_rerun_renders_nothing_and_force_agrees(
    fresh_dsn: str, tmp_path: Path
) -> None:
    setup_site(fresh_dsn, tmp_path)
    before = snapshot(fresh_dsn)
    output = generate(fresh_dsn)
    assert skipped(output) == (
        "8 of 8 pages not rendered: built from unchanged inputs (--force renders them)"
    )
    assert "testsite: 8 pages; 0 inserted, 0 updated, 8 unchanged, 0 removed" in output
    assert snapshot(fresh_dsn) == before
    # Rendering everything finds nothing to change: what was skipped is what it would store.
    forced = generate(fresh_dsn, "--force")
    assert skipped(forced) == ""
    assert "testsite: 8 pages; 0 inserted, 0 updated, 8 unchanged, 0 removed" in forced
    assert snapshot(fresh_dsn) == before


def test_a_changed_service_renders_the_pages_that_name_it(fresh_dsn: str, tmp_path: Path) -> None:
    setup_site(fresh_dsn, tmp_path, generate=False)
    services = write(tmp_path / "s.csv", SERVICE_HEADER, [*SERVICES, PAINTING])
    assert cli(fresh_dsn, "seed", "services", str(services)).exit_code == 0
    generate(fresh_dsn)
    # Gutter cleaning's pages link to roof repair by name; house painting's do not.
    renamed = [SERVICES[0].replace("Roof Repair", "Roof Repairs"), SERVICES[1], PAINTING]
    services = write(tmp_path / "s2.csv", SERVICE_HEADER, renamed)
    assert cli(fresh_dsn, "seed", "services", str(services)).exit_code == 0
    output = generate(fresh_dsn)
    assert skipped(output).startswith("4 of 12 pages not rendered")
    assert "0 inserted, 8 updated, 4 unchanged" in output
    renamed_pages = fetch(fresh_dsn, "SELECT title FROM pages WHERE path LIKE '/roof-repair/%'")
    assert all("Roof Repairs" in row["title"] for row in renamed_pages)
    assert "0 inserted, 0 updated, 12 unchanged" in generate(fresh_dsn, "--force")


def text_of(page: Record) -> dict[str, object]:
    """A stored document without what the quality gate and the merge put in it."""
    document = orjson.loads(page["document"])
    for field in ("quality", "indexable", "quality_score", "updated_at", "etag"):
        document.pop(field)
    return dict(document)


def quality_of(page: Record) -> object:
    return orjson.loads(page["document"])["quality"]


def _rename(source: Path, target: Path, key: str, name: str) -> Path:
    with source.open(encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    for row in rows[1:]:
        if row[0] == key:
            row[2] = name
    with target.open("w", encoding="utf-8", newline="") as stream:
        csv.writer(stream, lineterminator="\n").writerows(rows)
    return target


def test_a_changed_location_renders_only_the_pages_that_show_it(
    fresh_dsn: str, tmp_path: Path
) -> None:
    assert cli(fresh_dsn, "sites", "add", str(DATA / "site.toml")).exit_code == 0
    locations = subset_of_bundled_locations(tmp_path, 60)
    services = write(tmp_path / "services.csv", SERVICE_HEADER, SERVICES)
    assert cli(fresh_dsn, "seed", "locations", str(locations)).exit_code == 0
    assert cli(fresh_dsn, "seed", "services", str(services)).exit_code == 0
    generate(fresh_dsn)
    # A place that is not the largest of its region (whose name every place of the region
    # carries as its hub), renamed: its own pages and the pages that list it as near.
    place = fetch(
        fresh_dsn,
        """SELECT l.id, l.key FROM locations l
           WHERE l.population < (SELECT max(population) FROM locations o
                                 WHERE o.country_code = l.country_code
                                   AND o.region_code = l.region_code)
           ORDER BY l.id LIMIT 1""",
    )[0]
    showing = fetch(
        fresh_dsn,
        "SELECT location_id FROM location_neighbours WHERE neighbour_id = $1",
        place["id"],
    )
    expected = {place["id"], *(row["location_id"] for row in showing)}
    before = {row["id"]: row for row in fetch(fresh_dsn, "SELECT * FROM pages")}
    renamed = _rename(locations, tmp_path / "renamed.csv", place["key"], "Renamedville")
    assert cli(fresh_dsn, "seed", "locations", str(renamed)).exit_code == 0
    output = generate(fresh_dsn)
    rendered = 2 * len(expected)
    assert skipped(output).startswith(f"{120 - rendered} of 120 pages not rendered"), output
    moved = [
        (before[row["id"]], row)
        for row in fetch(fresh_dsn, "SELECT * FROM pages")
        if row["updated_at"] != before[row["id"]]["updated_at"]
    ]
    assert place["id"] in {row["location_id"] for _, row in moved}
    for old, new in moved:
        if new["location_id"] not in expected:  # judged again: a sibling changed, not its text
            assert text_of(old) == text_of(new) and quality_of(old) != quality_of(new)
    # The incremental run stored exactly what rendering every page stores.
    assert "0 inserted, 0 updated, 120 unchanged" in generate(fresh_dsn, "--force")


def test_a_changed_location_reaches_its_pages_and_nothing_else_is_written(
    fresh_dsn: str, tmp_path: Path
) -> None:
    setup_site(fresh_dsn, tmp_path)
    changed = [LOCATIONS[0].replace("961855", "970000"), *LOCATIONS[1:]]
    locations = write(tmp_path / "l2.csv", LOCATION_HEADER, changed)
    assert cli(fresh_dsn, "seed", "locations", str(locations)).exit_code == 0
    # Austin's population is in its own pages' text only: the other pages list Austin
    # by name, so they are rendered (their inputs name it) and found unchanged.
    output = generate(fresh_dsn)
    assert "0 inserted, 2 updated, 6 unchanged" in output
    # The same seed file again changes nothing, timestamps included: nothing to render.
    assert cli(fresh_dsn, "seed", "locations", str(locations)).exit_code == 0
    assert skipped(generate(fresh_dsn)).startswith("8 of 8 pages")
    site = (DATA / "site.toml").read_text()
    edited = tmp_path / "site.toml"
    edited.write_text(site.replace('name = "', 'name = "New ', 1))
    assert cli(fresh_dsn, "sites", "add", str(edited)).exit_code == 0
    output = generate(fresh_dsn)
    assert skipped(output) == "" and "0 inserted, 8 updated, 0 unchanged" in output


def test_one_service_built_alone_is_skipped_by_the_next_full_run(
    fresh_dsn: str, tmp_path: Path
) -> None:
    setup_site(fresh_dsn, tmp_path, generate=False)
    assert "4 inserted" in generate(fresh_dsn, "--service", "roof-repair")
    output = generate(fresh_dsn)
    assert skipped(output).startswith("4 of 8 pages not rendered")
    assert "testsite: 8 pages; 4 inserted" in output
    assert "0 inserted, 0 updated, 8 unchanged" in generate(fresh_dsn, "--force")
