-- Page documents are stored: `generate` builds each page's JSON document (what the API
-- serves, the NDJSON export streams and the HTML pages render) once, beside the row, and
-- its content hash is the hash of that document. Serving a document is then one indexed
-- read with no JSON built per request, an ETag always changes with what is served (site,
-- service and location fields included), and `updated_since` is exact.
--
-- The page's body columns (intro, sections, faq, links) live only in the document now.
-- `pages` is rebuilt rather than altered: an UPDATE of every row would leave the old
-- table's size behind as dead rows. Ids are kept (cursors hold them). Existing documents
-- are built here by SQL; the next `generate` rewrites every page once, since the new
-- content hash covers the whole document.
CREATE TABLE pages_rebuilt (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id           integer NOT NULL REFERENCES sites ON DELETE CASCADE,
    service_id        bigint NOT NULL,
    location_id       bigint NOT NULL,
    path              text NOT NULL,
    title             text NOT NULL,
    meta_description  text NOT NULL,
    h1                text NOT NULL,
    -- The JSON document as served (UTF-8 bytes). NULL only for tombstones of services or
    -- locations removed before documents were stored: nothing serves those.
    document          bytea CHECK (document IS NOT NULL OR deleted_at IS NOT NULL),
    quality_score     real NOT NULL,
    indexable         boolean NOT NULL,
    content_hash      bytea NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,
    UNIQUE (site_id, service_id, location_id)
)
-- Compressed, but kept in the row: PostgreSQL compresses a row's values only past this
-- size (default 2 KB, with everything else then moved out of line, titles and paths
-- included, since a compressed document is still ~2.1 KB). A document (~5.5 KB of JSON)
-- read from the row costs PostgreSQL about a third less than through the TOAST table
-- and its index, and a page is always read with its document.
WITH (toast_tuple_target = 4080);

INSERT INTO pages_rebuilt (id, site_id, service_id, location_id, path, title, meta_description,
                           h1, document, quality_score, indexable, content_hash, created_at,
                           updated_at, deleted_at)
OVERRIDING SYSTEM VALUE
SELECT p.id, p.site_id, p.service_id, p.location_id, p.path, p.title, p.meta_description, p.h1,
       CASE WHEN s.id IS NOT NULL AND l.id IS NOT NULL THEN convert_to((
        json_build_object(
            'path', p.path,
            'url', st.base_url || p.path,
            'site', st.slug,
            'service', json_build_object('slug', s.slug, 'name', s.name, 'category', s.category),
            'location', json_build_object(
                'slug', l.slug, 'name', l.name, 'region_name', l.region_name,
                'region_code', l.region_code, 'country_code', l.country_code,
                'population', l.population, 'latitude', l.latitude, 'longitude', l.longitude),
            'title', p.title,
            'meta_description', p.meta_description,
            'h1', p.h1,
            'intro', p.intro,
            'sections', p.sections,
            'faq', p.faq,
            'links', p.links,
            'breadcrumbs', json_build_array(
                json_build_object('name', 'Home', 'url', st.base_url || '/'),
                json_build_object('name', s.name, 'url', st.base_url || '/' || s.slug || '/'),
                json_build_object('name', l.name, 'url', st.base_url || p.path)),
            'json_ld', json_build_object('@context', 'https://schema.org', '@graph', ('[' ||
                json_build_object(
                    '@type', 'Service',
                    '@id', st.base_url || p.path || '#service',
                    'name', p.h1,
                    'serviceType', s.name,
                    'category', s.category,
                    'description', p.meta_description,
                    'url', st.base_url || p.path,
                    'areaServed', json_strip_nulls(json_build_object(
                        '@type', 'City',
                        'name', l.name,
                        'geo', json_build_object(
                            '@type', 'GeoCoordinates', 'latitude', l.latitude, 'longitude', l.longitude),
                        'containedInPlace', CASE WHEN l.region_name <> '' THEN
                            json_build_object('@type', 'State', 'name', l.region_name) END)),
                    'provider', json_build_object(
                        '@type', 'Organization', 'name', st.name, 'url', st.base_url || '/'))::text
                || ', ' ||
                json_build_object('@type', 'BreadcrumbList', 'itemListElement', json_build_array(
                    json_build_object(
                        '@type', 'ListItem', 'position', 1, 'name', 'Home', 'item', st.base_url || '/'),
                    json_build_object(
                        '@type', 'ListItem', 'position', 2, 'name', s.name,
                        'item', st.base_url || '/' || s.slug || '/'),
                    json_build_object(
                        '@type', 'ListItem', 'position', 3, 'name', l.name, 'item', st.base_url || p.path)
                ))::text
                || CASE WHEN json_array_length(p.faq) > 0 THEN ', ' ||
                    json_build_object('@type', 'FAQPage', 'mainEntity', (
                        SELECT json_agg(json_build_object(
                            '@type', 'Question',
                            'name', item ->> 'question',
                            'acceptedAnswer', json_build_object(
                                '@type', 'Answer', 'text', item ->> 'answer')))
                        FROM json_array_elements(p.faq) AS item))::text
                   ELSE '' END
                || ']')::json),
            'indexable', p.indexable,
            'quality_score', p.quality_score,
            'updated_at', p.updated_at,
            'etag', '"' || encode(p.content_hash, 'hex') || '"'))::text, 'UTF8') END,
       p.quality_score, p.indexable, p.content_hash, p.created_at, p.updated_at, p.deleted_at
FROM pages p
JOIN sites st ON st.id = p.site_id
LEFT JOIN services s ON s.id = p.service_id
LEFT JOIN locations l ON l.id = p.location_id;

DROP TABLE pages;
ALTER TABLE pages_rebuilt RENAME TO pages;
ALTER INDEX pages_rebuilt_pkey RENAME TO pages_pkey;
ALTER INDEX pages_rebuilt_site_id_service_id_location_id_key
    RENAME TO pages_site_id_service_id_location_id_key;
ALTER TABLE pages RENAME CONSTRAINT pages_rebuilt_site_id_fkey TO pages_site_id_fkey;
ALTER TABLE pages RENAME CONSTRAINT pages_rebuilt_check TO pages_document_check;
ALTER SEQUENCE pages_rebuilt_id_seq RENAME TO pages_id_seq;
SELECT setval('pages_id_seq', coalesce(max(id), 0) + 1, false) FROM pages;
-- Covering: a conditional request reads its page's version from the index alone.
CREATE UNIQUE INDEX pages_site_path ON pages (site_id, path)
    INCLUDE (content_hash, updated_at, indexable) WHERE deleted_at IS NULL;
-- Covering too: sitemaps number every page from the index alone, not from the (now wide) rows.
CREATE INDEX pages_site_id ON pages (site_id, id) INCLUDE (updated_at, indexable, deleted_at);
CREATE INDEX pages_site_updated ON pages (site_id, updated_at, id);
ANALYZE pages;
