-- 0.2.0: a feed's model can change; the new vectors are built beside the old
-- ones while the feed keeps serving, then swapped in (047-model-switch.sql).

-- Functions whose signature or result type changed; definitions recreate them.
DROP FUNCTION IF EXISTS pgfeed.alter_feed(text, text, float8, float8, float8, integer, interval, float8, integer, integer,
                                          integer, integer);
DROP FUNCTION IF EXISTS pgfeed.status();

ALTER TABLE pgfeed.feed_config
    ADD COLUMN next_model      text,
    ADD COLUMN next_dimensions integer CHECK (next_dimensions > 0),
    ADD COLUMN next_after_key  text,
    -- measured: at 200 the similarity stream finds the nearest rows of a profile between two topics
    ALTER COLUMN ef_search SET DEFAULT 200;
COMMENT ON COLUMN pgfeed.feed_config.next_model IS
    'the model being switched to: workers embed every item with it beside the current vectors, then swap';
COMMENT ON COLUMN pgfeed.feed_config.next_after_key IS 'where the pass of the model switch is';
