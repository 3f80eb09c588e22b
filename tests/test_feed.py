"""pgfeed.feed() against a Python re-implementation of the hybrid score,
computed from the user's tables (text, time, likes) with numpy."""

import math
import uuid

import numpy as np
import psycopg
import pytest

import pgfeed
from conftest import attach, feed_id, make_tables
from pgfeed.encoders.hashing import HashingEncoder

WEIGHTS = {"weight_similarity": 0.5, "weight_freshness": 0.3, "weight_popularity": 0.2}
TOPICS = ["cats purr softly", "dogs bark loudly", "stocks fall hard", "rain falls again", "chess openings theory"]


def populate(conn, key="integer"):
    post, like = make_tables(conn, key)
    feed = attach(conn, post, like, profile_size=10, **WEIGHTS)
    conn.execute(f"""INSERT INTO {post} (title, body, created_at)
                     SELECT 'post ' || g, (%s::text[])[g %% 5 + 1] || ' ' || (g %% 7), now() - g * interval '37 minutes'
                       FROM generate_series(1, 60) g""", [TOPICS])
    ids = [r[0] for r in conn.execute(f"SELECT id FROM {post} ORDER BY created_at DESC")]
    users = [uuid.uuid4() for _ in range(3)] if key == "uuid" else [1, 2, 3]
    likes = [(users[0], ids[i]) for i in range(0, 60, 5)] + [(users[1], ids[i]) for i in (1, 2, 3, 1 + 5, 2 + 5)]
    likes += [(users[2], ids[i]) for i in range(0, 30, 2)]  # popular items
    conn.cursor().executemany(f"INSERT INTO {like} (user_id, post_id) VALUES (%s, %s)", likes)
    return post, like, feed, users


def reference_feed(conn, post, like, user_id, now, exclude=(), exclude_seen=True, profile_size=10, encoder=None):
    rows = conn.execute(f"SELECT id, title || ' ' || body, created_at FROM {post} WHERE status = 'published'").fetchall()
    encoder = encoder or HashingEncoder()
    vectors = dict(zip([r[0] for r in rows], encoder.encode([r[1] for r in rows]).astype(np.float64), strict=True))
    likes = conn.execute(f"SELECT user_id, post_id FROM {like} ORDER BY created_at DESC").fetchall()
    mine = [item for user, item in likes if user == user_id and item in vectors]
    profile = None
    if mine:
        mean = np.mean([vectors[item] for item in mine[:profile_size]], axis=0)
        profile = mean / np.linalg.norm(mean)
    counts = {}
    for _, item in likes:
        counts[item] = counts.get(item, 0) + 1
    scored = []
    for item_id, _, created_at in rows:
        if item_id in exclude or (exclude_seen and item_id in mine):
            continue
        similarity = 0.0 if profile is None else float(profile @ vectors[item_id] / np.linalg.norm(vectors[item_id]))
        freshness = 1 / (1 + max((now - created_at).total_seconds(), 0) / 3600)
        popularity = min(1.0, math.log(1 + counts.get(item_id, 0)) / math.log(1000))
        score = (WEIGHTS["weight_similarity"] * similarity + WEIGHTS["weight_freshness"] * freshness
                 + WEIGHTS["weight_popularity"] * popularity)
        scored.append((score, item_id, similarity, freshness, popularity))
    return sorted(scored, key=lambda r: -r[0])


def compare(reference, actual, limit):
    """Same length, same components per item, best first, and the same top-k:
    only items tied (within 1e-6) with the k-th score may be swapped at the cut."""
    expected = reference[:limit]
    reference = {row[1]: row for row in reference}
    assert len(actual) == len(expected)
    for item in actual:
        want = reference[item.item_id]
        assert (item.score, item.similarity, item.freshness, item.popularity) == pytest.approx(
            (want[0], *want[2:]), abs=1e-6)
    assert [i.score for i in actual] == sorted((i.score for i in actual), reverse=True)
    if expected:
        cut = expected[-1][0]
        assert {i.item_id for i in actual} >= {w[1] for w in expected if w[0] > cut + 1e-6}


