-- Sync tokens (docs/sync.md): every write of a page records the transaction that made it,
-- and a token holds the snapshot of the read that issued it. Resuming from a token returns
-- every page whose last write that snapshot could not see: committed after it, or still
-- running then (a long generate included), whatever its `updated_at` says.
--
-- Rows written before this migration keep NULL: every token's snapshot sees them. New rows
-- get the inserting transaction (the default; COPY keeps its fast path, which a row trigger
-- on INSERT would turn off); every UPDATE gets the updating one (the trigger), so no write
-- path can forget it.
ALTER TABLE pages ADD COLUMN change_xid xid8;
ALTER TABLE pages ALTER COLUMN change_xid SET DEFAULT pg_current_xact_id();

CREATE FUNCTION pages_change_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_xid := pg_current_xact_id();
    RETURN NEW;
END
$$;
CREATE TRIGGER pages_change_xid BEFORE UPDATE ON pages
    FOR EACH ROW EXECUTE FUNCTION pages_change_xid();

CREATE INDEX pages_site_change ON pages (site_id, change_xid, id);
