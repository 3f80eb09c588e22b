-- feed() returns one column more, because (the liked item most similar
-- to each returned one).
DROP FUNCTION IF EXISTS pgfeed.feed(text, anyelement, integer, anycompatiblearray, boolean);
