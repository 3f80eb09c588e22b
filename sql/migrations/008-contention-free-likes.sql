-- 0.3.0: a like never waits on another transaction's pgfeed bookkeeping. Like
-- counts change by appended deltas, folded into the counts without waiting
-- (050-interactions.sql); a profile a concurrent transaction is refreshing is
-- marked to be refreshed again instead of waited for.

DO $$
DECLARE
    v_feed pgfeed.feed_config;
BEGIN
    FOR v_feed IN SELECT * FROM pgfeed.feed_config WHERE user_type IS NOT NULL LOOP
        EXECUTE format($ddl$
            CREATE TABLE pgfeed.popularity_delta_%1$s (
                seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                item_id %2$s NOT NULL,
                delta   bigint NOT NULL
            );
            CREATE INDEX ON pgfeed.popularity_delta_%1$s (item_id);
            CREATE TABLE pgfeed.profile_dirty_%1$s (
                seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                user_id %3$s NOT NULL
            );
            CREATE INDEX ON pgfeed.profile_dirty_%1$s (user_id);
            $ddl$, v_feed.feed_id, v_feed.item_type, v_feed.user_type);
    END LOOP;
END
$$;
