"""The threshold algorithm behind pgfeed.feed(): the k best items read from
sorted index streams (Fagin's threshold algorithm), with the SPI calls of
PL/Python (``plpy``) passed in, so that it runs without a server in the tests.

pgfeed.feed() builds the streams of the eligible items (None: not read): for
each like-count tier (pgfeed._popularity_tier) the tier's items nearest to the
profile, then the newest items, then the most liked. Each yields rows ``i``
(item), ``s`` (similarity), ``f`` (freshness), ``t`` (tier) and ``p``
(popularity); only the most liked stream knows the popularity, which the
popularity query looks up for the other rows that could still enter the top
k. An item no stream yielded has at most the similarity last read in its tier,
the popularity of its tier and of the last item read most liked, and the
freshness last read newest; once the k-th best score is at least the highest
such bound (the threshold), no unseen item can enter the top k. The tiers make
the bound tight: the nearest items among the most liked are what a feed shows,
and without them a similarity stream would have to be read until it passes
every such item's similarity. Without a profile (cold start) similarity is 0
and no tier is read. Every stored item has a like count, so the most liked
stream running out means every eligible item was seen.

Where an exact scan is cheap (a small item store, a selective filter),
pgfeed.feed() gives one stream instead: every eligible item, sorted by the
highest score its tier allows (its similarity and freshness, its tier's
highest popularity), the last of those the threshold. Either way the result is one page: the items
ranked (by score, then key) after the cursor's item, walked down greedily,
leaving out those of a group (an author) that already has max_per_group items
on the page; the k-th item of that walk plays the k-th best's part.
"""

from __future__ import annotations

import time
from collections import Counter, namedtuple  # (light imports only: a first feed read of a connection imports this)

# What pgfeed.feed() hands the algorithm (pgfeed._top_k's arguments): the
# streams (the tiers' nearest, the newest, the most liked, the exact scan;
# None: not read), the popularity query ($1 keys, $2 saturation), the feed's
# user and item key types, pgvector's type named with its schema, the streams'
# parameters ($1 to $10: profile, freshness unit in seconds, popularity
# saturation, user, exclusions, the ranking's time in epoch seconds, the
# weights, the filter, each tier's highest popularity, how many rows the
# exact scan sorts), the weights (similarity, freshness, popularity), each
# tier's highest popularity and hnsw.ef_search, the limit, the rows a first
# read takes and the rows a stream is read to at most, the cursor's last item
# (score, key; None for a first page) and the cap of items a group.
Query = namedtuple("Query", "streams popularity key_types vector_type profile unit saturation user exclude ranked_at "
                            "filter weights ceilings ef_search limit depth max_depth after max_per_group")

INTEGER_KEYS = {"smallint", "integer", "bigint"}


def prepared(plpy, plans: dict, query: str, types: list[str]):
    """A plan kept for the backend's life (PL/Python's SD): no call plans a stream again."""
    key = (query, *types)
    if key not in plans:
        plans[key] = plpy.prepare(query, list(types))
    return plans[key]


