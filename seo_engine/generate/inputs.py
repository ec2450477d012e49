"""What a service's pages are built from, as one digest: `generate` skips a family whose
digest matches the one stored when it was last built (migration 0006).

A family's pages depend on the code that builds them, the site row (name, base URL, path
pattern, content templates, generate and quality settings), the service, the other services
of its category (its pages link to them by name), and every location with its neighbours
(any location can be a page, a nearby link, a sibling compared with, or change a region's
facts). Timestamps are left out: a re-seed that changes nothing keeps the digest.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from seo_engine.db.database import Connection

PACKAGE = Path(__file__).resolve().parent.parent

# One row per service of the site: the digest of its family's inputs ($2: the code's).
FAMILY_INPUTS = """
WITH site AS (
    SELECT md5((to_jsonb(s) - 'created_at' - 'updated_at' - 'favicon' - 'favicon_tag')::text)
           AS digest
    FROM sites s WHERE s.id = $1
), places AS (
    SELECT md5(coalesce(string_agg((to_jsonb(l) - 'updated_at')::text, '|' ORDER BY l.id), ''))
           AS digest
    FROM locations l WHERE l.site_id = $1
), neighbours AS (
    SELECT md5(coalesce(string_agg(concat_ws(',', n.location_id, n.rank, n.neighbour_id,
                                             n.distance_km), '|'
                                   ORDER BY n.location_id, n.rank), '')) AS digest
    FROM location_neighbours n JOIN locations l ON l.id = n.location_id
    WHERE l.site_id = $1
), categories AS (
    SELECT category,
           md5(string_agg((to_jsonb(c) - 'updated_at')::text, '|' ORDER BY c.id)) AS digest
    FROM services c WHERE c.site_id = $1
    GROUP BY category
)
SELECT v.id AS service_id,
       decode(md5(concat_ws('/', $2::text, site.digest, places.digest, neighbours.digest,
                            categories.digest, (to_jsonb(v) - 'updated_at')::text)), 'hex')
       AS inputs
FROM services v
JOIN categories ON categories.category = v.category
CROSS JOIN site CROSS JOIN places CROSS JOIN neighbours
WHERE v.site_id = $1
"""
BUILT = "SELECT service_id, inputs, pages FROM family_builds WHERE site_id = $1"
RECORD = """
INSERT INTO family_builds (site_id, service_id, inputs, pages)
SELECT $1, unnest($2::bigint[]), unnest($3::bytea[]), unnest($4::integer[])
ON CONFLICT (site_id, service_id) DO UPDATE
SET inputs = excluded.inputs, pages = excluded.pages, built_at = now()
"""


@functools.cache
def code_digest() -> str:
    """The package's own source (Python and SQL): another release may build other pages."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix in (".py", ".sql") and path.is_file():
            digest.update(path.relative_to(PACKAGE).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


async def family_inputs(connection: Connection, site_id: int) -> dict[int, bytes]:
    rows = await connection.fetch(FAMILY_INPUTS, site_id, code_digest())
    return {row["service_id"]: bytes(row["inputs"]) for row in rows}


async def built(connection: Connection, site_id: int) -> dict[int, tuple[bytes, int]]:
    """Each family's inputs when it was last built, and how many pages it had."""
    rows = await connection.fetch(BUILT, site_id)
    return {row["service_id"]: (bytes(row["inputs"]), row["pages"]) for row in rows}


async def record(
    connection: Connection, site_id: int, families: dict[int, tuple[bytes, int]]
) -> None:
    """Store what the families just built were built from (in the merge's transaction)."""
    ids = list(families)
    await connection.execute(
        RECORD,
        site_id,
        ids,
        [families[i][0] for i in ids],
        [families[i][1] for i in ids],
    )
