-- 0.3.0: each interaction table has a trigger function of its own, made by
-- pgfeed._create_interaction_follower with the statements planned once a
-- session (the definitions point the tables' triggers at them); what the one
-- trigger function of before used goes.
DROP FUNCTION IF EXISTS pgfeed._apply_interactions(integer, text[], text[], timestamptz[], text[], text[], timestamptz[]);
DROP FUNCTION IF EXISTS pgfeed._fold_popularity(integer, text[]);
DROP FUNCTION IF EXISTS pgfeed._interaction_rows_sql(pgfeed.interaction_source, text, text);
DROP FUNCTION IF EXISTS pgfeed._require_row_types(text[], regclass, jsonb, text);
-- status() has two columns more (profiles_pending, counts_pending)
DROP FUNCTION IF EXISTS pgfeed.status();
