-- Runs last on every install. Managing feeds (create, attach, detach, drop,
-- reembed) stays with superusers; ordinary roles get the read calls. The
-- triggers and feed() run as their owner, so an application role needs no
-- privilege on pgfeed's tables, only on its own. A worker role that is not a
-- superuser needs: GRANT EXECUTE ON FUNCTION pgfeed.work(text, integer),
-- pgfeed.queued(text) TO worker_role.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgfeed FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgfeed FROM PUBLIC;
GRANT USAGE ON SCHEMA pgfeed TO PUBLIC;
GRANT EXECUTE ON FUNCTION
    pgfeed.feed(text, anyelement, integer, anycompatiblearray, boolean),
    pgfeed.embed(text, text),
    pgfeed.status(),
    pgfeed.encoder_stats(),
    pgfeed.version()
TO PUBLIC;
