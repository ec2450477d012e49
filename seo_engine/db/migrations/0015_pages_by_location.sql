-- A page list filtered by location (`/api/v1/pages?location=…`, and the export's slices)
-- walks this index from its cursor: one descent, instead of walking every page in id order
-- and checking its location (a location has one page per service, spread over the whole
-- id range; PostgreSQL 18 can skip-scan the (site, service, location) key instead, older
-- ones cannot). As for 0014, the columns a list reads to tell served pages are included.
-- A list filtered by region still walks the id order (bench/RESULTS.md, 2026-12-06).
CREATE INDEX pages_site_location ON pages (site_id, location_id, id)
    INCLUDE (deleted_at, state);
