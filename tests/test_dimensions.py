"""Seeding locations and services through the real CLI into a real database."""

from __future__ import annotations

import json
from pathlib import Path

from tests.seeding import (
    DATA,
    LOCATION_HEADER,
    LOCATIONS,
    SERVICE_HEADER,
    SERVICES,
    cli,
    fetch,
    write,
)

EXIT_DATA = 65


def add_site(dsn: str) -> None:
    assert cli(dsn, "sites", "add", str(DATA / "site.toml")).exit_code == 0


def stored_locations(dsn: str) -> list[tuple[str, str, str]]:
    rows = fetch(dsn, "SELECT key, slug, name FROM locations ORDER BY key")
    return [(row["key"], row["slug"], row["name"]) for row in rows]


def test_a_clean_file_loads_every_row(fresh_dsn: str, tmp_path: Path) -> None:
    add_site(fresh_dsn)
    result = cli(
        fresh_dsn, "seed", "locations", str(write(tmp_path / "l.csv", LOCATION_HEADER, LOCATIONS))
    )
    assert result.exit_code == 0, result.output
    assert "4 inserted, 0 updated, 0 unchanged, 0 removed" in result.stdout
    assert [key for key, _, _ in stored_locations(fresh_dsn)] == ["1", "2", "3", "4"]
    neighbours = fetch(fresh_dsn, "SELECT count(*) AS n FROM location_neighbours")
    assert neighbours[0]["n"] == 4 * 3


def test_loading_the_same_file_again_changes_nothing(fresh_dsn: str, tmp_path: Path) -> None:
    add_site(fresh_dsn)
    path = write(tmp_path / "l.csv", LOCATION_HEADER, LOCATIONS)
    cli(fresh_dsn, "seed", "locations", str(path))
    before = fetch(fresh_dsn, "SELECT key, updated_at FROM locations ORDER BY key")
    again = cli(fresh_dsn, "seed", "locations", str(path))
    assert "0 inserted, 0 updated, 4 unchanged, 0 removed" in again.stdout
    assert fetch(fresh_dsn, "SELECT key, updated_at FROM locations ORDER BY key") == before


def test_a_changed_row_is_updated(fresh_dsn: str, tmp_path: Path) -> None:
    add_site(fresh_dsn)
    cli(fresh_dsn, "seed", "locations", str(write(tmp_path / "l.csv", LOCATION_HEADER, LOCATIONS)))
    changed = [LOCATIONS[0].replace("Austin,", "Austin City,"), *LOCATIONS[1:]]
    result = cli(
        fresh_dsn, "seed", "locations", str(write(tmp_path / "l2.csv", LOCATION_HEADER, changed))
    )
    assert "0 inserted, 1 updated, 3 unchanged, 0 removed" in result.stdout
    assert stored_locations(fresh_dsn)[0] == ("1", "austin-tx", "Austin City")


def test_one_bad_row_loads_nothing_and_reports_its_line(fresh_dsn: str, tmp_path: Path) -> None:
    add_site(fresh_dsn)
    bad = [*LOCATIONS[:2], "5,bad-lat,Nowhere,,,US,10,123.4,0,", *LOCATIONS[2:]]
    result = cli(
        fresh_dsn, "seed", "locations", str(write(tmp_path / "l.csv", LOCATION_HEADER, bad))
    )
    assert result.exit_code == EXIT_DATA
    assert "line 4: latitude" in result.stderr
    assert "nothing was loaded" in result.stderr
    assert stored_locations(fresh_dsn) == []


def test_a_rejected_load_leaves_stored_rows_untouched(fresh_dsn: str, tmp_path: Path) -> None:
    add_site(fresh_dsn)
    cli(fresh_dsn, "seed", "locations", str(write(tmp_path / "l.csv", LOCATION_HEADER, LOCATIONS)))
    before = fetch(fresh_dsn, "SELECT * FROM locations ORDER BY id")
    renamed = [row.replace("Round Rock", "Round Rock Renamed") for row in LOCATIONS]
    bad = [*renamed, "9,x-tx,X,Texas,TX,US,-5,30,-97,"]
    result = cli(
        fresh_dsn, "seed", "locations", str(write(tmp_path / "b.csv", LOCATION_HEADER, bad))
    )
    assert result.exit_code == EXIT_DATA
    assert fetch(fresh_dsn, "SELECT * FROM locations ORDER BY id") == before