class ThresholdSearch:
    """One feed read: reads the streams by turns and keeps the best items until the threshold is passed."""

    def __init__(self, plpy, plans: dict, query: Query, clock=time.perf_counter):
        self.plpy, self.plans, self.q, self.clock = plpy, plans, query, clock
        self.tiers = len(query.ceilings)
        self.newest, self.liked, self.exact = self.tiers, self.tiers + 1, self.tiers + 2
        count = self.tiers + 3
        self.component = ["s"] * self.tiers + ["f", "p", None]  # the column each stream is sorted on (exact: score)
        w_similarity, w_freshness, self.w_popularity = query.weights
        self.w_freshness = w_freshness
        self.weights = [w_similarity] * self.tiers + [w_freshness, self.w_popularity, 1.0]
        user_type, self.item_type = query.key_types
        # the order of keys SQL sorts by: numbers for integer keys, code points (COLLATE "C") for the others
        self.key = int if self.item_type in INTEGER_KEYS else str
        self.types = [query.vector_type, "float8", "float8", user_type or "text", self.item_type + "[]", "float8",
                      "float8[]", "jsonb", "float8[]", "integer"]
        # the exact scan sorts only its first rows (a bounded sort), as many as a page usually takes ($10)
        self.args = [query.profile, query.unit, query.saturation, query.user, list(query.exclude), query.ranked_at,
                     list(query.weights), query.filter, list(query.ceilings), max(query.depth, 2 * query.limit)]
        self.budget = len(self.args) - 1
        self.after = None if query.after is None else self.rank(*query.after)
        self.lowest = [-1] * self.tiers + [0, 0, float("-inf")]  # the lowest value of each stream's component
        self.bounds = [1.0] * count                              # the last value of each stream's component
        if query.streams[0] is None:
            self.bounds[0:self.tiers] = [0.0] * self.tiers
        self.cursors: list = [None] * count
        self.read, self.ended = [0] * count, [False] * count
        self.slopes: list[float | None] = [None] * count  # weighted value each stream fell by per ms, last read
        self.best: dict = {}  # item -> (score, similarity, freshness, popularity, group): those that could be on the page
        self.page: list = []  # the page as it stands: the walk down the best, (item, values)
        self.kth: float | None = None
        self.ef_search: int | None = None  # hnsw.ef_search as last set

    def rank(self, score: float, item: str) -> tuple:
        """Where an item stands in the ranking: by score, then by key (SQL's order)."""
        return -score, self.key(item)

    def tier_ceiling_score(self, row) -> float:
        """The highest score a row's tier allows it (what the exact scan is sorted by)."""
        w_similarity, w_freshness, w_popularity = self.q.weights
        return w_similarity * row["s"] + w_freshness * row["f"] + w_popularity * self.q.ceilings[row["t"]]

    def tier_bound(self, t: int) -> float:
        return self.weights[t] * self.bounds[t] + self.w_popularity * min(self.q.ceilings[t], self.bounds[self.liked])

    def next_stream(self) -> int | None:
        """The stream to read next, or None once no unseen item can enter the page (or nothing is left to read).
        The tier whose unseen items could score the most gives the threshold; what lowers it: that tier's
        stream, the newest stream, the most liked stream (once below the tier's ceiling)."""
        if self.q.streams[self.exact] is not None:
            # (a tie could be an unseen item with a smaller key)
            done = self.ended[self.exact] or self.read[self.exact] >= self.q.max_depth \
                or (self.kth is not None and self.bounds[self.exact] < self.kth)
            return None if done else self.exact
        tier = max(range(self.tiers), key=lambda t: (self.tier_bound(t), t))
        top = self.tier_bound(tier)
        gap = None if self.kth is None else top + self.w_freshness * self.bounds[self.newest] - self.kth
        if gap is not None and gap < 0:  # (a tie could be an unseen item with a smaller key)
            return None
        # Lowering the threshold by the gap through the tiers takes reading every
        # tier within the gap of the top one; through freshness, only the newest
        # stream. The pace of a tier's stream is shared out accordingly.
        close = 1 if gap is None else max(1, sum(self.tier_bound(t) > top - gap for t in range(self.tiers)))
        # First each once. Then the one that would close the gap soonest by itself
        # at the pace of its last read; when none can (clustered similarities fall
        # slowly, then steeply; saturated popularity does not fall), the one that
        # fell fastest.
        closing = soonest = fastest = fastest_pace = None
        for candidate in (tier, self.newest, self.liked):
            if self.q.streams[candidate] is None or self.ended[candidate] \
                    or self.read[candidate] >= self.q.max_depth:
                continue
            if self.slopes[candidate] is None:
                return candidate
            pace = self.slopes[candidate] / (close if candidate < self.tiers else 1)
            if gap is not None and pace > 0 \
                    and self.weights[candidate] * (self.bounds[candidate] - self.lowest[candidate]) >= gap \
                    and (soonest is None or gap / pace < soonest):
                closing, soonest = candidate, gap / pace
            if fastest_pace is None or pace > fastest_pace:
                fastest, fastest_pace = candidate, pace
        return closing if closing is not None else fastest

    def fetch(self, stream: int) -> list:
        q = self.q
        if stream < self.tiers and q.ef_search[stream] != self.ef_search:
            # read when the scan starts and each time it resumes: set for the tier it reads
            self.ef_search = q.ef_search[stream]
            self.plpy.execute(prepared(self.plpy, self.plans, "SELECT set_config('hnsw.ef_search', $1, true)", ["text"]),
                              [str(self.ef_search)])
        if stream == self.exact and self.cursors[stream] is None:
            # it reads every eligible item: a scan of the store, a hash anti-join (the seen), a sort (planned
            # when first opened)
            self.plpy.execute(prepared(self.plpy, self.plans, "SELECT set_config('enable_seqscan', 'on', true), "
                                       "set_config('enable_hashjoin', 'on', true), set_config('enable_sort', 'on', true)",
                                       []), [])
        if self.cursors[stream] is None:
            self.cursors[stream] = prepared(self.plpy, self.plans, q.streams[stream], self.types).cursor(self.args)
        size = min(max(q.depth, q.limit, self.read[stream] // 2), q.max_depth - self.read[stream])
        rows = self.cursors[stream].fetch(size)
        if len(rows) < size:
            self.cursors[stream].close()
            self.ended[stream] = True
        self.read[stream] += len(rows)
        return rows

    def score(self, rows: list) -> None:
        """Keeps the rows that could be on the page, scored: a row's popularity is at most its tier's."""
        w_similarity, w_freshness, w_popularity = self.q.weights
        best, kth = self.best, self.kth  # (locals: this runs for every row read)
        unknown, new = [], []
        for row in rows:
            item = row["i"]
            if item in best:
                continue
            if row["p"] is not None:
                new.append((item, row["s"], row["f"], row["p"], row["g"]))
            elif kth is None or self.tier_ceiling_score(row) >= kth:
                unknown.append(row)
        if unknown:
            plan = prepared(self.plpy, self.plans, self.q.popularity, [self.item_type + "[]", "float8"])
            known = {r["i"]: r["p"] for r in plan.execute([[row["i"] for row in unknown], self.q.saturation])}
            new += [(row["i"], row["s"], row["f"], known.get(row["i"], 0.0), row["g"]) for row in unknown]
        for item, s, f, p, g in new:
            total = w_similarity * s + w_freshness * f + w_popularity * p
            if (kth is None or total >= kth) and (self.after is None or self.rank(total, item) > self.after):
                best[item] = (total, s, f, p, g)
        self.walk()

    def walk(self) -> None:
        """The page: the best walked down in rank order, leaving out items of a group that is full."""
        cap, limit = self.q.max_per_group, self.q.limit
        groups: Counter = Counter()
        self.page = []
        for item, values in sorted(self.best.items(), key=lambda kv: self.rank(kv[1][0], kv[0])):
            group = values[4]
            if cap is not None and group is not None:
                if groups[group] >= cap:
                    continue
                groups[group] += 1
            self.page.append((item, values))
            if len(self.page) == limit:
                self.kth = values[0]
                self.best = {i: v for i, v in self.best.items() if v[0] >= self.kth}
                return

    def run(self) -> list[tuple]:
        """The page, best first: (item, score, similarity, freshness, popularity)."""
        while (stream := self.next_stream()) is not None:
            before, started = self.bounds[stream], self.clock()
            rows = self.fetch(stream)
            self.score(rows)
            if stream == self.exact and self.ended[stream] and self.read[stream] >= self.args[self.budget] \
                    and self.args[self.budget] < self.q.max_depth \
                    and (self.kth is None
                         or (self.tier_ceiling_score(rows[-1]) if rows else self.bounds[stream]) >= self.kth):
                # The rows the bounded sort kept ran out, not the items, and the page is not settled (a later
                # page, full groups, close scores): sort again, keeping more.
                self.args[self.budget], self.read[stream] = min(8 * self.args[self.budget], self.q.max_depth), 0
                self.ended[stream], self.cursors[stream] = False, None
            if rows:
                last = rows[-1]
                self.bounds[stream] = last[self.component[stream]] if stream != self.exact else \
                    self.tier_ceiling_score(last)
            if self.ended[stream] and stream != self.liked:
                # Every eligible item of the tier (or with a creation time) was seen:
                # none is left to bound. An HNSW scan could also stop at its limits,
                # but they are set far above a read's reach: rows visited twice the
                # deepest read (so it would take more rows filtered out, seen or
                # excluded, than read), memory 8 x work_mem.
                self.bounds[stream] = self.lowest[stream]
            # A similarity bound that rose (the scan came upon a second cluster near
            # the profile) makes the stream new again: read on before judging its pace.
            first = rows[0][self.component[stream]] if rows and stream != self.exact else self.bounds[stream]
            elapsed = max((self.clock() - started) * 1000, 0.001)
            self.slopes[stream] = (self.weights[stream] * (first - self.bounds[stream]) / elapsed
                                   if self.bounds[stream] <= before else None)
            self.plpy.debug(f"pgfeed.feed: read {self.read} rows (nearest in each tier, newest, most liked, exact), "
                            f"the last {len(rows)} in {elapsed:.2f} ms, k-th score {self.kth}, bounds {self.bounds}, "
                            f"slopes {self.slopes}")
            if self.ended[self.liked]:  # every eligible item was seen
                break
        for cursor in self.cursors:
            if cursor is not None:
                cursor.close()  # (a closed one stays closed)
        return [(item, *values[:4]) for item, values in self.page]


def top_k(plpy, plans: dict, query: Query) -> list[tuple]:
    return ThresholdSearch(plpy, plans, query).run()