def feed_in_one_transaction(dsn, feed, user_id, **kwargs):
    """pgfeed.feed() and now() from the same transaction, as the role dsn logs in as (the tests read as the
    application): freshness uses the transaction's start time."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        now = conn.execute("SELECT now()").fetchone()[0]
        return now, pgfeed.feed(conn, feed, user_id, **kwargs)


@pytest.mark.parametrize("key", ["integer", "uuid"])
def test_feed_matches_the_reference_score(conn, app_dsn, key):
    post, like, feed, users = populate(conn, key)
    for user_id in users:
        now, actual = feed_in_one_transaction(app_dsn, feed, user_id, limit=15)
        compare(reference_feed(conn, post, like, user_id, now), actual, 15)
        assert all(isinstance(i.item_id, int if key == "integer" else uuid.UUID) for i in actual)


def test_cold_start_ranks_by_freshness_and_popularity(conn, app_dsn):
    post, like, feed, _ = populate(conn)
    for stranger in (999, None):
        now, actual = feed_in_one_transaction(app_dsn, feed, stranger, limit=10)
        assert all(item.similarity == 0 for item in actual)
        compare(reference_feed(conn, post, like, stranger, now), actual, 10)


def test_exclude_and_seen(app, conn, app_dsn):
    post, like, feed, users = populate(conn)
    first = [i.item_id for i in pgfeed.feed(app, feed, users[0], limit=5)]
    now, actual = feed_in_one_transaction(app_dsn, feed, users[0], limit=10, exclude=first[:3])
    assert not set(first[:3]) & {i.item_id for i in actual}
    compare(reference_feed(conn, post, like, users[0], now, exclude=set(first[:3])), actual, 10)
    liked = {r[0] for r in conn.execute(f"SELECT post_id FROM {like} WHERE user_id = %s", [users[0]])}
    everything = pgfeed.feed(app, feed, users[0], limit=100)
    assert not liked & {i.item_id for i in everything}
    with_seen = pgfeed.feed(app, feed, users[0], limit=100, exclude_seen=False)
    assert liked <= {i.item_id for i in with_seen}


def test_sql_form_from_the_readme(conn):
    post, like, feed, users = populate(conn)
    rows = conn.execute(f"SELECT * FROM pgfeed.feed(%s, {users[0]}, \"limit\" => 20)", [feed]).fetchall()
    assert len(rows) == 20 and [c.name for c in conn.execute("SELECT * FROM pgfeed.feed(%s, 1)", [feed]).description] \
        == ["item_id", "score", "similarity", "freshness", "popularity", "because", "cursor"]


def test_unknown_feed_names_the_feed(conn):
    with pytest.raises(psycopg.errors.UndefinedObject, match='unknown feed "nope"'):
        conn.execute("SELECT * FROM pgfeed.feed('nope', 1)")


def test_wrong_key_type_says_what_fits(conn):
    post, like, feed, _ = populate(conn)
    with pytest.raises(psycopg.errors.DatatypeMismatch, match=f'feed "{feed}" has user keys of type bigint'):
        conn.execute("SELECT * FROM pgfeed.feed(%s, %s)", [feed, uuid.uuid4()])
    with pytest.raises(psycopg.errors.DatatypeMismatch, match="item keys of type bigint"):
        conn.execute("SELECT * FROM pgfeed.feed(%s, 1, exclude => ARRAY['x'])", [feed])


def test_ordinary_role_reads_feeds_and_writes_its_tables_only(app, conn, dsn):
    post, like, feed, _ = populate(conn)
    role = f"app_{uuid.uuid4().hex[:8]}"
    conn.execute(f"CREATE ROLE {role} LOGIN")
    conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {post}, {like} TO {role}")
    conn.execute(f"GRANT USAGE ON SEQUENCE {post}_id_seq TO {role}")
    from psycopg.conninfo import make_conninfo
    conn.execute("SELECT pgfeed.grant_feed(%s, %s)", [feed, role])
    with psycopg.connect(make_conninfo(dsn, user=role), autocommit=True) as app:
        new_id = app.execute(f"INSERT INTO {post} (title, body) VALUES ('fresh', 'cats purr') RETURNING id").fetchone()[0]
        app.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (1, %s)", [new_id])
        assert len(pgfeed.feed(app, feed, 1, limit=5)) == 5
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT pgfeed.create_feed('mine')")
        # pgfeed's catalog shows the role its own feed only
        assert app.execute("SELECT name FROM pgfeed.feed_config").fetchall() == [(feed,)]


def populate_large(conn, items=600):
    """More items than the index streams first read, popularity spread by a seeded random like table; read
    through the index streams (exact_max_items 0), not ranked whole."""
    post, like = make_tables(conn)
    feed = attach(conn, post, like, profile_size=10, exact_max_items=0, **WEIGHTS)
    conn.execute(f"""INSERT INTO {post} (title, body, created_at)
                     SELECT 'post ' || g, (%s::text[])[g %% 5 + 1] || ' ' || (g %% 13) || ' ' || (g %% 29),
                            now() - (g * 7 %% 601) * interval '11 minutes'
                       FROM generate_series(1, %s) g""", [TOPICS, items])
    ids = [r[0] for r in conn.execute(f"SELECT id FROM {post} ORDER BY id")]
    rng = np.random.default_rng(7)
    likes = [(int(u), int(ids[i])) for u, i in zip(rng.integers(100, 400, 3000), rng.zipf(1.3, 3000) % len(ids), strict=True)]
    likes += [(1, ids[i]) for i in range(0, items, 3)] + [(2, ids[i]) for i in (4, 9, 14)]
    conn.cursor().executemany(f"INSERT INTO {like} (user_id, post_id) VALUES (%s, %s)", likes)
    return post, like, feed


@pytest.mark.parametrize("depth", [1, 6])
def test_index_driven_feed_equals_the_exact_ranking(conn, app_dsn, depth):
    """The threshold algorithm reads the index streams a few rows at a time
    (search_depth), yet returns the exact top k with exact scores."""
    post, like, feed = populate_large(conn)
    conn.execute("SELECT pgfeed.alter_feed(%s, search_depth => %s)", [feed, depth])
    for user_id in (1, 2, 150, None):
        now, actual = feed_in_one_transaction(app_dsn, feed, user_id, limit=15)
        compare(reference_feed(conn, post, like, user_id, now), actual, 15)


def test_exclusions_never_shorten_the_feed(app, conn, app_dsn):
    """User 1 has seen a third of the items and excludes the best 100 others:
    every stream's first rows are filtered out, and the feed is still full."""
    post, like, feed = populate_large(conn)
    conn.execute("SELECT pgfeed.alter_feed(%s, search_depth => 1)", [feed])
    best = [i.item_id for i in pgfeed.feed(app, feed, 1, limit=100)]
    now, actual = feed_in_one_transaction(app_dsn, feed, 1, limit=30, exclude=best)
    assert len(actual) == 30 and not set(best) & {i.item_id for i in actual}
    compare(reference_feed(conn, post, like, 1, now, exclude=set(best)), actual, 30)
    eligible = 600 - 200 - 100
    assert len(pgfeed.feed(app, feed, 1, limit=1000, exclude=best)) == eligible


