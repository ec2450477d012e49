"""Hand edits of generated pages: load them from a seed file, and look them up per page.

An override sets one generated field of the pages it targets: one (service, location)
pair, a service in every location (`location` is `*`), or a location across services
(`service` is `*`). For a page, an exact pair wins over a service-wide override, which
wins over a location-wide one, which wins over the template. `generate` applies them;
nothing it does overwrites them (docs/overrides.md).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seo_engine import paths
from seo_engine.db.database import Connection
from seo_engine.ingest.content import SEPARATOR, ContentTemplates
from seo_engine.ingest.dimensions import STAGED_RECORD, SeedOptions, SeedReport, reject_late
from seo_engine.ingest.seedfile import (
    OVERRIDES,
    Rejected,
    RejectsWriter,
    Row,
    header_of,
    read_records,
)
from seo_engine.ingest.sites import Site

EVERY = "*"
LOCAL_PARAGRAPH = "local_paragraph"  # a paragraph of its own after the intro
NOINDEX = "noindex"  # true: served noindex whatever the quality gate says
EXTRA_FIELDS = (LOCAL_PARAGRAPH, NOINDEX)
TRUE, FALSE = ("true", "yes", "1"), ("false", "no", "0")
BATCH_ROWS = 5000
_LIST_FIELD = re.compile(r"(sections?|faq)[ ._-]?([0-9]+)[ ._-]?(heading|body|question|answer)")

STAGE = """
CREATE TEMP TABLE stage (line integer, service text, location text, field text, value text)
ON COMMIT DROP
"""
DUPLICATES = """
SELECT service, location, field, array_agg(line ORDER BY line) AS lines
FROM stage GROUP BY service, location, field HAVING count(*) > 1
"""
UNKNOWN = """
SELECT s.line, s.service, s.location,
       s.service <> '*' AND sv.id IS NULL AS no_service,
       s.location <> '*' AND l.id IS NULL AS no_location
FROM stage s
LEFT JOIN services sv ON sv.site_id = $1 AND sv.slug = s.service
LEFT JOIN locations l ON l.site_id = $1 AND l.slug = s.location
WHERE (s.service <> '*' AND sv.id IS NULL) OR (s.location <> '*' AND l.id IS NULL)
"""
RESOLVE = """
CREATE TEMP TABLE resolved ON COMMIT DROP AS
SELECT sv.id AS service_id, l.id AS location_id, s.field, s.value
FROM stage s
LEFT JOIN services sv ON sv.site_id = $1 AND sv.slug = s.service
LEFT JOIN locations l ON l.site_id = $1 AND l.slug = s.location
"""
PLAN = """
SELECT count(*) FILTER (WHERE o.field IS NULL) AS inserted,
       count(*) FILTER (WHERE o.value <> r.value) AS updated,
       count(*) FILTER (WHERE o.value = r.value) AS unchanged
FROM resolved r LEFT JOIN overrides o ON o.site_id = $1
  AND o.service_id IS NOT DISTINCT FROM r.service_id
  AND o.location_id IS NOT DISTINCT FROM r.location_id AND o.field = r.field
"""
MERGE = """
WITH merged AS (
    INSERT INTO overrides (site_id, service_id, location_id, field, value)
    SELECT $1, service_id, location_id, field, value FROM resolved
    ON CONFLICT (site_id, coalesce(service_id, 0), coalesce(location_id, 0), field)
    DO UPDATE SET value = excluded.value, updated_at = now()
    WHERE overrides.value <> excluded.value
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted) AS updated
FROM merged
"""
ABSENT = """
FROM overrides o WHERE o.site_id = $1 AND NOT EXISTS (
    SELECT 1 FROM resolved r WHERE r.service_id IS NOT DISTINCT FROM o.service_id
      AND r.location_id IS NOT DISTINCT FROM o.location_id AND r.field = o.field)
