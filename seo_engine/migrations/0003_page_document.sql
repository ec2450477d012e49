-- The page document (schemas.PageDocument), built by PostgreSQL: the API, the NDJSON export
-- and the HTML pages all read it from here, so they can never disagree, and the server's
-- JSON text goes to the client without being parsed and re-serialised in Python.
-- PL/pgSQL rather than SQL: its plans are cached per session, where a non-inlinable SQL
-- function would be planned again by every query that calls it.

CREATE FUNCTION page_document(
    p pages, s services, l locations, site_slug text, site_name text, base_url text
) RETURNS json
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    url text := base_url || p.path;
    home_url text := base_url || '/';
    hub_url text := base_url || '/' || s.slug || '/';
    place jsonb;
    graph json;
    service_node json;
    crumb_list json;
BEGIN
    place := jsonb_build_object(
        '@type', 'City',
        'name', l.name,
        'geo', jsonb_build_object(
            '@type', 'GeoCoordinates', 'latitude', l.latitude, 'longitude', l.longitude));
    IF l.region_name IS NOT NULL AND l.region_name <> '' THEN
        place := place || jsonb_build_object(
            'containedInPlace', jsonb_build_object('@type', 'State', 'name', l.region_name));
    END IF;
    service_node := json_build_object(
        '@type', 'Service',
        '@id', url || '#service',
        'name', p.h1,
        'serviceType', s.name,
        'category', s.category,
        'description', p.meta_description,
        'url', url,
        'areaServed', place,
        'provider', json_build_object('@type', 'Organization', 'name', site_name, 'url', home_url));
    crumb_list := json_build_object(
        '@type', 'BreadcrumbList',
        'itemListElement', json_build_array(
            json_build_object('@type', 'ListItem', 'position', 1, 'name', 'Home', 'item', home_url),
            json_build_object('@type', 'ListItem', 'position', 2, 'name', s.name, 'item', hub_url),
            json_build_object('@type', 'ListItem', 'position', 3, 'name', l.name, 'item', url)));
    IF json_array_length(p.faq) > 0 THEN
        graph := json_build_array(service_node, crumb_list, json_build_object(
            '@type', 'FAQPage',
            'mainEntity', (
                SELECT json_agg(json_build_object(
                    '@type', 'Question',
                    'name', item ->> 'question',
                    'acceptedAnswer', json_build_object('@type', 'Answer', 'text', item ->> 'answer')))
                FROM json_array_elements(p.faq) AS item)));
    ELSE
        graph := json_build_array(service_node, crumb_list);
    END IF;
    RETURN json_build_object(
        'path', p.path,
        'url', url,
        'site', site_slug,
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
            json_build_object('name', 'Home', 'url', home_url),
            json_build_object('name', s.name, 'url', hub_url),
            json_build_object('name', l.name, 'url', url)),
        'json_ld', json_build_object('@context', 'https://schema.org', '@graph', graph),
        'indexable', p.indexable,
        'quality_score', p.quality_score,
        'updated_at', p.updated_at,
        'etag', '"' || encode(p.content_hash, 'hex') || '"');
END
$$;
