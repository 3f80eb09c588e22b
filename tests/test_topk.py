"""The threshold algorithm (pgfeed.topk) without a server: a fake plpy serves
the index streams from in-memory lists, and the result is compared with a
brute-force ranking of every eligible item."""

import itertools
import random

import pytest

from pgfeed.topk import Query, ThresholdSearch

CEILINGS = [0.3, 0.6, 1.0]  # each like-count tier's highest popularity
WEIGHTS = (0.6, 0.2, 0.2)
POPULARITY = "popularity"


class Cursor:
    def __init__(self, rows):
        self.rows, self.closed = iter(rows), False

    def fetch(self, n):
        assert not self.closed, "read after close"
        return list(itertools.islice(self.rows, n))

    def close(self):
        self.closed = True


class Plan:
    def __init__(self, plpy, query):
        self.plpy, self.query = plpy, query

    def cursor(self, args):
        self.plpy.opened.append(self.query)
        rows = self.plpy.streams[self.query]
        if self.query == "exact":  # as its SQL: the first $10
            rows = rows[:args[9]]
        return Cursor(rows)

    def execute(self, args):
        keys, _saturation = args
        self.plpy.lookups += len(keys)
        return [{"i": key, "p": self.plpy.popularity[key]} for key in keys]


class FakePlpy:
    """PL/Python's plpy over in-memory streams: a query names its stream."""

    def __init__(self, streams, popularity):
        self.streams, self.popularity = streams, popularity
        self.prepared, self.opened, self.settings, self.lookups = [], [], [], 0

    def prepare(self, query, types):
        self.prepared.append(query)
        return Plan(self, query)

    def execute(self, plan, args):
        if args:
            self.settings.append(args[0])  # set_config('hnsw.ef_search', ...)
        return []

    def debug(self, message):
        pass


def catalogue(n, seed, clusters=False, groups=None):
    """Items with a similarity, freshness and popularity; tiers by popularity; a group (an author) each."""
    rng = random.Random(seed)
    items = {}
    for i in range(n):
        s = rng.choice([rng.uniform(0.7, 0.9), rng.uniform(-0.2, 0.3)]) if clusters else rng.uniform(-0.3, 1.0)
        p = min(1.0, rng.expovariate(6))
        items[str(i)] = {"s": s, "f": rng.random() ** 4, "p": p,
                         "t": next(t for t, ceiling in enumerate(CEILINGS) if p <= ceiling),
                         "g": None if groups is None else f"author {rng.randrange(groups)}"}
    return items


def streams_of(items, profile=True, newest=True, exact=False, weights=WEIGHTS):
    """The streams pgfeed.feed() reads, sorted as their indexes are (ties by key)."""
    rows = [{"i": i, "s": v["s"] if profile else 0.0, "f": v["f"], "t": v["t"], "p": None, "g": v.get("g")}
            for i, v in items.items()]
    streams = {f"tier {t}": sorted((r for r in rows if r["t"] == t), key=lambda r: (-r["s"], int(r["i"])))
               for t in range(len(CEILINGS))}
    streams["newest"] = sorted(rows, key=lambda r: (-r["f"], int(r["i"])))
    streams[POPULARITY + " stream"] = sorted(({**r, "p": items[r["i"]]["p"]} for r in rows),
                                             key=lambda r: (-r["p"], int(r["i"])))
    ws, wf, wp = weights
    streams["exact"] = sorted(rows, key=lambda r: (-(ws * r["s"] + wf * r["f"] + wp * CEILINGS[r["t"]]), int(r["i"])))
    if exact:
        return streams, [None] * (len(CEILINGS) + 2) + ["exact"]
    names = [f"tier {t}" if profile else None for t in range(len(CEILINGS))] + \
            ["newest" if newest else None, POPULARITY + " stream", None]
    return streams, names


