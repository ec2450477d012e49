-- What each page was last built from, per page instead of per service: `generate` renders a
-- page again only when the digest of its inputs has changed, and compares pages by the
-- MinHash signatures kept here, so that a page is judged again when it or a sibling it is
-- compared with changed (docs/quality.md).
--
-- UNLOGGED: this is a cache of build state, written in the merge's transaction. A crash
-- empties it (and a standby never has it); the next `generate` then renders every page
-- once and finds most of them unchanged, so nothing served is ever wrong, only slower to
-- rebuild. Skipping the WAL halves what writing 4 million rows costs.
DROP TABLE family_builds;

CREATE UNLOGGED TABLE page_builds (
    site_id             integer NOT NULL REFERENCES sites ON DELETE CASCADE,
    -- No foreign keys: the rows of a removed service or location stay until the next
    -- generate, which sees them go (their pages' siblings are compared again) and
    -- deletes them.
    service_id          bigint NOT NULL,
    location_id         bigint NOT NULL,
    inputs              bytea NOT NULL,   -- digest of everything the page's text is built from
    signature           bytea NOT NULL,   -- MinHash signature: 64 little-endian 16-bit values
    title_key           bigint NOT NULL,  -- normalised title and description, hashed:
    description_key     bigint NOT NULL,  -- duplicates within the family are counted on these
    -- the nearest page of the same service (its family) and of the same location (its
    -- place) found, each with how many of the 64 signature values they share
    family_location_id  bigint,
    family_equal        smallint NOT NULL DEFAULT 0,
    place_service_id    bigint,
    place_equal         smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, service_id, location_id)
);

-- The nearest sibling may now be another service's page in the same location. NULL with a
-- nearest location: the page's own service (rows written before this column; rewriting
-- every row here would leave a table's worth of dead rows, and the next generate rewrites
-- them anyway).
ALTER TABLE pages ADD COLUMN nearest_service_id bigint;
