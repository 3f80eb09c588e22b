-- Embedding: PL/Python shims over pgfeed.server. The model is loaded once per
-- backend and cached in GD.

-- SECURITY INVOKER, and open to every role: a model spec can name a Python
-- class the server imports, and a loaded model costs a backend 0.3-0.8 GB, so
-- a role may only use the model of a feed it may read (row-level security on
-- pgfeed.feed_config decides; superusers and pgfeed's own triggers and
-- workers see every feed).
CREATE OR REPLACE FUNCTION pgfeed._encode(p_texts text[], p_model text) RETURNS @vector@.vector[]
LANGUAGE plpython3u VOLATILE STRICT
SET search_path FROM CURRENT
AS $python$
if "pgfeed" not in GD:
    plpy.execute("SELECT pgfeed._python_init()")
if "allowed" not in SD:
    SD["allowed"] = plpy.prepare(
        "SELECT EXISTS (SELECT FROM pgfeed.feed_config WHERE $1 IN (model, next_model)) AS ok", ["text"])
if not plpy.execute(SD["allowed"], [p_model])[0]["ok"]:
    plpy.error(f'model "{p_model}" is not used by any feed granted to you',
               hint="pass the model of a feed you may read (pgfeed.status() lists them); its owner or a superuser grants a "
                    "feed with SELECT pgfeed.grant_feed(feed, role)", sqlstate="42501")
threads = plpy.execute("SELECT current_setting('pgfeed.encoder_threads', true) AS n")[0]["n"]
return GD["pgfeed"].encode(GD, p_texts, p_model, threads)
$python$;
COMMENT ON FUNCTION pgfeed._encode(text[], text) IS
    'embeddings of non-empty texts with a model (of a feed the role may read), in batches; one vector a text, in order';

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

CREATE OR REPLACE FUNCTION pgfeed._packaged_model(p_model text) RETURNS boolean
LANGUAGE plpython3u IMMUTABLE STRICT
SET search_path FROM CURRENT
AS $python$
if "pgfeed" not in GD:
    plpy.execute("SELECT pgfeed._python_init()")
return GD["pgfeed"].packaged(p_model)
$python$;
COMMENT ON FUNCTION pgfeed._packaged_model(text) IS
    'whether a model spec names a packaged model or its variant (weights pgfeed ships; no code or path of anyone''s)';

CREATE OR REPLACE FUNCTION pgfeed.encoder_stats()
RETURNS TABLE (model text, calls bigint, texts bigint, load_seconds float8)
LANGUAGE plpython3u VOLATILE
SET search_path FROM CURRENT
AS $python$
if "pgfeed" not in GD:
    plpy.execute("SELECT pgfeed._python_init()")
return GD["pgfeed"].encoder_stats(GD)
$python$;
COMMENT ON FUNCTION pgfeed.encoder_stats() IS
    'models loaded in this backend: encoder calls, texts embedded and load time';

CREATE OR REPLACE FUNCTION pgfeed.embed(text text, model text DEFAULT 'all-MiniLM-L6-v2') RETURNS @vector@.vector
LANGUAGE sql VOLATILE STRICT
SET search_path FROM CURRENT
AS $$ SELECT (pgfeed._encode(ARRAY[embed.text], embed.model))[1] $$;
COMMENT ON FUNCTION pgfeed.embed(text, text) IS
    'the embedding of one text, exactly as the content triggers store it; the model must be one of a feed granted '
    'to the role';
