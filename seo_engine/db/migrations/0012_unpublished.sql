-- When a live page stopped being served (unpublished: a draft, or scheduled or queued
-- again); NULL while it is live, and for a page that never was. The change feeds (sync
-- tokens, updated_since) list a page that is not live as a tombstone only if it was
-- removed or unpublished: a page waiting for its first publication is nobody's business,
-- however often a generate or a publishing step rewrites it.
ALTER TABLE pages ADD COLUMN unpublished_at timestamptz;