def search(items, limit, profile=True, newest=True, depth=20, max_depth=20000, weights=WEIGHTS, after=None,
           max_per_group=None, exact=False):
    streams, names = streams_of(items, profile, newest, exact, weights)
    plpy = FakePlpy(streams, {i: v["p"] for i, v in items.items()})
    query = Query(names, POPULARITY, ["bigint", "bigint"], "public.vector", [1.0], 3600.0, 1000.0, "1", [],
                  1.7e9, None, weights, CEILINGS, [40, 60, 100], limit, depth, max_depth, after, max_per_group)
    ticks = itertools.count()
    found = ThresholdSearch(plpy, {}, query, clock=lambda: next(ticks) / 1000).run()
    return found, plpy


def ranking(items, profile=True, weights=WEIGHTS):
    """Every item, best first: (score, key), ties by key in number order (bigint keys)."""
    ws, wf, wp = weights
    scored = [(ws * (v["s"] if profile else 0.0) + wf * v["f"] + wp * v["p"], i) for i, v in items.items()]
    return sorted(scored, key=lambda r: (-r[0], int(r[1])))


def reference(items, limit, profile=True, weights=WEIGHTS):
    return ranking(items, profile, weights)[:limit]


def greedy(items, limit, cap, after=None, weights=WEIGHTS):
    """The page as the issue defines it: down the exact ranking after the cursor, skipping full groups."""
    ranked = ranking(items, weights=weights)
    if after is not None:
        ranked = ranked[ranked.index(after) + 1:]
    page, groups = [], {}
    for _score, i in ranked:
        g = items[i]["g"]
        if g is not None and groups.get(g, 0) >= cap:
            continue
        groups[g] = groups.get(g, 0) + 1
        page.append(i)
        if len(page) == limit:
            break
    return page


def assert_top_k(found, items, limit, profile=True, weights=WEIGHTS):
    """Exactly the k best, best first (ties by key), each with its exact components."""
    ws, wf, wp = weights
    for item, score, s, f, p in found:
        v = items[item]
        assert (s, f, p) == ((v["s"] if profile else 0.0), v["f"], v["p"])
        assert score == ws * s + wf * f + wp * p
    assert [(score, item) for item, score, *_ in found] == reference(items, limit, profile, weights)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("limit", [1, 20, 100])
def test_the_top_k_of_every_eligible_item(seed, limit):
    items = catalogue(3000, seed)
    found, plpy = search(items, limit)
    assert_top_k(found, items, limit)
    assert plpy.lookups < len(items)  # it stopped before looking every item up


def test_interests_in_two_clusters():
    """Similarities fall slowly inside a cluster, then steeply: the search reads on into the second one."""
    items = catalogue(4000, 11, clusters=True)
    found, _ = search(items, 20)
    assert_top_k(found, items, 20)


def test_cold_start_reads_no_tier():
    items = catalogue(2000, 3)
    found, plpy = search(items, 20, profile=False)
    assert_top_k(found, items, 20, profile=False)
    assert not any(query.startswith("tier") for query in plpy.opened)


def test_without_freshness_and_popularity_weights():
    items = catalogue(2000, 5)
    found, _ = search(items, 10, newest=False, weights=(1.0, 0.0, 0.0))
    assert_top_k(found, items, 10, weights=(1.0, 0.0, 0.0))


def test_items_tied_at_the_cut_fill_the_page_in_key_order():
    """Every item ties: the page is the k smallest keys, whatever order the streams read them in."""
    items = {str(i): {"s": 0.5, "f": 0.5, "p": 0.2, "t": 0} for i in reversed(range(30))}
    found, _ = search(items, 5)
    assert [item for item, *_ in found] == ["0", "1", "2", "3", "4"]


def test_fewer_items_than_the_limit():
    items = catalogue(7, 2)
    found, _ = search(items, 20)
    assert_top_k(found, items, 20)


def test_nothing_eligible():
    found, _ = search({}, 20)
    assert found == []


def test_excluded_items_never_come_back():
    """Exclusions are filtered in the streams' queries: the algorithm ranks what the streams yield."""
    items = catalogue(2000, 7)
    best = [i for _, i in reference(items, 10)]
    kept = {i: v for i, v in items.items() if i not in best[:5]}
    found, _ = search(kept, 10)
    assert not {item for item, *_ in found} & set(best[:5])
    assert_top_k(found, kept, 10)