def test_like_count_tiers_follow_the_likes(app, conn, app_dsn):
    """Each item's tier, which picks its HNSW index, is the power of ten of its
    like count (0-8, 9-98, 99 and more) as likes come and go, and the feed stays
    exact across the three tiers."""
    post, like, feed = populate_large(conn)
    item = conn.execute(f"SELECT min(id) FROM {post} WHERE id NOT IN (SELECT post_id FROM {like})").fetchone()[0]

    def check_tiers():
        counts = dict(conn.execute(f"SELECT post_id, count(*) FROM {like} GROUP BY post_id").fetchall())
        stored = dict(conn.execute(f"SELECT item_id, tier FROM pgfeed.item_store_{feed_id(conn, feed)}").fetchall())
        assert len(stored) == 600
        assert stored == {i: min(2, len(str(counts.get(i, 0) + 1)) - 1) for i in stored}
        return stored

    app.execute(f"INSERT INTO {like} (user_id, post_id) SELECT u, %s FROM generate_series(1000, 1098) AS u", [item])
    tiers = check_tiers()
    assert set(tiers.values()) == {0, 1, 2} and tiers[item] == 2
    for user_id in (1, 2, None):
        now, actual = feed_in_one_transaction(app_dsn, feed, user_id, limit=15)
        compare(reference_feed(conn, post, like, user_id, now), actual, 15)
    app.execute(f"DELETE FROM {like} WHERE post_id = %s AND user_id BETWEEN 1000 AND 1095", [item])
    assert check_tiers()[item] == 0


