-- 0.2.0: each like-count tier is searched with an hnsw.ef_search of its own
-- (pgfeed._tier_ef_search), which pgfeed._top_k takes as a new argument.

DROP FUNCTION IF EXISTS pgfeed._top_k(text[], text, text[], vector, float8, float8, text, text[], float8[], float8[],
                                      integer, integer, integer);
COMMENT ON COLUMN pgfeed.feed_config.ef_search IS
    'hnsw.ef_search for a like-count tier of 500,000 items or more; smaller tiers search with less (pgfeed._tier_ef_search)';
