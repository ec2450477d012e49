"""Helpers shared by the seeding and generate tests: small real seed files and the CLI."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import asyncpg
from click.testing import Result
from typer.testing import CliRunner

from seo_engine.cli import app

DATA = Path(__file__).parent / "data"
SEEDS_DIR = Path(__file__).parent.parent / "seeds"
LOCATION_HEADER = (
    "key,slug,name,region_name,region_code,country_code,population,latitude,longitude,timezone"
)
SERVICE_HEADER = "key,slug,name,category,description,attr_price_low"

LOCATIONS = [
    "1,austin-tx,Austin,Texas,TX,US,961855,30.26715,-97.74306,America/Chicago",
    "2,round-rock-tx,Round Rock,Texas,TX,US,119468,30.50826,-97.6789,America/Chicago",
    "3,san-marcos-tx,San Marcos,Texas,TX,US,67553,29.88327,-97.94139,America/Chicago",
    "4,waco-tx,Waco,Texas,TX,US,138486,31.54933,-97.14667,America/Chicago",
]
SERVICES = [
    "s1,roof-repair,Roof Repair,Roofing,Fixing leaks and damaged shingles.,300",
    "s2,gutter-cleaning,Gutter Cleaning,Roofing,Clearing gutters and downspouts.,100",
]

runner = CliRunner()


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def cli(dsn: str, *args: str) -> Result:
    return runner.invoke(app, list(args), env={"DATABASE_URL": dsn})


def fetch(dsn: str, query: str, *params: object) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(dsn)
        try:
            return await connection.fetch(query, *params)
        finally:
            await connection.close()

    return asyncio.run(go())


def setup_site(dsn: str, tmp_path: Path, generate: bool = True) -> None:
    """Add the test site, load four Texas locations and two services, optionally generate."""
    assert cli(dsn, "sites", "add", str(DATA / "site.toml")).exit_code == 0
    locations = write(tmp_path / "locations.csv", LOCATION_HEADER, LOCATIONS)
    services = write(tmp_path / "services.csv", SERVICE_HEADER, SERVICES)
    assert cli(dsn, "seed", "locations", str(locations)).exit_code == 0
    assert cli(dsn, "seed", "services", str(services)).exit_code == 0
    if generate:
        result = cli(dsn, "generate", "--workers", "1")
        assert result.exit_code == 0, result.output


def setup_bundled_subset(dsn: str, tmp_path: Path, count: int) -> Path:
    """The test site with the first `count` bundled US locations and two services,
    generated; returns the locations file (to change and seed again)."""
    assert cli(dsn, "sites", "add", str(DATA / "site.toml")).exit_code == 0
    locations = subset_of_bundled_locations(tmp_path, count)
    assert cli(dsn, "seed", "locations", str(locations)).exit_code == 0
    services = write(tmp_path / "services.csv", SERVICE_HEADER, SERVICES)
    assert cli(dsn, "seed", "services", str(services)).exit_code == 0
    result = cli(dsn, "generate", "--workers", "1")
    assert result.exit_code == 0, result.output
    return locations


async def afetch(dsn: str, query: str, *params: object) -> list[asyncpg.Record]:
    """`fetch` for async tests."""
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetch(query, *params)
    finally:
        await connection.close()


def subset_of_bundled_locations(tmp_path: Path, count: int) -> Path:
    """The first `count` US rows of the bundled locations file, as a CSV of their own."""
    with (SEEDS_DIR / "locations.csv").open(encoding="utf-8") as source:
        reader = csv.reader(source)
        header = next(reader)
        rows = [row for row in reader if row[5] == "US"][:count]
    target = tmp_path / f"us-{count}.csv"
    with target.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return target
