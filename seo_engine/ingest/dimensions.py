"""Locations and services: stage a validated seed file, check it whole, then merge it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from seo_engine.db import changes, database
from seo_engine.db.database import Connection
from seo_engine.ingest import neighbours
from seo_engine.ingest.seedfile import (
    LOCATIONS,
    SERVICES,
    Rejected,
    RejectsWriter,
    Row,
    Schema,
    header_of,
    read_records,
)
from seo_engine.ingest.sites import Site

BATCH_ROWS = 5000
REPORTED_IN_FULL = 100

# Per kind: the staging columns (after `line`) with their SQL types, and the table.
STAGE_TYPES = {
    "locations": (
        "key text, slug text, name text, region_name text, region_code text, "
        "country_code text, population bigint, latitude float8, longitude float8, "
        "timezone text, attributes jsonb"
    ),
    "services": "key text, slug text, name text, category text, description text, attributes jsonb",
}
DUPLICATES = """
SELECT field, value, lines FROM (
    SELECT 'key' AS field, key AS value, array_agg(line ORDER BY line) AS lines
    FROM stage GROUP BY key HAVING count(*) > 1
    UNION ALL
    SELECT 'slug', slug, array_agg(line ORDER BY line) FROM stage GROUP BY slug HAVING count(*) > 1
) AS duplicated
"""
# A slug in the file that an existing row keeps (the row is not in the file with another
# slug, and is not being pruned) would break the unique slug.
SLUG_TAKEN = """
SELECT s.line, s.slug, t.key AS owner
FROM stage s JOIN {table} t ON t.site_id = $1 AND t.slug = s.slug AND t.key <> s.key
WHERE NOT EXISTS (SELECT 1 FROM stage o WHERE o.key = t.key AND o.slug <> t.slug)
  AND NOT ($2 AND NOT EXISTS (SELECT 1 FROM stage o WHERE o.key = t.key))
"""
STAGED_RECORD = "SELECT * FROM stage WHERE line = ANY($1::int[]) ORDER BY line"
DROP_LINES = "DELETE FROM stage WHERE line = ANY($1::int[])"
PLAN = """
SELECT count(*) FILTER (WHERE t.id IS NULL) AS inserted,
       count(*) FILTER (WHERE t.id IS NOT NULL AND ({changed})) AS updated,
       count(*) FILTER (WHERE t.id IS NOT NULL AND NOT ({changed})) AS unchanged
