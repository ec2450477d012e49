-- A page list filtered by service (`/api/v1/pages?service=…`, and the export's slices)
-- walks this index from its cursor: one descent, instead of walking every page in id order
-- and checking its service (a service's pages are contiguous in id order, so reaching a
-- late service read most of the table: 12 requests a second and 503s at 408,840 pages,
-- bench/RESULTS.md). The columns a list reads to tell served pages are included.
CREATE INDEX pages_site_service ON pages (site_id, service_id, id)
    INCLUDE (deleted_at, state);
