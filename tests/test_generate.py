"""Generating pages through the real CLI: merge counts, redirects, tombstones, faults."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from seo_engine.generate.run import GENERATE_LOCK_CLASS
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
from tests.waiting import until

EXIT_DATA = 65
EXIT_TEMPORARY = 75
SEEDS = Path(__file__).parent.parent / "seeds"


def pages(dsn: str) -> list[tuple[str, bytes, object]]:
    rows = fetch(dsn, "SELECT path, content_hash, updated_at FROM pages ORDER BY path")
    return [(row["path"], row["content_hash"], row["updated_at"]) for row in rows]


def test_generate_builds_every_service_location_page(fresh_dsn: str, tmp_path: Path) -> None:
    setup_site(fresh_dsn, tmp_path)
    rows = fetch(fresh_dsn, "SELECT * FROM pages WHERE path = '/roof-repair/austin-tx'")
    assert len(pages(fresh_dsn)) == len(SERVICES) * len(LOCATIONS)
    page = rows[0]
    assert page["title"] in ("Roof Repair in Austin", "Austin Roof Repair")
    assert page["meta_description"] == "Find roof repair in Austin, population 961,855."
    document = json.loads(page["document"])
    assert document["intro"] == "Fixing leaks and damaged shingles. Serving Austin and Round Rock."
    assert (document["title"], document["h1"]) == (page["title"], page["h1"])
    assert page["deleted_at"] is None


def test_documents_are_stored_with_the_time_and_hash_of_their_generate(
    fresh_dsn: str, tmp_path: Path
) -> None:
    setup_site(fresh_dsn, tmp_path)
    for row in fetch(fresh_dsn, "SELECT document, content_hash, updated_at FROM pages"):
        document = json.loads(row["document"])
        assert document["etag"] == f'"{row["content_hash"].hex()}"'
        assert datetime.fromisoformat(document["updated_at"]) == row["updated_at"]


def test_a_renamed_location_changes_the_documents_that_show_it(
    site_dsn: str, tmp_path: Path
) -> None:
    before = dict((path, tag) for path, tag, _ in pages(site_dsn))
    renamed = [row.replace(",Texas,TX,", ",Tejas,TX,") for row in LOCATIONS]
    assert (
        cli(
            site_dsn, "seed", "locations", str(write(tmp_path / "l.csv", LOCATION_HEADER, renamed))
        ).exit_code
        == 0
    )
    result = cli(site_dsn, "generate")
    assert "0 inserted, 8 updated, 0 unchanged" in result.stdout, result.stdout
    after = dict((path, tag) for path, tag, _ in pages(site_dsn))
    assert all(before[path] != after[path] for path in before)
    document = json.loads(
        fetch(site_dsn, "SELECT document FROM pages WHERE path = '/roof-repair/waco-tx'")[0][0]
    )
    assert document["location"]["region_name"] == "Tejas"


def test_internal_links_point_at_generated_pages(site_dsn: str) -> None:
    paths = {path for path, _, _ in pages(site_dsn)}
    for row in fetch(site_dsn, "SELECT document FROM pages"):
        links = json.loads(row["document"])["links"]
        assert len(links["nearby"]) == len(LOCATIONS) - 1
        assert [link["path"] in paths for link in links["nearby"] + links["services"]] == [True] * (
            len(links["nearby"]) + len(links["services"])
        )


def test_generate_reports_its_counts(fresh_dsn: str, tmp_path: Path) -> None:
    setup_site(fresh_dsn, tmp_path, generate=False)
    result = cli(fresh_dsn, "generate", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "testsite: 8 pages; 8 inserted, 0 updated, 0 unchanged, 0 removed" in result.stdout
    # Each bar (render, then build) ends at its total: a render count that reached the
    # parent late once went to the build bar ("generate 0% 0/8", then "150% 12/8").
    forced = cli(fresh_dsn, "generate", "--workers", "2", "--force")
    bars = re.findall(r"generate +(\d+)% (\d+)/(\d+) pages", forced.stderr)
    assert bars[-2:] == [("100", "8", "8"), ("100", "8", "8")], forced.stderr


def test_an_unchanged_rerun_writes_nothing(site_dsn: str) -> None:
    before = pages(site_dsn)
    result = cli(site_dsn, "generate")
    assert "0 inserted, 0 updated, 8 unchanged, 0 removed" in result.stdout
    assert pages(site_dsn) == before


def test_a_changed_location_updates_only_its_pages(site_dsn: str, tmp_path: Path) -> None:
    changed = [LOCATIONS[0].replace("961855", "970000"), *LOCATIONS[1:]]
    cli(site_dsn, "seed", "locations", str(write(tmp_path / "l2.csv", LOCATION_HEADER, changed)))
    result = cli(site_dsn, "generate")
    assert "0 inserted, 2 updated, 6 unchanged, 0 removed" in result.stdout


def test_a_changed_slug_moves_the_page_and_leaves_a_redirect(site_dsn: str, tmp_path: Path) -> None:
    renamed = [LOCATIONS[0].replace("austin-tx", "austin-texas"), *LOCATIONS[1:]]
    cli(site_dsn, "seed", "locations", str(write(tmp_path / "l2.csv", LOCATION_HEADER, renamed)))
    result = cli(site_dsn, "generate")
    assert "2 redirects added" in result.stdout
    redirects = fetch(site_dsn, "SELECT from_path, to_path FROM redirects ORDER BY from_path")
    assert [(r["from_path"], r["to_path"]) for r in redirects] == [
        ("/gutter-cleaning/austin-tx", "/gutter-cleaning/austin-texas"),
        ("/roof-repair/austin-tx", "/roof-repair/austin-texas"),
    ]
    again = [LOCATIONS[0].replace("austin-tx", "austin-city"), *LOCATIONS[1:]]
    cli(site_dsn, "seed", "locations", str(write(tmp_path / "l3.csv", LOCATION_HEADER, again)))
    cli(site_dsn, "generate")
    chained = fetch(site_dsn, "SELECT from_path, to_path FROM redirects ORDER BY from_path")
    assert {r["to_path"] for r in chained} == {
        "/gutter-cleaning/austin-city",
        "/roof-repair/austin-city",
    }, "redirects must point at the newest path, never at another redirect"


def test_renaming_back_removes_the_redirect_from_a_live_path(site_dsn: str, tmp_path: Path) -> None:
    original = write(tmp_path / "l1.csv", LOCATION_HEADER, LOCATIONS)
    renamed = [LOCATIONS[0].replace("austin-tx", "austin-texas"), *LOCATIONS[1:]]
    cli(site_dsn, "seed", "locations", str(write(tmp_path / "l2.csv", LOCATION_HEADER, renamed)))
    cli(site_dsn, "generate")
    cli(site_dsn, "seed", "locations", str(original))
    cli(site_dsn, "generate")
    redirects = fetch(site_dsn, "SELECT from_path, to_path FROM redirects ORDER BY from_path")
    assert [(r["from_path"], r["to_path"]) for r in redirects] == [
        ("/gutter-cleaning/austin-texas", "/gutter-cleaning/austin-tx"),
        ("/roof-repair/austin-texas", "/roof-repair/austin-tx"),
    ]


def test_a_new_location_can_take_the_old_slug_of_a_renamed_one_in_the_same_run(
    site_dsn: str, tmp_path: Path
) -> None:
    swapped = [
        LOCATIONS[0].replace("austin-tx", "austin-texas"),
        *LOCATIONS[1:],
        "9,austin-tx,Austin Two,Texas,TX,US,1000,30.1,-97.5,America/Chicago",
    ]
    cli(site_dsn, "seed", "locations", str(write(tmp_path / "l2.csv", LOCATION_HEADER, swapped)))
    result = cli(site_dsn, "generate", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "2 inserted" in result.stdout
    rows = fetch(
        site_dsn,
        "SELECT p.path, l.key FROM pages p JOIN locations l ON l.id = p.location_id "
        "WHERE p.path LIKE '%/austin-%' AND p.deleted_at IS NULL ORDER BY p.path",
    )
    assert [(r["path"], r["key"]) for r in rows] == [
        ("/gutter-cleaning/austin-texas", "1"),
        ("/gutter-cleaning/austin-tx", "9"),
        ("/roof-repair/austin-texas", "1"),
        ("/roof-repair/austin-tx", "9"),
    ]
    redirects = fetch(site_dsn, "SELECT from_path FROM redirects")
    assert redirects == [], "a path that is live again is not redirected"


def test_locations_below_a_raised_min_population_become_tombstones(
    site_dsn: str, tmp_path: Path
) -> None:
    site = (DATA / "site.toml").read_text()
    raised = site.replace("[generate]\n", "[generate]\nmin_population = 100000\n")
    assert raised != site
    assert cli(site_dsn, "sites", "add", str(write(tmp_path / "s.toml", raised, []))).exit_code == 0
    result = cli(site_dsn, "generate")
    assert "testsite: 6 pages; 0 inserted, 6 updated, 0 unchanged, 2 removed" in result.stdout, (
        "San Marcos leaves every remaining page's nearby links"
    )
    dead = fetch(site_dsn, "SELECT path FROM pages WHERE deleted_at IS NOT NULL ORDER BY path")
    assert [r["path"] for r in dead] == [
        "/gutter-cleaning/san-marcos-tx",
        "/roof-repair/san-marcos-tx",
    ]
    everything = raised.replace("min_population = 100000", "min_population = 100000000")
    assert (
        cli(site_dsn, "sites", "add", str(write(tmp_path / "s.toml", everything, []))).exit_code
        == 0
    )
    result = cli(site_dsn, "generate")
    assert "testsite: 0 pages; 0 inserted, 0 updated, 0 unchanged, 6 removed" in result.stdout


def test_a_removed_service_leaves_tombstones_and_its_return_builds_new_pages(
    site_dsn: str, tmp_path: Path
) -> None:
    only_roofs = write(tmp_path / "s2.csv", SERVICE_HEADER, SERVICES[:1])
    cli(site_dsn, "seed", "services", str(only_roofs), "--prune")
    result = cli(site_dsn, "generate")
    assert "0 inserted, 4 updated, 0 unchanged, 0 removed" in result.stdout, (
        "prune tombstones pages at seed time; the remaining pages lose a sibling link"
    )
    dead = fetch(site_dsn, "SELECT count(*) AS n FROM pages WHERE deleted_at IS NOT NULL")
    assert dead[0]["n"] == 4
    cli(site_dsn, "seed", "services", str(write(tmp_path / "s3.csv", SERVICE_HEADER, SERVICES)))
    back = cli(site_dsn, "generate")
    assert "4 inserted, 4 updated, 0 unchanged, 0 removed" in back.stdout
    live = fetch(site_dsn, "SELECT count(*) AS n FROM pages WHERE deleted_at IS NULL")
    assert live[0]["n"] == 8


def test_generate_for_one_service_touches_only_its_pages(site_dsn: str, tmp_path: Path) -> None:
    changed = [LOCATIONS[0].replace("961855", "970000"), *LOCATIONS[1:]]
    cli(site_dsn, "seed", "locations", str(write(tmp_path / "l2.csv", LOCATION_HEADER, changed)))
    result = cli(site_dsn, "generate", "--service", "roof-repair")
    assert "testsite: 4 pages; 0 inserted, 1 updated, 3 unchanged, 0 removed" in result.stdout
    unknown = cli(site_dsn, "generate", "--service", "nope")
    assert unknown.exit_code == EXIT_DATA
    assert "unknown service(s) for site 'testsite': nope" in unknown.stderr


def test_a_second_generate_of_the_same_site_fails_fast(fresh_dsn: str, tmp_path: Path) -> None:
    setup_site(fresh_dsn, tmp_path, generate=False)
    site_id = fetch(fresh_dsn, "SELECT id FROM sites")[0]["id"]

    async def hold_lock_and_generate() -> tuple[int, str]:
        holder = await asyncpg.connect(fresh_dsn)
        try:
            await holder.execute("SELECT pg_advisory_lock($1, $2)", GENERATE_LOCK_CLASS, site_id)
            result = await asyncio.to_thread(cli, fresh_dsn, "generate")
            return result.exit_code, result.stderr
        finally:
            await holder.close()

    started = time.monotonic()
    code, errors = asyncio.run(hold_lock_and_generate())
    assert code == EXIT_TEMPORARY
    assert "another generate of site 'testsite' is running" in errors
    assert time.monotonic() - started < 10
    assert pages(fresh_dsn) == []


def test_colliding_paths_are_reported_with_both_rows(fresh_dsn: str, tmp_path: Path) -> None:
    site = (
        (DATA / "site.toml")
        .read_text()
        .replace(
            'base_url = "https://test.example"',
            'base_url = "https://test.example"\npath_pattern = "/{service}-{location}"',
        )
    )
    site_file = tmp_path / "site.toml"
    site_file.write_text(site)
    assert cli(fresh_dsn, "sites", "add", str(site_file)).exit_code == 0
    services = ["a,roof,Roof,R,d,1", "b,roof-repair,Roof Repair,R,d,1"]
    locations = [
        "1,repair-austin,Repair Austin,Texas,TX,US,5,30.2,-97.7,",
        "2,austin,Austin,Texas,TX,US,5,30.3,-97.7,",
    ]
    cli(fresh_dsn, "seed", "services", str(write(tmp_path / "s.csv", SERVICE_HEADER, services)))
    cli(fresh_dsn, "seed", "locations", str(write(tmp_path / "l.csv", LOCATION_HEADER, locations)))
    result = cli(fresh_dsn, "generate")
    assert result.exit_code == EXIT_DATA
    assert "path collision: /roof-repair-austin" in result.stderr
    assert "service a + location 1" in result.stderr
    assert "service b + location 2" in result.stderr
    assert pages(fresh_dsn) == []


def test_a_template_reaching_for_python_internals_is_refused(site_dsn: str, tmp_path: Path) -> None:
    before = pages(site_dsn)
    hostile = (
        (DATA / "site.toml")
        .read_text()
        .replace(
            'h1 = "{{ service.name }} in {{ location.name }}"',
            'h1 = "{{ service.name.__class__.__mro__[1].__subclasses__() }}"',
        )
    )
    site_file = tmp_path / "hostile.toml"
    site_file.write_text(hostile)
    assert cli(site_dsn, "sites", "add", str(site_file)).exit_code == 0
    result = cli(site_dsn, "generate")
    assert result.exit_code == EXIT_DATA
    assert "h1 variant 1" in result.stderr
    assert "unsafe" in result.stderr
    assert pages(site_dsn) == before


def test_a_runaway_template_is_stopped_by_the_time_limit(fresh_dsn: str, tmp_path: Path) -> None:
    setup_site(fresh_dsn, tmp_path, generate=False)
    loop = (
        "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
        "x{% endfor %}{% endfor %}{% endfor %}"
    )
    runaway = (DATA / "site.toml").read_text().replace('answer = "Yes."', f'answer = "{loop}"')
    site_file = tmp_path / "runaway.toml"
    site_file.write_text(runaway)
    assert cli(fresh_dsn, "sites", "add", str(site_file)).exit_code == 0
    started = time.monotonic()
    result = cli(fresh_dsn, "generate", "--workers", "1")
    assert result.exit_code == EXIT_DATA
    assert "took longer than the time limit" in result.stderr
    assert time.monotonic() - started < 30


def test_a_huge_range_is_refused(fresh_dsn: str, tmp_path: Path) -> None:
    setup_site(fresh_dsn, tmp_path, generate=False)
    huge = (
        (DATA / "site.toml")
        .read_text()
        .replace('answer = "Yes."', 'answer = "{% for i in range(10**9) %}x{% endfor %}"')
    )
    site_file = tmp_path / "huge.toml"
    site_file.write_text(huge)
    cli(fresh_dsn, "sites", "add", str(site_file))
    result = cli(fresh_dsn, "generate", "--workers", "1")
    assert result.exit_code == EXIT_DATA
    assert "exceeds the limit" in result.stderr


def bundled_subset(tmp_path: Path, count: int) -> Path:
    """The first `count` US rows of the bundled locations file."""
    with (SEEDS / "locations.csv").open(encoding="utf-8") as source:
        reader = csv.reader(source)
        header = next(reader)
        rows = [row for row in reader if row[5] == "US"][:count]
    target = tmp_path / "us.csv"
    with target.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return target


@pytest.mark.faults
@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGINT])
def test_a_generate_stopped_mid_copy_leaves_the_page_set_intact(
    fresh_dsn: str, tmp_path: Path, signal_number: int
) -> None:
    assert cli(fresh_dsn, "sites", "add", str(SEEDS / "site.toml")).exit_code == 0
    cli(fresh_dsn, "seed", "locations", str(bundled_subset(tmp_path, 100)))
    cli(fresh_dsn, "seed", "services", str(SEEDS / "services.csv"))
    assert cli(fresh_dsn, "generate").exit_code == 0
    before = pages(fresh_dsn)
    changed = (
        (SEEDS / "site.toml")
        .read_text()
        .replace(
            '"{{ service.name }} in {{ location.name }}, {{ location.area }}",',
            '"Best {{ service.name }} in {{ location.name }}",',
        )
    )
    (tmp_path / "site.toml").write_text(changed)
    assert cli(fresh_dsn, "sites", "add", str(tmp_path / "site.toml")).exit_code == 0
    site_id = fetch(fresh_dsn, "SELECT id FROM sites")[0]["id"]
    env = {**os.environ, "DATABASE_URL": fresh_dsn}
    with subprocess.Popen(
        [sys.executable, "-m", "seo_engine", "generate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:

        def copying() -> bool:
            assert process.poll() is None, "generate finished before it could be killed"
            stages = fetch(
                fresh_dsn,
                "SELECT tablename FROM pg_tables WHERE tablename LIKE $1",
                f"generate_stage_{site_id}_%",
            )
            if not stages:
                return False
            staged = fetch(fresh_dsn, f"SELECT count(*) AS n FROM {stages[0]['tablename']}")
            return bool(staged[0]["n"])

        until(copying, 60, "generate to start copying")
        process.send_signal(signal_number)
        _, errors = process.communicate(timeout=10)
    if signal_number == signal.SIGINT:
        assert process.returncode == 130
        assert errors.splitlines()[-1].startswith(
            "error: interrupted; the stored data is unchanged"
        )
    assert pages(fresh_dsn) == before

    def backends_gone() -> bool:
        rows = fetch(
            fresh_dsn,
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'seo-engine'",
        )
        return not rows[0]["n"]

    until(backends_gone, 5, "the killed generate's backends to go")
    rerun = cli(fresh_dsn, "generate")
    assert rerun.exit_code == 0
    assert f"{len(before):,} pages; 0 inserted" in rerun.stdout
    assert " 0 updated" not in rerun.stdout, "the new title variant must reach some pages"
    converged = cli(fresh_dsn, "generate")
    assert f"0 updated, {len(before):,} unchanged" in converged.stdout
