-- The catalog: feeds, what they are attached to, and install-time settings.
-- Per-feed data (item store, interaction log, profiles) lives in tables that
-- attach_content and attach_interactions create, named after the feed's id.

CREATE TABLE pgfeed.setting (
    name  text PRIMARY KEY,
    value text NOT NULL
);
COMMENT ON TABLE pgfeed.setting IS
    'install-time settings (version, python_path); written only by the installing superuser';

CREATE TABLE pgfeed.feed_config (
    feed_id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                  text NOT NULL UNIQUE CHECK (name <> ''),
    model                 text NOT NULL,
    dimensions            integer NOT NULL CHECK (dimensions > 0),
    weight_similarity     float8 NOT NULL CHECK (weight_similarity >= 0),
    weight_freshness      float8 NOT NULL CHECK (weight_freshness >= 0),
    weight_popularity     float8 NOT NULL CHECK (weight_popularity >= 0),
    profile_size          integer NOT NULL CHECK (profile_size > 0),
    freshness_unit        interval NOT NULL CHECK (freshness_unit > '0'::interval),
    popularity_saturation float8 NOT NULL CHECK (popularity_saturation > 1),
    item_type             regtype,   -- bigint or uuid, set by attach_content
    user_type             regtype,   -- bigint or uuid, set by the first attach_interactions
    created_at            timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pgfeed.feed_config IS 'one row a feed: its model, score weights and key types';

CREATE TABLE pgfeed.content_source (
    feed_id           integer PRIMARY KEY REFERENCES pgfeed.feed_config ON DELETE CASCADE,
    source            regclass NOT NULL,
    id_column         name NOT NULL,
    text_expression   text NOT NULL,
    created_at_column name NOT NULL,
    condition         text
);
COMMENT ON TABLE pgfeed.content_source IS 'the content table a feed is attached to';

CREATE TABLE pgfeed.interaction_source (
    source_id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feed_id           integer NOT NULL REFERENCES pgfeed.feed_config ON DELETE CASCADE,
    source            regclass NOT NULL,
    user_column       name NOT NULL,
    item_column       name NOT NULL,
    weight            float8 NOT NULL CHECK (weight <> 0),
    created_at_column name,
    UNIQUE (feed_id, source)
);
COMMENT ON TABLE pgfeed.interaction_source IS 'the interaction (like) tables a feed is attached to';
