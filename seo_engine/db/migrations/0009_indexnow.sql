-- IndexNow: a site's key (the site file's [indexnow] table) and the ledger of what was
-- submitted. What to submit is not queued: it is the difference between the pages and the
-- ledger (a live indexable page whose hash the ledger does not have; a page gone or out of
-- the index that the ledger has as submitted), so no write path can forget to queue a URL,
-- and an unchanged page is never submitted again (docs/indexnow.md).
ALTER TABLE sites
    ADD COLUMN indexnow_key text,
    ADD COLUMN indexnow_endpoint text;

CREATE TABLE indexnow_ledger (
    site_id      integer NOT NULL REFERENCES sites ON DELETE CASCADE,
    path         text NOT NULL,
    -- the page's content hash last accepted by the endpoint; NULL: submitted as gone (or
    -- never accepted yet)
    content_hash bytea,
    submitted_at timestamptz,             -- when it was last accepted
    status       smallint NOT NULL,       -- HTTP status of the last attempt
    attempts     integer NOT NULL,        -- requests the last submission took
    response     text NOT NULL DEFAULT '',-- the start of the last response's body
    tried_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, path)
);