def test_each_tier_searches_with_a_list_for_its_size(conn):
    """ef_search is for a tier of 500,000 items or more; a smaller tier gets it scaled by the square root of
    its share, not under 40 (nor over the feed's); a tier the planner never counted gets all of it. The most
    liked tier, a page's most, gets a list of 1% of its items, not under 40 nor over twice the feed's (and
    twice it if never counted)."""
    post, like, feed = populate_large(conn)
    store = f"pgfeed.item_store_{feed_id(conn, feed)}"
    indexes = dict(conn.execute("SELECT pg_get_expr(i.indpred, i.indrelid), i.indexrelid::regclass::text "
                                "FROM pg_index i WHERE i.indrelid = %s::regclass AND i.indpred IS NOT NULL",
                                [store]).fetchall())

    def expected(tier, size, ef_search):
        if tier == 2:
            return min(1000, 2 * ef_search) if size < 0 else min(1000, 2 * ef_search, max(40, math.ceil(size / 100)))
        return ef_search if size < 0 else min(ef_search, max(40, math.ceil(ef_search * math.sqrt(size / 500_000))))

    with conn.transaction(force_rollback=True):  # the planner's counts, as the tiers of a large store would have
        for sizes in ({"(tier = 0)": 810_000, "(tier = 1)": 81_000, "(tier = 2)": -1},
                      {"(tier = 0)": -1, "(tier = 1)": 142_000, "(tier = 2)": 46_532},
                      {"(tier = 0)": 81_160, "(tier = 1)": 14_238, "(tier = 2)": 4_602},
                      {"(tier = 0)": 500, "(tier = 1)": 100, "(tier = 2)": 20}):
            for predicate, size in sizes.items():
                conn.execute("UPDATE pg_class SET reltuples = %s WHERE oid = %s::regclass", [size, indexes[predicate]])
            for ef_search in (200, 1000, 30):
                got = conn.execute("SELECT pgfeed._tier_ef_search(%s, %s)", [store, ef_search]).fetchone()[0]
                assert got == [expected(t, sizes[f"(tier = {t})"], ef_search) for t in range(3)]
        assert conn.execute("SELECT pgfeed._tier_ef_search(%s, 200)", [store]).fetchone()[0] == [40, 40, 40]
        conn.execute("UPDATE pg_class SET reltuples = 46532 WHERE oid = %s::regclass", [indexes["(tier = 2)"]])
        assert conn.execute("SELECT pgfeed._tier_ef_search(%s, 200)", [store]).fetchone()[0] == [40, 40, 400]


def test_migrations_bring_a_store_without_tiers_to_three(empty_database):
    """A feed's item store as 0.1 left it (no tier, one HNSW index over all its
    items) gets its tiers from migrations 004 and 005: each item the tier of its
    like count, one HNSW index a tier, and the feed exact."""
    pgfeed.install(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        post, like, feed = populate_large(conn)
        store = f"pgfeed.item_store_{feed_id(conn, feed)}"
        item = conn.execute(f"SELECT min(id) FROM {post} WHERE id NOT IN (SELECT post_id FROM {like})").fetchone()[0]
        conn.execute(f"INSERT INTO {like} (user_id, post_id) SELECT u, %s FROM generate_series(1000, 2000) AS u", [item])
        conn.execute(f"ALTER TABLE {store} DROP COLUMN tier")  # and with it the tier indexes
        conn.execute(f"CREATE INDEX ON {store} USING hnsw (embedding vector_cosine_ops)")
        conn.execute("DELETE FROM pgfeed.migration WHERE name IN ('004-popularity-tiers.sql', '005-three-tiers.sql')")

        pgfeed.install(empty_database)
        counts = dict(conn.execute(f"SELECT post_id, count(*) FROM {like} GROUP BY post_id").fetchall())
        tiers = dict(conn.execute(f"SELECT item_id, tier FROM {store}").fetchall())
        assert len(tiers) == 600 and tiers[item] == 2
        assert tiers == {i: min(2, len(str(counts.get(i, 0) + 1)) - 1) for i in tiers}
        indexes = conn.execute("SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i "
                               "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                               "WHERE i.indrelid = %s::regclass AND a.amname = 'hnsw' ORDER BY 1", [store]).fetchall()
        assert indexes == [("(tier = 0)",), ("(tier = 1)",), ("(tier = 2)",)]
        for user_id in (1, 2, None):
            now, actual = feed_in_one_transaction(empty_database, feed, user_id, limit=15)
            compare(reference_feed(conn, post, like, user_id, now), actual, 15)
