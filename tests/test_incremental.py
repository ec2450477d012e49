"""Incremental generate: a service whose inputs are unchanged since it was last built is not
rendered again, and what it skips equals what a full render would have stored."""

from __future__ import annotations

from pathlib import Path

from tests.seeding import (
    DATA,
    LOCATION_HEADER,
    LOCATIONS,
    SERVICE_HEADER,
    SERVICES,
    cli,
    fetch,
    setup_site,
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
    """The CLI's line about services not rendered, or '' when every service was rendered."""
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
        "2 of 2 services not rendered: built from unchanged inputs (--force renders them)"
    )
    assert "testsite: 8 pages; 0 inserted, 0 updated, 8 unchanged, 0 removed" in output
    assert snapshot(fresh_dsn) == before
    # Rendering everything finds nothing to change: what was skipped is what it would store.
    forced = generate(fresh_dsn, "--force")
    assert skipped(forced) == ""
    assert "testsite: 8 pages; 0 inserted, 0 updated, 8 unchanged, 0 removed" in forced
    assert snapshot(fresh_dsn) == before


def test_a_changed_service_renders_its_category_only(fresh_dsn: str, tmp_path: Path) -> None:
    setup_site(fresh_dsn, tmp_path, generate=False)
    services = write(tmp_path / "s.csv", SERVICE_HEADER, [*SERVICES, PAINTING])
    assert cli(fresh_dsn, "seed", "services", str(services)).exit_code == 0
    generate(fresh_dsn)
    # Gutter cleaning's pages link to roof repair by name: the category renders again.
    renamed = [SERVICES[0].replace("Roof Repair", "Roof Repairs"), SERVICES[1], PAINTING]
    services = write(tmp_path / "s2.csv", SERVICE_HEADER, renamed)
    assert cli(fresh_dsn, "seed", "services", str(services)).exit_code == 0
    output = generate(fresh_dsn)
    assert skipped(output).startswith("1 of 3 services not rendered")
    assert "0 inserted, 8 updated, 4 unchanged" in output
    painting = fetch(fresh_dsn, "SELECT title FROM pages WHERE path LIKE '/roof-repair/%'")
    assert all("Roof Repairs" in row["title"] for row in painting)


def test_a_changed_location_or_site_file_renders_every_service(
    fresh_dsn: str, tmp_path: Path
) -> None:
    setup_site(fresh_dsn, tmp_path)
    changed = [LOCATIONS[0].replace("961855", "970000"), *LOCATIONS[1:]]
    locations = write(tmp_path / "l2.csv", LOCATION_HEADER, changed)
    assert cli(fresh_dsn, "seed", "locations", str(locations)).exit_code == 0
    output = generate(fresh_dsn)
    assert skipped(output) == "" and "0 inserted, 2 updated, 6 unchanged" in output
    # The same seed file again changes nothing, timestamps included: nothing to render.
    assert cli(fresh_dsn, "seed", "locations", str(locations)).exit_code == 0
    assert skipped(generate(fresh_dsn)).startswith("2 of 2 services")
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
    assert skipped(output).startswith("1 of 2 services not rendered")
    assert "testsite: 8 pages; 4 inserted, 0 updated, 4 unchanged" in output