"""
PRUNE = "DELETE " + ABSENT
COUNT_ABSENT = "SELECT count(*) " + ABSENT
SELECT_LISTED = """
SELECT coalesce(sv.slug, '*') AS service, coalesce(l.slug, '*') AS location, o.field, o.value
FROM overrides o
LEFT JOIN services sv ON sv.id = o.service_id LEFT JOIN locations l ON l.id = o.location_id
WHERE o.site_id = $1 ORDER BY 1, 2, 3
"""
SELECT_OVERRIDES = """
SELECT service_id, location_id, field, value FROM overrides WHERE site_id = $1
"""


class Fields:
    """The fields of a site's pages an override can set: the blocks of its content
    templates (`title`, `sections 2 body`, `faq 1 answer` …), `local_paragraph` and
    `noindex`."""

    def __init__(self, templates: ContentTemplates) -> None:
        self.blocks = {where: index for index, (where, _) in enumerate(templates.blocks)}
        self.names = [*self.blocks, *EXTRA_FIELDS]

    def check(self, field: str, value: str) -> tuple[str, str] | str:
        """The field's canonical name and the value to store, or the reason it is refused."""
        name = field.strip().lower()
        listed = _LIST_FIELD.fullmatch(name)
        if listed:
            kind, number, part = listed.groups()
            name = f"{'sections' if kind.startswith('section') else 'faq'} {int(number)} {part}"
        if name not in self.names:
            close = difflib.get_close_matches(name, self.names, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"field: {field!r} is not a field of this site's pages{hint}"
        if SEPARATOR in value:
            return "value: contains a control character"
        if name == NOINDEX:
            lowered = value.strip().lower()
            if lowered not in (*TRUE, *FALSE):
                return f"value: noindex must be true or false, not {value!r}"
            return name, "true" if lowered in TRUE else "false"
        return name, value


class Overrides:
    """A site's overrides, looked up per page in order of precedence."""

    def __init__(self, rows: Iterable[tuple[int | None, int | None, str, str]] = ()) -> None:
        self.pairs: dict[tuple[int, int], dict[str, str]] = {}
        self.services: dict[int, dict[str, str]] = {}
        self.locations: dict[int, dict[str, str]] = {}
        for service_id, location_id, field, value in rows:
            if service_id is not None and location_id is not None:
                self.pairs.setdefault((service_id, location_id), {})[field] = value
            elif service_id is not None:
                self.services.setdefault(service_id, {})[field] = value
            elif location_id is not None:
                self.locations.setdefault(location_id, {})[field] = value

    def __bool__(self) -> bool:
        return bool(self.pairs or self.services or self.locations)

    def for_page(self, service_id: int, location_id: int) -> dict[str, str]:
        """The fields set for one page: exact pair, then service-wide, then location-wide."""
        if not self:
            return {}
        return {
            **self.locations.get(location_id, {}),
            **self.services.get(service_id, {}),
            **self.pairs.get((service_id, location_id), {}),
        }


async def load(connection: Connection, site_id: int) -> Overrides:
    rows = await connection.fetch(SELECT_OVERRIDES, site_id)
    return Overrides(
        (row["service_id"], row["location_id"], row["field"], row["value"]) for row in rows
    )


async def stored(connection: Connection, site_id: int) -> list[dict[str, str]]:
    """The site's overrides as a file would give them (slugs, `*`)."""
    return [dict(row) for row in await connection.fetch(SELECT_LISTED, site_id)]


def _target(value: str, what: str, reasons: list[str]) -> None:
    if value != EVERY and not paths.SLUG_RE.fullmatch(value):
        reasons.append(f"{what}: {value!r} must be a {what} slug or {EVERY} (every {what})")


def _checked(row: Row, fields: Fields) -> tuple[tuple[Any, ...], list[str]]:
    service, location, field, value = (str(part) for part in row.values[:4])
    reasons: list[str] = []
    _target(service, "service", reasons)
    _target(location, "location", reasons)
    if service == EVERY and location == EVERY:
        reasons.append("service and location are both *: change the template instead")
    checked = fields.check(field, value)
    if isinstance(checked, str):
        reasons.append(checked)
        return (), reasons
    return (row.line, service, location, *checked), reasons


def _record(row: Row) -> dict[str, str]:
    return dict(zip(OVERRIDES.columns, (str(part) for part in row.values[:4]), strict=True))


async def _stage(
    connection: Connection,
    path: Path,
    options: SeedOptions,
    fields: Fields,
    report: SeedReport,
    rejects: RejectsWriter | None,
    progress: Callable[[int], None],
) -> None:
    await connection.execute(STAGE)
    batch: list[tuple[Any, ...]] = []
    for record in read_records(path, OVERRIDES, options.fmt):
        report.rows += 1
        if isinstance(record, Row):
            staged, reasons = _checked(record, fields)
            if not reasons:
                batch.append(staged)
                if len(batch) >= BATCH_ROWS:
                    await connection.copy_records_to_table("stage", records=batch)
                    progress(len(batch))
                    batch = []
                continue
            record = Rejected(record.line, tuple(reasons), _record(record))
        report.reject(record)
        if rejects is not None:
            rejects.write(record)
    if batch:
        await connection.copy_records_to_table("stage", records=batch)
        progress(len(batch))
    await connection.execute("ANALYZE stage")


async def _whole_file_checks(connection: Connection, site: Site) -> list[Rejected]:
    """The same target and field twice in the file, and slugs the site does not have."""
    reasons: dict[int, list[str]] = {}
    for row in await connection.fetch(DUPLICATES):
        first, *later = row["lines"]
        for line in later:
            reasons.setdefault(line, []).append(
                f"{row['field']} of {row['service']} in {row['location']} is set again "
                f"(first on line {first})"
            )
    for row in await connection.fetch(UNKNOWN, site.id):
        if row["no_service"]:
            reasons.setdefault(row["line"], []).append(
                f"service: {row['service']!r} is not a service of site '{site.slug}'"
            )
        if row["no_location"]:
            reasons.setdefault(row["line"], []).append(
                f"location: {row['location']!r} is not a location of site '{site.slug}'"
            )
    found = []
    for row in await connection.fetch(STAGED_RECORD, sorted(reasons)):
        record = {name: str(row[name]) for name in OVERRIDES.columns}
        found.append(Rejected(row["line"], tuple(reasons[row["line"]]), record))
    return found


async def seed(
    connection: Connection,
    site: Site,
    path: Path,
    options: SeedOptions,
    progress: Callable[[int], None] = lambda rows: None,
) -> SeedReport:
    """Validate and load an overrides file in one transaction; raise SeedRejected if too
    bad. The pages change at the next `generate`."""
    header = header_of(path, options.fmt, OVERRIDES)  # raises SeedFileError on schema drift
    fields = Fields(ContentTemplates(site.content))
    report = SeedReport(kind="overrides", path=path)
    rejects = (
        RejectsWriter(options.rejects, OVERRIDES, options.fmt, header) if options.rejects else None
    )
    try:
        async with connection.transaction():
            await _stage(connection, path, options, fields, report, rejects, progress)
            late = await _whole_file_checks(connection, site)
            await reject_late(connection, late, report, rejects, options.max_errors)
            await connection.execute(RESOLVE, site.id)
            if options.dry_run:
                planned = await connection.fetchrow(PLAN, site.id)
                assert planned is not None  # an aggregate always returns a row
                report.inserted, report.updated = planned["inserted"], planned["updated"]
                report.unchanged = planned["unchanged"]
                if options.prune:
                    report.removed = await connection.fetchval(COUNT_ABSENT, site.id)
                raise _DryRun
            merged = await connection.fetchrow(MERGE, site.id)
            assert merged is not None
            report.inserted, report.updated = merged["inserted"], merged["updated"]
            report.unchanged = report.rows - report.rejected - report.inserted - report.updated
            if options.prune:
                status = await connection.execute(PRUNE, site.id)
                report.removed = int(status.rsplit(" ", 1)[-1])
            report.loaded = True
    except _DryRun:
        pass
    finally:
        if rejects is not None:
            rejects.close()
    return report


class _DryRun(Exception):
    """Raised inside the transaction to roll a dry run back."""


@dataclass(frozen=True)
class Applied:
    """What a page's overrides change: block texts by index, a local paragraph, noindex."""

    blocks: dict[int, str]
    local_paragraph: str | None
    noindex: bool
    fields: list[str]  # the overridden fields' names, sorted

    @classmethod
    def of(cls, chosen: dict[str, str], fields: Fields) -> Applied:
        """A page's overrides (`Overrides.for_page`) as they apply to its templates: a
        field the templates no longer have is left out."""
        blocks = {
            fields.blocks[name]: value for name, value in chosen.items() if name in fields.blocks
        }
        noindex = chosen.get(NOINDEX) == "true"
        local = chosen.get(LOCAL_PARAGRAPH)
        names = [name for name in chosen if name in fields.blocks]
        names += [LOCAL_PARAGRAPH] if local is not None else []
        names += [NOINDEX] if noindex else []
        return cls(blocks, local, noindex, sorted(names))
