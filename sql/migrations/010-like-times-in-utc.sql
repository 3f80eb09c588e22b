-- 0.3.0: like times of timestamp and date columns are read in UTC, not in the
-- writer's TimeZone (an unlike from a session in another zone found no log
-- entry to take out). The likes of such tables are logged again: a worker
-- catches those feeds up (pgfeed.feed_problem).
INSERT INTO pgfeed.feed_problem (feed_id, problem)
SELECT DISTINCT s.feed_id, 'like times are now read in UTC: a worker logs the likes again'
  FROM pgfeed.interaction_source s
  JOIN pg_attribute a ON a.attrelid = s.source AND a.attname = s.created_at_column AND NOT a.attisdropped
 WHERE a.atttypid <> 'timestamptz'::regtype;
