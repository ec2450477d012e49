-- A site's own favicon, read from the file its site file names at `sites add` and kept
-- here so that every API worker serves the same bytes. NULL: the app's default icon.
-- The tag is the favicon's ETag, computed by the database so that it can never disagree
-- with the bytes; the site directory reads the tag every few seconds, the bytes only when
-- a worker first serves them.
ALTER TABLE sites
    ADD COLUMN favicon bytea,
    ADD COLUMN favicon_tag text GENERATED ALWAYS AS (encode(sha256(favicon), 'hex')) STORED;