def test_duplicate_keys_and_slugs_name_both_lines(fresh_dsn: str, tmp_path: Path) -> None:
    add_site(fresh_dsn)
    rows = [
        *LOCATIONS,
        "1,austin-again,Austin Again,Texas,TX,US,5,30,-97,",
        "7,waco-tx,Waco Twin,Texas,TX,US,5,31,-97,",
    ]
    result = cli(
        fresh_dsn, "seed", "locations", str(write(tmp_path / "l.csv", LOCATION_HEADER, rows))
    )
    assert result.exit_code == EXIT_DATA
    assert "line 6: duplicate key '1' (first on line 2)" in result.stderr
    assert "line 7: duplicate slug 'waco-tx' (first on line 5)" in result.stderr


def test_max_errors_loads_good_rows_and_writes_rejects(fresh_dsn: str, tmp_path: Path) -> None:
    add_site(fresh_dsn)
    rows = [*LOCATIONS, "8,Bad Slug,X,,,US,1,0,0,", "9,ok-slug,Y,,,USA,1,0,0,"]
    rejects = tmp_path / "rejects.csv"
    result = cli(
        fresh_dsn,
        "seed",
        "locations",
        str(write(tmp_path / "l.csv", LOCATION_HEADER, rows)),
        "--max-errors",
        "2",
        "--rejects",
        str(rejects),
    )
    assert result.exit_code == 0, result.output
    assert "4 inserted" in result.stdout
    written = rejects.read_text().splitlines()
    assert written[0] == LOCATION_HEADER + ",line,reasons"
    assert [line.split(",")[0] for line in written[1:]] == ["8", "9"]
    assert ",6," in written[1] and "slug" in written[1]
    assert ",7," in written[2] and "country_code" in written[2]


def test_more_errors_than_allowed_loads_nothing(fresh_dsn: str, tmp_path: Path) -> None:
    add_site(fresh_dsn)
    rows = [*LOCATIONS, "8,Bad Slug,X,,,US,1,0,0,", "9,ok-slug,Y,,,USA,1,0,0,"]
    path = write(tmp_path / "l.csv", LOCATION_HEADER, rows)
    result = cli(fresh_dsn, "seed", "locations", str(path), "--max-errors", "1")
    assert result.exit_code == EXIT_DATA
    assert stored_locations(fresh_dsn) == []


def test_a_dry_run_reports_without_writing(fresh_dsn: str, tmp_path: Path) -> None:
    add_site(fresh_dsn)
    path = write(tmp_path / "l.csv", LOCATION_HEADER, LOCATIONS)
    result = cli(fresh_dsn, "seed", "locations", str(path), "--dry-run")
    assert result.exit_code == 0
    assert (
        "4 inserted, 0 updated, 0 unchanged, 0 removed (dry run: nothing written)" in result.stdout
    )
    assert stored_locations(fresh_dsn) == []


def test_schema_drift_is_refused_before_anything_is_sent(fresh_dsn: str, tmp_path: Path) -> None:
    add_site(fresh_dsn)
    header = LOCATION_HEADER.replace("latitude", "lat")
    result = cli(fresh_dsn, "seed", "locations", str(write(tmp_path / "l.csv", header, LOCATIONS)))
    assert result.exit_code == EXIT_DATA
    assert "missing:    latitude" in result.stderr
    assert "did you mean latitude?" in result.stderr
    assert stored_locations(fresh_dsn) == []


def test_ndjson_input_loads_like_csv(fresh_dsn: str, tmp_path: Path) -> None:
    add_site(fresh_dsn)
    lines = [
        json.dumps(
            {
                "key": "s1",
                "slug": "roof-repair",
                "name": "Roof Repair",
                "category": "Roofing",
                "attributes": {"price_low": 300},
            }
        ),
        json.dumps(
            {
                "key": "s2",
                "slug": "gutter-cleaning",
                "name": "Gutter Cleaning",
                "attr_price_low": "100",
            }
        ),
    ]
    path = tmp_path / "services.ndjson"
    path.write_text("\n".join(lines) + "\n")
    result = cli(fresh_dsn, "seed", "services", str(path))
    assert result.exit_code == 0, result.output
    rows = fetch(fresh_dsn, "SELECT key, attributes::text AS a FROM services ORDER BY key")
    assert [(row["key"], json.loads(row["a"])) for row in rows] == [
        ("s1", {"price_low": 300}),
        ("s2", {"price_low": "100"}),
    ]


