-- Hand edits: a generated field of a page set by a person, for one (service, location) pair,
-- for a service in every location (location_id NULL), or for a location across services
-- (service_id NULL). `seo-engine seed overrides FILE` writes them; `generate` applies them
-- (exact pair, then service-wide, then location-wide, then the template) and never
-- overwrites them. docs/overrides.md.
CREATE TABLE overrides (
    site_id     integer NOT NULL REFERENCES sites ON DELETE CASCADE,
    service_id  bigint REFERENCES services ON DELETE CASCADE,
    location_id bigint REFERENCES locations ON DELETE CASCADE,
    field       text NOT NULL,
    value       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (service_id IS NOT NULL OR location_id IS NOT NULL)
);
CREATE UNIQUE INDEX overrides_target
    ON overrides (site_id, coalesce(service_id, 0), coalesce(location_id, 0), field);
CREATE INDEX overrides_location ON overrides (location_id) WHERE location_id IS NOT NULL;
CREATE INDEX overrides_service ON overrides (service_id) WHERE service_id IS NOT NULL;

-- What the templates wrote in an overridden field of a page when its override was set
-- (`template`), and at the last generate that rendered it (`current`): when the two
-- differ, the template output changed under the hand edit and a person should look at it
-- (`seo-engine overrides stale`; `--accept` takes the current text as the new base).
-- `value` is the override the base belongs to: a new value takes a new base.
CREATE TABLE override_bases (
    site_id     integer NOT NULL REFERENCES sites ON DELETE CASCADE,
    service_id  bigint NOT NULL REFERENCES services ON DELETE CASCADE,
    location_id bigint NOT NULL REFERENCES locations ON DELETE CASCADE,
    field       text NOT NULL,
    value       text NOT NULL,
    template    text NOT NULL,
    current     text NOT NULL,
    PRIMARY KEY (site_id, service_id, location_id, field)
);
CREATE INDEX override_bases_location ON override_bases (location_id);
CREATE INDEX override_bases_service ON override_bases (service_id);
