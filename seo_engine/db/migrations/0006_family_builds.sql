-- What each service's pages (its family) were last built from: a digest of everything that
-- goes into them (the code, the site's settings and templates, the service and the other
-- services of its category, every location and its neighbours). `generate` renders a family
-- again only when this digest has changed (or with --force); it is written in the merge's
-- transaction, so it never describes pages that were not committed.
CREATE TABLE family_builds (
    site_id     integer NOT NULL REFERENCES sites ON DELETE CASCADE,
    service_id  bigint NOT NULL REFERENCES services ON DELETE CASCADE,
    inputs      bytea NOT NULL,
    pages       integer NOT NULL CHECK (pages >= 0),
    built_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, service_id)
);