FROM stage s LEFT JOIN {table} t ON t.site_id = $1 AND t.key = s.key
"""
COUNT_ABSENT = """
SELECT count(*) FROM {table} t
WHERE t.site_id = $1 AND NOT EXISTS (SELECT 1 FROM stage s WHERE s.key = t.key)
"""
MERGE = """
WITH merged AS (
    INSERT INTO {table} (site_id, {columns})
    SELECT $1, {columns} FROM stage
    ON CONFLICT (site_id, key) DO UPDATE SET {assignments}, updated_at = now()
    WHERE ({target}) IS DISTINCT FROM ({excluded})
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted) AS updated
FROM merged
"""
PRUNE = """
WITH gone AS (
    DELETE FROM {table} t
    WHERE t.site_id = $1 AND NOT EXISTS (SELECT 1 FROM stage s WHERE s.key = t.key)
    RETURNING t.id
), tombstoned AS (
    UPDATE pages SET deleted_at = now(), updated_at = now()
    WHERE site_id = $1 AND {page_column} IN (SELECT id FROM gone) AND deleted_at IS NULL
)
SELECT count(*) FROM gone
"""
SELECT_POINTS = "SELECT id, latitude, longitude FROM locations WHERE site_id = $1"
CLEAR_NEIGHBOURS = """
DELETE FROM location_neighbours n USING locations l
WHERE l.id = n.location_id AND l.site_id = $1
"""
NEIGHBOURS_MISSING = """
SELECT EXISTS (
    SELECT 1 FROM locations l WHERE l.site_id = $1
    AND NOT EXISTS (SELECT 1 FROM location_neighbours n WHERE n.location_id = l.id)
) AND (SELECT count(*) FROM locations WHERE site_id = $1) > 1
"""


@dataclass(frozen=True)
class SeedOptions:
    fmt: str
    max_errors: int = 0
    rejects: Path | None = None
    dry_run: bool = False
    prune: bool = False
    country: str | None = None


@dataclass
class SeedReport:
    kind: str
    path: Path
    rows: int = 0
    skipped: int = 0
    rejected: int = 0
    errors: list[Rejected] = field(default_factory=list)
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    loaded: bool = False

    def reject(self, rejected: Rejected) -> None:
        self.rejected += 1
        if len(self.errors) < REPORTED_IN_FULL:
            self.errors.append(rejected)


class SeedRejected(Exception):
    """The file has more bad rows than allowed; nothing was written."""

    def __init__(self, report: SeedReport) -> None:
        super().__init__(f"{report.path}: {report.rejected} bad row(s); nothing was loaded")
        self.report = report


def schema_for(kind: str) -> Schema:
    return {"locations": LOCATIONS, "services": SERVICES}[kind]


def _sql_lists(schema: Schema) -> dict[str, str]:
    columns = [*schema.columns, "attributes"]
    return {
        "table": schema.name,
        "columns": ", ".join(columns),
        "assignments": ", ".join(f"{c} = excluded.{c}" for c in columns if c != "key"),
        "target": ", ".join(f"{schema.name}.{c}" for c in columns),
        "excluded": ", ".join(f"excluded.{c}" for c in columns),
        "changed": " OR ".join(f"t.{c} IS DISTINCT FROM s.{c}" for c in columns),
        "page_column": "location_id" if schema.name == "locations" else "service_id",
    }


async def _stage(
    connection: Connection,
    schema: Schema,
    path: Path,
    options: SeedOptions,
    report: SeedReport,
    rejects: RejectsWriter | None,
    progress: Callable[[int], None],
) -> None:
    await connection.execute(
        f"CREATE TEMP TABLE stage (line integer, {STAGE_TYPES[schema.name]}) ON COMMIT DROP"
    )
    country_index = schema.columns.index("country_code") if options.country else -1
    batch: list[tuple[object, ...]] = []
    rejected = 0
    for record in read_records(path, schema, options.fmt):
        if isinstance(record, Row):
            if country_index >= 0 and record.values[country_index] != options.country:
                report.skipped += 1
                if report.skipped % BATCH_ROWS == 0:
                    progress(BATCH_ROWS)
                continue
            report.rows += 1
            batch.append((record.line, *record.values))
            if len(batch) >= BATCH_ROWS:
                await connection.copy_records_to_table("stage", records=batch)
                progress(len(batch))
                batch = []
        else:
            report.rows += 1
            rejected += 1
            report.reject(record)
            if rejects is not None:
                rejects.write(record)
    if batch:
        await connection.copy_records_to_table("stage", records=batch)
        progress(len(batch))
    progress(report.skipped % BATCH_ROWS + rejected)  # the rows not counted above
    await connection.execute("ANALYZE stage")


async def _whole_file_checks(
    connection: Connection, site: Site, schema: Schema, options: SeedOptions
) -> list[Rejected]:
    """Duplicates inside the file and slugs that another stored row keeps."""
    reasons: dict[int, list[str]] = {}
    for row in await connection.fetch(DUPLICATES):
        first, *later = row["lines"]
        for line in later:
            reasons.setdefault(line, []).append(
                f"duplicate {row['field']} '{row['value']}' (first on line {first})"
            )
    taken = SLUG_TAKEN.format(table=schema.name)
    for row in await connection.fetch(taken, site.id, options.prune):
        reasons.setdefault(row["line"], []).append(
            f"slug '{row['slug']}' already belongs to {schema.name[:-1]} '{row['owner']}'"
        )
    if not reasons:
        return []
    columns = ["line", *schema.columns, "attributes"]
    found = []
    for row in await connection.fetch(STAGED_RECORD, sorted(reasons)):
        record = {name: "" if row[name] is None else str(row[name]) for name in columns[1:]}
        found.append(Rejected(row["line"], tuple(reasons[row["line"]]), record))
    return found


async def _refresh_neighbours(connection: Connection, site: Site) -> None:
    rows = await connection.fetch(SELECT_POINTS, site.id)
    points = [neighbours.Point(r["id"], r["latitude"], r["longitude"]) for r in rows]
    nearest = neighbours.nearest(points)
    await connection.execute(CLEAR_NEIGHBOURS, site.id)
    records = [
        (location, rank, other, km)
        for location, ranked in nearest.items()
        for rank, (other, km) in enumerate(ranked, 1)
    ]
    await connection.copy_records_to_table(
        "location_neighbours",
        records=records,
        columns=["location_id", "rank", "neighbour_id", "distance_km"],
    )


async def seed(
    connection: Connection,
    site: Site,
    kind: str,
    path: Path,
    options: SeedOptions,
    progress: Callable[[int], None] = lambda rows: None,
) -> SeedReport:
    """Validate and load one seed file in one transaction; raise SeedRejected if too bad."""
    schema = schema_for(kind)
    header = header_of(path, options.fmt, schema)  # raises SeedFileError on schema drift
    report = SeedReport(kind=kind, path=path)
    sql = _sql_lists(schema)
    rejects = (
        RejectsWriter(options.rejects, schema, options.fmt, header) if options.rejects else None
    )
    try:
        async with connection.transaction():
            await connection.execute("SET CONSTRAINTS ALL DEFERRED")
            await _stage(connection, schema, path, options, report, rejects, progress)
            late = await _whole_file_checks(connection, site, schema, options)
            await reject_late(connection, late, report, rejects, options.max_errors)
            if options.dry_run:
                await _plan(connection, site, sql, options, report)
                raise _DryRun
            merged = await connection.fetchrow(MERGE.format(**sql), site.id)
            assert merged is not None  # an aggregate always returns a row
            report.inserted, report.updated = merged["inserted"], merged["updated"]
            staged = report.rows - report.rejected
            report.unchanged = staged - report.inserted - report.updated
            if options.prune:
                report.removed = await connection.fetchval(PRUNE.format(**sql), site.id)
            changed = report.inserted + report.updated + report.removed
            if kind == "locations" and (
                changed or await connection.fetchval(NEIGHBOURS_MISSING, site.id)
            ):
                await _refresh_neighbours(connection, site)
            if report.removed:  # tombstoned pages: API workers drop what they cached
                await changes.notify(connection)
            report.loaded = True
    except _DryRun:
        pass
    finally:
        if rejects is not None:
            rejects.close()
    if report.loaded and (report.inserted or report.updated or report.removed):
        await database.refresh_statistics(connection, schema.name)
    return report


async def reject_late(
    connection: Connection,
    late: list[Rejected],
    report: SeedReport,
    rejects: RejectsWriter | None,
    max_errors: int,
) -> None:
    """Count the rows the whole-file checks found bad (after the row checks' own), raise
    SeedRejected when there are too many, and drop them from the stage otherwise."""
    for rejected in late:
        report.reject(rejected)
        if rejects is not None:
            rejects.write(rejected)
    if report.rejected > max_errors:
        raise SeedRejected(report)
    if late:
        await connection.execute(DROP_LINES, [r.line for r in late])


class _DryRun(Exception):
    """Raised inside the transaction to roll a dry run back."""


async def _plan(
    connection: Connection,
    site: Site,
    sql: dict[str, str],
    options: SeedOptions,
    report: SeedReport,
) -> None:
    planned = await connection.fetchrow(PLAN.format(**sql), site.id)
    assert planned is not None  # an aggregate always returns a row
    report.inserted, report.updated, report.unchanged = (
        planned["inserted"],
        planned["updated"],
        planned["unchanged"],
    )
    if options.prune:
        report.removed = await connection.fetchval(COUNT_ABSENT.format(**sql), site.id)
