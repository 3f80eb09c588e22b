-- 0.2.0: async embedding (a queue drained by workers), per-feed search
-- settings for the index-driven feed, resumable reembed, like counts apart.

-- Functions whose signature or result type changed; definitions recreate them.
DROP FUNCTION IF EXISTS pgfeed.create_feed(text, text, float8, float8, float8, integer, interval, float8);
DROP FUNCTION IF EXISTS pgfeed.status();
DROP FUNCTION IF EXISTS pgfeed._sync_items(integer, text[], text[], timestamptz[], boolean[]);

ALTER TABLE pgfeed.feed_config
    ADD COLUMN mode             text NOT NULL DEFAULT 'sync' CHECK (mode IN ('sync', 'async')),
    ADD COLUMN max_attempts     integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    ADD COLUMN search_depth     integer NOT NULL DEFAULT 100 CHECK (search_depth > 0),
    ADD COLUMN search_max_depth integer NOT NULL DEFAULT 20000 CHECK (search_max_depth > 0),
    ADD COLUMN ef_search        integer NOT NULL DEFAULT 100 CHECK (ef_search BETWEEN 1 AND 1000);
COMMENT ON COLUMN pgfeed.feed_config.mode IS
    'sync: content triggers embed before the statement ends; async: they queue the work for pgfeed worker';
COMMENT ON COLUMN pgfeed.feed_config.max_attempts IS 'tries of a queued item before it is kept as failed';
COMMENT ON COLUMN pgfeed.feed_config.search_depth IS 'rows the feed first reads from each index stream';
COMMENT ON COLUMN pgfeed.feed_config.search_max_depth IS 'most rows the feed reads from one index stream';
COMMENT ON COLUMN pgfeed.feed_config.ef_search IS 'hnsw.ef_search for the similarity stream';

-- Append-only: a writer never waits on a row a worker holds. Several rows of
-- one item are fine: the text hash makes the later ones free.
CREATE TABLE pgfeed.embedding_queue (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feed_id    integer NOT NULL REFERENCES pgfeed.feed_config ON DELETE CASCADE,
    item_id    text NOT NULL,
    queued_at  timestamptz NOT NULL DEFAULT now(),
    attempts   integer NOT NULL DEFAULT 0,
    not_before timestamptz NOT NULL DEFAULT now(),
    last_error text,
    failed_at  timestamptz
);
CREATE INDEX embedding_queue_ready ON pgfeed.embedding_queue (feed_id, not_before) WHERE failed_at IS NULL;
CREATE INDEX embedding_queue_item ON pgfeed.embedding_queue (feed_id, item_id);
COMMENT ON TABLE pgfeed.embedding_queue IS
    'items waiting to be embedded (async feeds, encoder failures); failed_at marks work kept after max_attempts';

CREATE TABLE pgfeed.reembed_progress (
    feed_id    integer PRIMARY KEY REFERENCES pgfeed.feed_config ON DELETE CASCADE,
    after_key  text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pgfeed.reembed_progress IS 'where an interrupted pgfeed reembed resumes: the last key it committed';

-- Like counts move out of the item stores into their own tables (see _item_popularity).
DO $$
DECLARE
    v_feed_id integer;
BEGIN
    FOR v_feed_id IN SELECT feed_id FROM pgfeed.content_source LOOP
        EXECUTE format('CREATE TABLE pgfeed.item_popularity_%1$s AS SELECT item_id, popularity FROM pgfeed.item_store_%1$s;
                        ALTER TABLE pgfeed.item_popularity_%1$s ADD PRIMARY KEY (item_id),
                            ALTER popularity SET NOT NULL, ALTER popularity SET DEFAULT 0;
                        CREATE INDEX ON pgfeed.item_popularity_%1$s (popularity);
                        ALTER TABLE pgfeed.item_store_%1$s DROP COLUMN popularity', v_feed_id);
    END LOOP;
END
$$;
