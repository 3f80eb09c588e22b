-- An item store indexes its failed items (those kept with an error),
-- so that listing them (pgfeed.item_status(feed, NULL), status(), retry())
-- reads a few index entries, not the whole store. Stores made from now on get
-- the index from pgfeed._create_item_store; these are the ones made before.

DO $$
DECLARE
    v_store regclass;
BEGIN
    FOR v_store IN SELECT c.oid FROM pg_catalog.pg_class c
                    WHERE c.relnamespace = 'pgfeed'::regnamespace AND c.relkind = 'r'
                      AND c.relname ~ '^item_store_[0-9]+(_next)?$' LOOP
        EXECUTE format('CREATE INDEX ON %s (item_id) WHERE error IS NOT NULL', v_store);
    END LOOP;
END
$$;