def test_each_tier_is_read_with_its_own_list_size():
    items = catalogue(3000, 9)
    _, plpy = search(items, 20)
    assert plpy.settings and set(plpy.settings) <= {"40", "60", "100"}


def test_a_stream_read_to_its_deepest_stops_the_search():
    """max_depth bounds every stream: the result is then the best of what was read."""
    items = catalogue(3000, 4)
    found, plpy = search(items, 20, depth=5, max_depth=10)
    assert 0 < len(found) and plpy.lookups <= 3 * 10


@pytest.mark.parametrize("seed", range(4))
def test_scores_packed_close_together(seed):
    """Many items within a few hundredths of each other: the search must not stop while the threshold is a
    little above the k-th score."""
    rng = random.Random(seed)
    items = {str(i): {"s": rng.uniform(0.40, 0.45), "f": rng.uniform(0.40, 0.45), "p": rng.uniform(0.0, 0.3), "t": 0}
             for i in range(3000)}
    found, _ = search(items, 20)
    assert_top_k(found, items, 20)


def pages(items, limit, count, **options):
    """count pages, each after the last row of the one before (its score and key: what a cursor holds)."""
    found, after = [], None
    for _ in range(count):
        page, _ = search(items, limit, after=after, **options)
        found += page
        if page:
            after = (page[-1][1], page[-1][0])
    return found


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_pages_after_a_cursor_are_one_longer_ranking(seed, exact):
    items = catalogue(3000, seed, clusters=seed % 2 == 1)
    assert_top_k(pages(items, 20, 3, exact=exact), items, 60)


def test_pages_of_tied_items_go_on_in_key_order():
    items = {str(i): {"s": 0.5, "f": 0.5, "p": 0.2, "t": 0} for i in reversed(range(30))}
    assert [item for item, *_ in pages(items, 4, 3)] == [str(i) for i in range(12)]


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_the_cap_a_group_is_the_greedy_walk_down_the_ranking(seed, exact):
    items = catalogue(3000, seed, groups=6)
    found, _ = search(items, 20, max_per_group=2, exact=exact)
    assert [item for item, *_ in found] == greedy(items, 20, 2)
    assert max(list(map(lambda r: items[r[0]]["g"], found)).count(g) for g in {items[r[0]]["g"] for r in found}) == 2
    # the next page: the walk goes on after the last row, its groups counted afresh
    second, _ = search(items, 20, max_per_group=2, exact=exact, after=(found[-1][1], found[-1][0]))
    assert [item for item, *_ in second] == greedy(items, 20, 2, after=(found[-1][1], found[-1][0]))


def test_items_without_a_group_are_not_capped():
    items = catalogue(500, 8, groups=3)
    for v in list(items.values())[::2]:
        v["g"] = None
    found, _ = search(items, 30, max_per_group=1)
    assert [item for item, *_ in found] == greedy(items, 30, 1)


def test_the_exact_stream_alone_is_read_and_only_as_far_as_the_page():
    items = catalogue(3000, 6)
    found, plpy = search(items, 20, exact=True)
    assert_top_k(found, items, 20)
    assert set(plpy.opened) == {"exact"} and plpy.lookups < 500  # like counts looked up for the first rows only


def test_the_exact_stream_sorts_again_when_its_first_rows_make_no_page():
    """Two authors fill the first rows of the ranking: the capped page needs rows past the bounded sort's."""
    items = catalogue(3000, 2, groups=40)
    top = [i for _, i in reference(items, 400)]
    for rank, i in enumerate(top):
        items[i]["g"] = f"prolific {rank % 2}"
    found, plpy = search(items, 20, max_per_group=3, exact=True, depth=20)
    assert [item for item, *_ in found] == greedy(items, 20, 3)
    assert len(plpy.opened) > 1 and set(plpy.opened) == {"exact"}
