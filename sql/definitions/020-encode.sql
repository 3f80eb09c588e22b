-- Embedding: PL/Python shims over pgfeed.server. The model is loaded once per
-- backend and cached in GD.

CREATE OR REPLACE FUNCTION pgfeed._encode(p_texts text[], p_model text) RETURNS vector[]
LANGUAGE plpython3u VOLATILE STRICT
SET search_path FROM CURRENT
AS $python$
if "pgfeed" not in GD:
    plpy.execute("SELECT pgfeed._python_init()")
threads = plpy.execute("SELECT current_setting('pgfeed.encoder_threads', true) AS n")[0]["n"]
return GD["pgfeed"].encode(GD, p_texts, p_model, threads)
$python$;
COMMENT ON FUNCTION pgfeed._encode(text[], text) IS
    'embeddings of non-empty texts with a model, in batches; one vector a text, in order';

CREATE OR REPLACE FUNCTION pgfeed._model_dimensions(p_model text) RETURNS integer
LANGUAGE plpython3u VOLATILE STRICT
SET search_path FROM CURRENT
AS $python$
if "pgfeed" not in GD:
    plpy.execute("SELECT pgfeed._python_init()")
return GD["pgfeed"].dimensions(p_model)
$python$;
COMMENT ON FUNCTION pgfeed._model_dimensions(text) IS
    'the dimension of a model''s vectors, or an error saying how to make the model available';

CREATE OR REPLACE FUNCTION pgfeed.encoder_stats()
RETURNS TABLE (model text, calls bigint, texts bigint, load_seconds float8)
LANGUAGE plpython3u VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $python$
if "pgfeed" not in GD:
    plpy.execute("SELECT pgfeed._python_init()")
return GD["pgfeed"].encoder_stats(GD)
$python$;
COMMENT ON FUNCTION pgfeed.encoder_stats() IS
    'models loaded in this backend: encoder calls, texts embedded and load time';

CREATE OR REPLACE FUNCTION pgfeed.embed(text text, model text DEFAULT 'all-MiniLM-L6-v2') RETURNS vector
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
BEGIN
    -- Only models that a superuser configured (a feed's, or the default) may
    -- be loaded: a model name can be a module:Class path that the server imports.
    IF embed.model <> 'all-MiniLM-L6-v2' AND NOT EXISTS (SELECT 1 FROM pgfeed.feed_config c WHERE c.model = embed.model) THEN
        RAISE EXCEPTION 'model "%" is not used by any feed', embed.model
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass the model of a feed (see pgfeed.status()) or omit it for all-MiniLM-L6-v2';
    END IF;
    RETURN (pgfeed._encode(ARRAY[embed.text], embed.model))[1];
END
$$;
COMMENT ON FUNCTION pgfeed.embed(text, text) IS
    'the embedding of one text, exactly as the content triggers store it';
