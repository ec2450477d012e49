-- The quality gate (docs/quality.md): each page's reasons as a bit mask (bit i is the
-- i-th code of `seo_engine.generate.quality.REASONS`, so the audit can count them in SQL),
-- and the nearest sibling the gate found with its estimated similarity (NULL: none).
-- `quality_score` is a score from 0 to 100 from now on; rows written before keep their
-- 0-1 score until the next `generate` rewrites them (their document changes with it: it
-- gains a `quality` object).
-- Adding columns with constant (or no) defaults rewrites nothing: instant at any size.
ALTER TABLE pages
    ADD COLUMN quality_flags integer NOT NULL DEFAULT 0,
    ADD COLUMN nearest_similarity real,
    ADD COLUMN nearest_location_id bigint;
