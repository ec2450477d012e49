-- Publishing (docs/publishing.md): a page is live, scheduled (for `publish_at`), queued (in
-- the site's drip backlog, best quality first) or a draft. Only live pages are served:
-- HTML, API, export, sitemaps, hubs, and the links of other pages. Going live and going
-- away (unpublishing) set `updated_at`, so incremental consumers and `lastmod` see both;
-- a page that is not live shows in the change feed as a tombstone.
--
-- A new page's state is the inserting transaction's `seo_engine.new_page_state` setting
-- (`generate` sets it from the site file's [publishing] table), else live. Adding a
-- column with a non-volatile default rewrites nothing: existing pages are live.
ALTER TABLE pages
    ADD COLUMN state text NOT NULL
        DEFAULT coalesce(nullif(current_setting('seo_engine.new_page_state', true), ''), 'live')
        CONSTRAINT pages_state CHECK (state IN ('live', 'scheduled', 'queued', 'draft')),
    -- when a scheduled page goes live (NULL in every other state)
    ADD COLUMN publish_at timestamptz;

-- The site file's [publishing] table, kept out of `content` (which every page's inputs
-- digest covers: a new rate must not render a page again); and the drip's clock: the
-- release time up to which the backlog has been drawn from (NULL: the backlog is empty).
ALTER TABLE sites
    ADD COLUMN publishing jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN drip_from timestamptz;

-- The covering indexes gain the state, so a conditional request, the validator index and
-- the sitemaps still read only the index.
DROP INDEX pages_site_path;
CREATE UNIQUE INDEX pages_site_path ON pages (site_id, path)
    INCLUDE (content_hash, updated_at, indexable, state) WHERE deleted_at IS NULL;
DROP INDEX pages_site_id;
CREATE INDEX pages_site_id ON pages (site_id, id) INCLUDE (updated_at, indexable, deleted_at, state);
-- Pages waiting to be published: usually none, so this index is small.
CREATE INDEX pages_unpublished ON pages (site_id, state, publish_at)
    INCLUDE (service_id, location_id) WHERE state <> 'live' AND deleted_at IS NULL;

-- Every publishing step (a release by the clock, `seo-engine publish …`), for `publish log`.
CREATE TABLE publish_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     integer NOT NULL REFERENCES sites ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    action      text NOT NULL,     -- release, live, schedule, queue, draft
    pages       integer NOT NULL,  -- pages whose state changed
    relinked    integer NOT NULL,  -- other pages whose links changed with them
    detail      text NOT NULL DEFAULT ''
);
CREATE INDEX publish_log_site ON publish_log (site_id, at);
