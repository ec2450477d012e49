-- The page set: sites, their dimensions (locations, services), the materialised pages,
-- redirects left by slug changes, and precomputed nearest neighbours for internal links.

CREATE TABLE sites (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug          text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    name          text NOT NULL CHECK (name <> ''),
    base_url      text NOT NULL CHECK (base_url ~ '^https?://[^/]+$'),
    domain        text NOT NULL UNIQUE,
    locale        text NOT NULL DEFAULT 'en',
    path_pattern  text NOT NULL DEFAULT '/{service}/{location}',
    -- The site's content templates and generation options, as loaded from its site file.
    content       jsonb NOT NULL DEFAULT '{}',
    content_version text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE locations (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id       integer NOT NULL REFERENCES sites ON DELETE CASCADE,
    key           text NOT NULL,
    slug          text NOT NULL,
    name          text NOT NULL,
    region_name   text NOT NULL DEFAULT '',
    region_code   text NOT NULL DEFAULT '',
    country_code  text NOT NULL,
    population    bigint NOT NULL CHECK (population >= 0),
    latitude      double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude     double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    timezone      text NOT NULL DEFAULT '',
    attributes    jsonb NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, key),
    -- Deferrable so that one load may swap two slugs.
    UNIQUE (site_id, slug) DEFERRABLE INITIALLY IMMEDIATE
);
CREATE INDEX locations_site_region ON locations (site_id, country_code, region_code);

CREATE TABLE services (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id       integer NOT NULL REFERENCES sites ON DELETE CASCADE,
    key           text NOT NULL,
    slug          text NOT NULL,
    name          text NOT NULL,
    category      text NOT NULL DEFAULT '',
    description   text NOT NULL DEFAULT '',
    attributes    jsonb NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, key),
    UNIQUE (site_id, slug) DEFERRABLE INITIALLY IMMEDIATE
);

-- Nearest locations by great-circle distance, rank 1 = closest; computed at seed time.
CREATE TABLE location_neighbours (
    location_id   bigint NOT NULL REFERENCES locations ON DELETE CASCADE,
    rank          smallint NOT NULL CHECK (rank > 0),
    neighbour_id  bigint NOT NULL REFERENCES locations ON DELETE CASCADE,
    distance_km   real NOT NULL CHECK (distance_km >= 0),
    PRIMARY KEY (location_id, rank)
);

-- One row per (site, service, location). Pages keep no foreign key to their dimensions:
-- a removed service or location leaves a tombstone (deleted_at set) for incremental sync.
-- Structured content is `json`, not `jsonb`: it is written once per change and read back
-- verbatim, so parsing it into jsonb would cost on both paths and buy nothing.
CREATE TABLE pages (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id           integer NOT NULL REFERENCES sites ON DELETE CASCADE,
    service_id        bigint NOT NULL,
    location_id       bigint NOT NULL,
    path              text NOT NULL,
    title             text NOT NULL,
    meta_description  text NOT NULL,
    h1                text NOT NULL,
    intro             text NOT NULL,
    sections          json NOT NULL,
    faq               json NOT NULL,
    links             json NOT NULL,
    quality_score     real NOT NULL,
    indexable         boolean NOT NULL,
    content_hash      bytea NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,
    UNIQUE (site_id, service_id, location_id)
);
CREATE UNIQUE INDEX pages_site_path ON pages (site_id, path) WHERE deleted_at IS NULL;
CREATE INDEX pages_site_id ON pages (site_id, id);
CREATE INDEX pages_site_updated ON pages (site_id, updated_at, id);

-- Old path -> new path, served as 301 when a slug changes.
CREATE TABLE redirects (
    site_id     integer NOT NULL REFERENCES sites ON DELETE CASCADE,
    from_path   text NOT NULL,
    to_path     text NOT NULL CHECK (to_path <> from_path),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, from_path)
);
