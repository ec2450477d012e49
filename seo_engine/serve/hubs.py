"""Queries behind the hub pages (home, service, region, location) that make every page
reachable from the home page within three clicks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seo_engine.db.database import Connection
from seo_engine.generate.visibility import SERVED

HUB_PAGE_SIZE = 500
TOP_REGIONS = 40

# A region is (country, region code); its slug is e.g. "us-tx" or "sg".
REGION_SLUG = """
lower(country_code) || CASE WHEN region_code = '' THEN ''
  ELSE '-' || lower(regexp_replace(region_code, '[^A-Za-z0-9]+', '-', 'g')) END
"""
REGION_NAME = """
CASE WHEN region_name <> '' THEN region_name || ', ' || country_code
     WHEN region_code <> '' THEN region_code || ', ' || country_code
     ELSE country_code END
"""
SERVICES = "SELECT slug, name, category, description FROM services WHERE site_id = $1 ORDER BY name"
SERVICE = (
    "SELECT id, slug, name, category, description FROM services WHERE site_id = $1 AND slug = $2"
)
LOCATION_COUNT = "SELECT count(*) FROM locations WHERE site_id = $1"
REGIONS = f"""
SELECT {REGION_SLUG} AS slug, min({REGION_NAME}) AS name, count(*) AS locations,
       sum(population) AS population
FROM locations WHERE site_id = $1
GROUP BY 1 ORDER BY population DESC LIMIT $2
"""  # noqa: S608 (constant fragments)
REGION_LOCATIONS = f"""
SELECT slug, name, {REGION_NAME} AS region
FROM locations WHERE site_id = $1 AND {REGION_SLUG} = $2
ORDER BY population DESC, id
"""  # noqa: S608 (constant fragments)
SERVICE_LOCATIONS = f"""
SELECT p.path, l.name, CASE WHEN l.country_code = 'US' THEN l.region_code
       ELSE coalesce(nullif(l.region_name, ''), l.country_code) END AS area
FROM pages p JOIN locations l ON l.id = p.location_id
WHERE p.site_id = $1 AND p.service_id = $2 AND {SERVED}
ORDER BY l.population DESC, l.id
LIMIT $3 OFFSET $4
"""  # noqa: S608 (constant)
SERVICE_PAGE_COUNT = f"""
SELECT count(*) FROM pages p WHERE site_id = $1 AND service_id = $2 AND {SERVED}
"""  # noqa: S608 (constant)
LOCATION = """
SELECT id, slug, name, population, CASE WHEN country_code = 'US' THEN region_code
       ELSE coalesce(nullif(region_name, ''), country_code) END AS area
FROM locations WHERE site_id = $1 AND slug = $2
"""
LOCATION_SERVICES = f"""
SELECT p.path, s.name FROM pages p JOIN services s ON s.id = p.service_id
WHERE p.site_id = $1 AND p.location_id = $2 AND {SERVED}
ORDER BY s.name
"""  # noqa: S608 (constant)


@dataclass(frozen=True)
class ServiceHub:
    service: dict[str, Any]
    locations: list[dict[str, Any]]
    page_number: int
    page_count: int


async def home(connection: Connection, site_id: int) -> dict[str, Any]:
    services = [dict(row) for row in await connection.fetch(SERVICES, site_id)]
    regions = [dict(row) for row in await connection.fetch(REGIONS, site_id, TOP_REGIONS)]
    location_count: int = await connection.fetchval(LOCATION_COUNT, site_id)
    return {"services": services, "regions": regions, "location_count": location_count}


async def all_regions(connection: Connection, site_id: int) -> list[dict[str, Any]]:
    rows = await connection.fetch(REGIONS, site_id, 1_000_000)
    return sorted((dict(row) for row in rows), key=lambda region: region["name"])


async def region(connection: Connection, site_id: int, slug: str) -> list[dict[str, Any]]:
    return [dict(row) for row in await connection.fetch(REGION_LOCATIONS, site_id, slug)]


async def service_hub(
    connection: Connection, site_id: int, slug: str, page_number: int
) -> ServiceHub | None:
    """One page of a service's hub; None if the service or the page number does not exist."""
    service = await connection.fetchrow(SERVICE, site_id, slug)
    if service is None:
        return None
    total: int = await connection.fetchval(SERVICE_PAGE_COUNT, site_id, service["id"])
    page_count = max(1, -(-total // HUB_PAGE_SIZE))
    if not 1 <= page_number <= page_count:
        return None
    rows = await connection.fetch(
        SERVICE_LOCATIONS, site_id, service["id"], HUB_PAGE_SIZE, (page_number - 1) * HUB_PAGE_SIZE
    )
    return ServiceHub(dict(service), [dict(row) for row in rows], page_number, page_count)


async def location_hub(
    connection: Connection, site_id: int, slug: str
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    location = await connection.fetchrow(LOCATION, site_id, slug)
    if location is None:
        return None
    services = await connection.fetch(LOCATION_SERVICES, site_id, location["id"])
    return dict(location), [dict(row) for row in services]