def test_prune_removes_absent_rows_and_tombstones_their_pages(
    fresh_dsn: str, tmp_path: Path
) -> None:
    add_site(fresh_dsn)
    cli(fresh_dsn, "seed", "locations", str(write(tmp_path / "l.csv", LOCATION_HEADER, LOCATIONS)))
    cli(fresh_dsn, "seed", "services", str(write(tmp_path / "s.csv", SERVICE_HEADER, SERVICES)))
    assert cli(fresh_dsn, "generate", "--workers", "1").exit_code == 0
    kept = write(tmp_path / "l2.csv", LOCATION_HEADER, LOCATIONS[:3])
    without_prune = cli(fresh_dsn, "seed", "locations", str(kept))
    assert "0 removed" in without_prune.stdout
    result = cli(fresh_dsn, "seed", "locations", str(kept), "--prune")
    assert "0 inserted, 0 updated, 3 unchanged, 1 removed" in result.stdout
    dead = fetch(fresh_dsn, "SELECT path FROM pages WHERE deleted_at IS NOT NULL ORDER BY path")
    assert [row["path"] for row in dead] == ["/gutter-cleaning/waco-tx", "/roof-repair/waco-tx"]


def test_swapping_two_slugs_in_one_load_works(fresh_dsn: str, tmp_path: Path) -> None:
    add_site(fresh_dsn)
    cli(fresh_dsn, "seed", "services", str(write(tmp_path / "s.csv", SERVICE_HEADER, SERVICES)))
    swapped = [
        SERVICES[0].replace("roof-repair", "gutter-cleaning"),
        SERVICES[1].replace("gutter-cleaning", "roof-repair"),
    ]
    result = cli(
        fresh_dsn, "seed", "services", str(write(tmp_path / "s2.csv", SERVICE_HEADER, swapped))
    )
    assert result.exit_code == 0, result.output
    rows = fetch(fresh_dsn, "SELECT key, slug FROM services ORDER BY key")
    assert [(r["key"], r["slug"]) for r in rows] == [
        ("s1", "gutter-cleaning"),
        ("s2", "roof-repair"),
    ]


def test_a_slug_kept_by_another_stored_row_is_reported(fresh_dsn: str, tmp_path: Path) -> None:
    add_site(fresh_dsn)
    cli(fresh_dsn, "seed", "services", str(write(tmp_path / "s.csv", SERVICE_HEADER, SERVICES)))
    newcomer = ["s3,roof-repair,Roof Fixing,Roofing,Another.,10"]
    result = cli(
        fresh_dsn, "seed", "services", str(write(tmp_path / "s3.csv", SERVICE_HEADER, newcomer))
    )
    assert result.exit_code == EXIT_DATA
    assert "line 2: slug 'roof-repair' already belongs to service 's1'" in result.stderr


def test_country_filter_loads_only_that_country(fresh_dsn: str, tmp_path: Path) -> None:
    add_site(fresh_dsn)
    rows = [*LOCATIONS, "10,paris-fr,Paris,,11,FR,2138551,48.85341,2.3488,Europe/Paris"]
    path = write(tmp_path / "l.csv", LOCATION_HEADER, rows)
    result = cli(fresh_dsn, "seed", "locations", str(path), "--country", "us")
    assert "1 skipped by --country" in result.stdout
    assert len(stored_locations(fresh_dsn)) == 4
    # The progress line counts skipped rows too: it ends at the file's rows, not short.
    assert "seed locations 100% 5/5 rows" in result.stderr


def test_seeding_without_a_site_says_how_to_add_one(fresh_dsn: str, tmp_path: Path) -> None:
    path = write(tmp_path / "l.csv", LOCATION_HEADER, LOCATIONS)
    result = cli(fresh_dsn, "seed", "locations", str(path))
    assert result.exit_code == EXIT_DATA
    assert "seo-engine sites add" in result.stderr
