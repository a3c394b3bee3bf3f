"""broker.router: subject trie, match cache, queue groups — checked against trustkit.subject.matches.

The boundary guarded: every routing decision equals the one matcher's (``trustkit.subject``),
whatever sequence of inserts, removals, disconnects and matches led to it, with or without the
cache.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from broker.router import (
    EMPTY_RESULT,
    RandomChooser,
    Result,
    RoundRobinChooser,
    Router,
    Subscription,
    pick_queue_members,
)
from trustkit.errors import BrokerError, SubjectError
from trustkit.subject import matches


class Conn:
    """A stand-in connection (the router only needs identity)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<Conn {self.name}>"


DEFAULT_CONN = Conn("default")


def sub(subject: str, queue: str | None = None, conn: object = DEFAULT_CONN, sid: str = "1") -> Subscription:
    return Subscription(subject, sid, conn, queue)


def routed(r: Router, subject: str) -> set[str]:
    """Subjects of the plain subscriptions matching ``subject``."""
    return {s.subject for s in r.match(subject).plain}


def oracle(subs: Iterable[Subscription], subject: str) -> tuple[Counter[int], dict[str, Counter[int]]]:
    """Brute force with the one matcher: (plain sub ids, queue name -> member ids)."""
    plain: Counter[int] = Counter()
    queues: dict[str, Counter[int]] = {}
    for s in subs:
        if matches(s.subject, subject):
            if s.queue is None:
                plain[id(s)] += 1
            else:
                queues.setdefault(s.queue, Counter())[id(s)] += 1
    return plain, queues


def as_counters(res: Result) -> tuple[Counter[int], dict[str, Counter[int]]]:
    return Counter(id(s) for s in res.plain), {q: Counter(id(s) for s in m) for q, m in res.queues.items()}


def assert_agrees(r: Router, subs: Iterable[Subscription], subject: str) -> None:
    subs = list(subs)
    want = oracle(subs, subject)
    got = as_counters(r.match(subject))
    assert got == want, subject
    assert r.has_interest(subject) == bool(want[0] or want[1]), subject


# --- matching -----------------------------------------------------------------------------------

CASES = [
    # (subscription subject, publish subject, matches)
    ("a", "a", True),
    ("a", "b", False),
    ("a", "a.b", False),
    ("a.b", "a", False),
    ("a.b.c", "a.b.c", True),
    ("a.b.c", "a.b.d", False),
    ("*", "a", True),
    ("*", "a.b", False),
    ("a.*", "a", False),
    ("a.*", "a.b", True),
    ("a.*", "a.b.c", False),
    ("*.b", "a.b", True),
    ("*.b", "a.c", False),
    ("*.*", "a.b", True),
    ("*.*", "a", False),
    ("*.*", "a.b.c", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.b.d", False),
    ("*.*.c", "x.y.c", True),
    (">", "a", True),
    (">", "a.b.c", True),
    ("a.>", "a", False),  # '>' needs at least one token: never the parent
    ("a.>", "a.b", True),
    ("a.>", "a.b.c.d", True),
    ("a.>", "b.c", False),
    ("*.>", "a", False),
    ("*.>", "a.b", True),
    ("a.*.>", "a.b", False),
    ("a.*.>", "a.b.c", True),
    ("*.b.>", "a.b.c", True),
    ("*.b.>", "a.c.c", False),
    ("a*b.c", "a*b.c", True),  # '*' inside a token is a literal character
    ("a*b.c", "axb.c", False),
    ("a>.c", "a>.c", True),
    ("$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE", "$SYS.REQ.ACCOUNT.AB.CLAIMS.UPDATE", True),
]


@pytest.mark.parametrize(("pattern", "subject", "expected"), CASES)
@pytest.mark.parametrize("cache_size", [0, 1024])
def test_single_subscription(pattern: str, subject: str, expected: bool, cache_size: int) -> None:
    assert matches(pattern, subject) is expected  # the table agrees with the one matcher
    r = Router(cache_size=cache_size)
    s = sub(pattern)
    r.insert(s)
    res = r.match(subject)
    assert (res.plain == (s,)) is expected
    assert r.has_interest(subject) is expected
    assert bool(res) is expected


@pytest.mark.parametrize("cache_size", [0, 1024])
def test_all_cases_together(cache_size: int) -> None:
    r = Router(cache_size=cache_size)
    subs = [sub(p, sid=str(i)) for i, (p, _, _) in enumerate(CASES)]
    for s in subs:
        r.insert(s)
    for _, subject, _ in CASES:
        assert_agrees(r, subs, subject)
        assert_agrees(r, subs, subject)  # second time from the cache


def test_multiple_wildcards_and_overlaps() -> None:
    r = Router()
    for p in ["a.b.c", "a.*.c", "*.b.c", "*.*.c", "*.*.*", "a.>", "*.>", ">", "a.b.*", "a.b.c.>"]:
        r.insert(sub(p))
    assert routed(r, "a.b.c") == {"a.b.c", "a.*.c", "*.b.c", "*.*.c", "*.*.*", "a.>", "*.>", ">", "a.b.*"}
    assert routed(r, "a.b") == {"a.>", "*.>", ">"}
    assert routed(r, "a") == {">"}
    assert routed(r, "x.y.z") == {"*.*.*", "*.>", ">"}
    assert routed(r, "a.b.c.d") == {"a.>", "*.>", ">", "a.b.c.>"}


def test_same_subject_many_subscriptions_no_duplicates() -> None:
    r = Router()
    subs = [sub("a.*", sid=str(i), conn=Conn(str(i % 3))) for i in range(10)]
    for s in subs:
        r.insert(s)
    assert r.match("a.x").plain == tuple(subs)  # insertion order, each once
    assert r.count() == len(r) == 10


def test_unmatched_and_malformed_publish_subjects() -> None:
    r = Router()
    r.insert(sub("a.*.b"))
    r.insert(sub(">"))
    assert r.match("") is EMPTY_RESULT
    assert r.match("a..b") is EMPTY_RESULT  # an empty token never fills '*'
    assert not r.has_interest("a..b")
    assert r.cache_len() == 0  # malformed subjects are not cached
    r2 = Router()
    assert r2.match("a") is EMPTY_RESULT
    assert not r2.has_interest("a")
    assert not EMPTY_RESULT


def test_insert_validates() -> None:
    r = Router()
    for bad in ["", "a..b", "a.>.b", "a b", ".a"]:
        with pytest.raises(SubjectError):
            r.insert(sub(bad))
    with pytest.raises(BrokerError) as e:
        r.insert(sub("a", queue=""))
    assert e.value.code == "queue_invalid"
    s = sub("a")
    r.insert(s)
    with pytest.raises(BrokerError) as e:
        r.insert(s)
    assert e.value.code == "sub_duplicate"
    assert r.count() == 1
    with pytest.raises(BrokerError):
        Router(cache_size=-1)


# --- queue groups -------------------------------------------------------------------------------


def test_queue_groups_merge_by_name_across_subjects() -> None:
    r = Router()
    w1 = sub("orders.*", queue="workers", sid="1")
    w2 = sub("orders.new", queue="workers", sid="2")
    w3 = sub("orders.>", queue="workers", sid="3")
    a1 = sub("orders.new", queue="audit", sid="4")
    p = sub("orders.new", sid="5")
    for s in (w1, w2, w3, a1, p):
        r.insert(s)
    res = r.match("orders.new")
    assert res.plain == (p,)
    assert set(res.queues) == {"workers", "audit"}
    assert set(res.queues["workers"]) == {w1, w2, w3}
    assert res.queues["audit"] == (a1,)
    res2 = r.match("orders.old")
    assert res2.plain == ()
    assert set(res2.queues["workers"]) == {w1, w3}
    assert "audit" not in res2.queues


def test_queue_only_interest() -> None:
    r = Router()
    q = sub("a.>", queue="q")
    r.insert(q)
    assert r.has_interest("a.b")
    assert r.match("a.b").queues == {"q": (q,)}
    assert r.remove(q)
    assert not r.has_interest("a.b")
    assert r.match("a.b") is EMPTY_RESULT


def test_random_chooser_one_member_per_group() -> None:
    r = Router()
    members = [sub("jobs", queue="w", sid=str(i)) for i in range(4)]
    others = [sub("jobs", queue="v", sid=f"v{i}") for i in range(2)]
    for s in members + others:
        r.insert(s)
    choose = RandomChooser(random.Random(7))
    seen: Counter[str] = Counter()
    for _ in range(400):
        picked = pick_queue_members(r.match("jobs"), choose)
        assert len(picked) == 2
        assert sum(p in members for p in picked) == 1
        assert sum(p in others for p in picked) == 1
        seen.update(p.sid for p in picked)
    assert all(seen[s.sid] > 50 for s in members)  # every member is used
    assert pick_queue_members(EMPTY_RESULT, choose) == []


def test_round_robin_chooser() -> None:
    r = Router()
    members = [sub("jobs", queue="w", sid=str(i)) for i in range(3)]
    pair = [sub("jobs", queue="v", sid=f"v{i}") for i in range(2)]
    for s in members + pair:
        r.insert(s)
    choose = RoundRobinChooser()
    got_w, got_v = [], []
    for _ in range(6):
        picks = {p.queue: p.sid for p in pick_queue_members(r.match("jobs"), choose)}
        got_w.append(picks["w"])
        got_v.append(picks["v"])
    assert got_w == ["0", "1", "2", "0", "1", "2"]  # each group rotates on its own
    assert got_v == ["v0", "v1", "v0", "v1", "v0", "v1"]
    r.remove(members[2])  # the group shrinks: rotation stays in range
    assert {pick_queue_members(r.match("jobs"), choose)[0].sid for _ in range(4)} == {"0", "1"}


def test_round_robin_chooser_bounded() -> None:
    choose = RoundRobinChooser(max_queues=8)
    m = (sub("x", queue="q"),)
    for i in range(100):
        assert choose(f"q{i}", m) is m[0]
    assert len(choose._next) <= 8


# --- removal ------------------------------------------------------------------------------------


def test_remove_and_prune() -> None:
    r = Router()
    subs = [sub(p, sid=p) for p in ["a", "a.b", "a.b.c", "a.*", "a.>", "*", ">", "*.*.c", "a.b", "x.y.z.w"]]
    for s in subs:
        r.insert(s)
    assert r.count() == len(subs)
    for i, s in enumerate(subs):
        assert r.remove(s)
        assert not r.remove(s)  # idempotent
        assert s not in r
        for subject in ["a", "a.b", "a.b.c", "x.y.z.w", "q.r.c", "a.z"]:
            assert_agrees(r, subs[i + 1 :], subject)
    assert r.count() == 0
    assert r._root.is_empty()  # nothing left behind
    assert not r.remove(sub("never.inserted"))


def test_remove_keeps_siblings_and_descendants() -> None:
    r = Router()
    parent, child, wild = sub("a.b"), sub("a.b.c"), sub("a.*.c")
    for s in (parent, child, wild):
        r.insert(s)
    r.remove(parent)
    assert routed(r, "a.b.c") == {"a.b.c", "a.*.c"}
    assert routed(r, "a.b") == set()
    r.remove(child)
    assert routed(r, "a.b.c") == {"a.*.c"}
    r.insert(parent)
    assert routed(r, "a.b") == {"a.b"}


def test_remove_conn() -> None:
    r = Router()
    c1, c2 = Conn("1"), Conn("2")
    subs1 = [sub(p, conn=c1, sid=str(i)) for i, p in enumerate(["a", "a.*", "b.>", "c", "d.*.e"])]
    subs1.append(sub("a", queue="q", conn=c1, sid="q"))
    subs2 = [sub(p, conn=c2, sid=str(i)) for i, p in enumerate(["a", "a.>", "c"])]
    for s in subs1 + subs2:
        r.insert(s)
    for subject in ["a", "a.x", "b.y", "c", "d.x.e"]:
        r.match(subject)  # warm the cache
    assert set(r.subscriptions(c1)) == set(subs1)
    removed = r.remove_conn(c1)
    assert set(removed) == set(subs1)
    assert r.count() == len(subs2)
    assert r.subscriptions(c1) == ()
    assert r.remove_conn(c1) == []
    for subject in ["a", "a.x", "b.y", "c", "d.x.e", "a.x.y"]:
        assert_agrees(r, subs2, subject)
    assert r.remove_conn(c2) == subs2
    assert r._root.is_empty()


def test_remove_conn_many_wildcards_clears_cache() -> None:
    r = Router()
    c1, c2 = Conn("1"), Conn("2")
    subs1 = [sub(f"w{i}.*", conn=c1, sid=str(i)) for i in range(10)]
    keep = [sub("w1.>", conn=c2), sub("w2.x", conn=c2)]
    for s in subs1 + keep:
        r.insert(s)
    for i in range(10):
        r.match(f"w{i}.x")
    r.remove_conn(c1)
    for i in range(10):
        assert_agrees(r, keep, f"w{i}.x")


def test_remove_many() -> None:
    r = Router()
    subs = [sub(f"s.{i % 7}.*", sid=str(i), conn=Conn(str(i % 3))) for i in range(30)]
    for s in subs:
        r.insert(s)
    for i in range(7):
        r.match(f"s.{i}.x")
    gone = subs[::2]
    assert r.remove_many([*gone, gone[0], sub("s.1.*")]) == len(gone)
    for i in range(7):
        assert_agrees(r, subs[1::2], f"s.{i}.x")


def test_unhashable_connection_objects() -> None:
    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __eq__(self, other: object) -> bool:  # every instance "equal": identity must still rule
            return True

    r = Router()
    c1, c2 = Unhashable(), Unhashable()
    s1, s2 = sub("a", conn=c1), sub("a", conn=c2)
    r.insert(s1)
    r.insert(s2)
    assert r.remove_conn(c1) == [s1]
    assert r.match("a").plain == (s2,)


# --- the cache ----------------------------------------------------------------------------------


def test_cache_returns_shared_results_and_stays_exact() -> None:
    r = Router()
    a = sub("a.b")
    r.insert(a)
    first = r.match("a.b")
    assert r.match("a.b") is first  # served from the cache
    w = sub("a.*")
    r.insert(w)  # a wildcard insert updates the cached entry (copy-on-write)
    second = r.match("a.b")
    assert second is not first
    assert first.plain == (a,)  # the old snapshot is untouched
    assert set(second.plain) == {a, w}
    lit = sub("a.b", queue="q")
    r.insert(lit)  # a literal insert updates only its own subject
    assert r.match("a.b").queues == {"q": (lit,)}
    r.remove(w)
    assert set(r.match("a.b").plain) == {a}
    r.remove(a)
    r.remove(lit)
    assert r.match("a.b") is EMPTY_RESULT
    assert not r.has_interest("a.b")


def test_wildcard_change_touches_only_matching_cached_subjects() -> None:
    r = Router()
    keys = ["a", "a.b", "ab.b", "a.b.c", "x.b", "a.bc"]
    before = {k: r.match(k) for k in keys}
    w = sub("a.*")
    r.insert(w)
    after = {k: r.match(k) for k in keys}
    assert {k for k in keys if after[k] is not before[k]} == {"a.b", "a.bc"}
    assert after["a.b"].plain == (w,)
    g = sub("*.>")
    r.insert(g)
    assert {k for k in keys if g in r.match(k).plain} == {"a.b", "ab.b", "a.b.c", "x.b", "a.bc"}
    r.remove(w)  # drops exactly the entries w was in
    assert r.cache_len() == len(keys) - 2
    for k in keys:
        assert_agrees(r, [g], k)


@pytest.mark.parametrize("queue", [None, "q"])
def test_large_cached_results_are_dropped_not_copied(queue: str | None) -> None:
    """Joining a big cached result drops the entry (rebuilt on the next match), so a crowd
    subscribing to a busy subject costs linear, not quadratic, copying."""
    r = Router()
    subs: list[Subscription] = []
    for i in range(100):
        s = sub("e.>" if i % 2 else "e.x", queue=queue, sid=str(i), conn=Conn(str(i % 7)))
        r.insert(s)
        subs.append(s)
        if i % 3 == 0:
            r.match("e.x")
            r.match("e.y")
        assert_agrees(r, subs, "e.x")
        assert_agrees(r, subs, "e.y")
    r.match("e.x")
    assert r.cache_len() == 2
    r.insert(sub("e.*", queue=queue, sid="late"))  # both entries are big: dropped
    assert r.cache_len() == 0
    many = Router()  # many queue groups: the mapping itself is big
    groups = [sub("g", queue=f"q{i}") for i in range(40)]
    for s in groups:
        many.insert(s)
        many.match("g")
    assert_agrees(many, groups, "g")


def test_cached_empty_result_updated_on_insert() -> None:
    r = Router()
    assert r.match("x.y") is EMPTY_RESULT  # "no interest" is cached too
    assert r.cache_len() == 1
    s = sub(">")
    r.insert(s)
    assert r.match("x.y").plain == (s,)
    assert EMPTY_RESULT.plain == () and dict(EMPTY_RESULT.queues) == {}


def test_admit_on_second_caches_a_subject_the_second_time() -> None:
    """One-off subjects (replies to unique inboxes) cost a trie walk but stay out of the cache,
    so they do not push the busy subjects out."""
    r = Router(cache_size=4, admit_on_second=True)
    s = sub("t.*")
    r.insert(s)
    assert r.match("t.1").plain == (s,) and r.cache_len() == 0
    assert r.match("t.1").plain == (s,) and r.cache_len() == 1
    for i in range(100, 120):  # one-offs: never cached, the remembered names stay bounded
        assert r.match(f"t.{i}").plain == (s,)
        assert r.cache_len() == 1
    r.match("t.2")
    r.match("t.2")
    assert r.cache_len() == 2
    late = sub("t.2")
    r.insert(late)  # cached results follow changes as before
    assert r.match("t.2").plain == (s, late)


def test_cache_is_bounded() -> None:
    r = Router(cache_size=64)
    subs = [sub("t.*"), sub("t.5")]
    for s in subs:
        r.insert(s)
    for i in range(1000):
        r.match(f"t.{i}")
        assert r.cache_len() <= 64
    for i in range(0, 1000, 37):
        assert_agrees(r, subs, f"t.{i}")
    r0 = Router(cache_size=0)
    r0.insert(sub("t.*"))
    r0.match("t.1")
    assert r0.cache_len() == 0


# --- randomized agreement with the brute-force oracle -------------------------------------------

TOKENS = ["a", "b", "ab"]  # "ab" shares a prefix with "a": guards the cache prefilter
pattern_tokens = st.sampled_from([*TOKENS, "*"])
patterns = st.builds(
    lambda toks, tail: ".".join(toks + ([">"] if tail else [])),
    st.lists(pattern_tokens, min_size=1, max_size=4),
    st.booleans(),
) | st.just(">")
literals = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=5).map(".".join)
queues = st.none() | st.sampled_from(["q1", "q2"])


class RouterMachine(RuleBasedStateMachine):
    """Interleaved inserts, removals, disconnects and matches; a small cache to force sweeps."""

    subs = Bundle("subs")

    def __init__(self) -> None:
        super().__init__()
        self.router = Router(cache_size=8)
        self.uncached = Router(cache_size=0)
        self.second = Router(cache_size=8, admit_on_second=True)  # the broker's kind
        self.live: dict[int, Subscription] = {}
        self.conns = [Conn(str(i)) for i in range(3)]
        self.n = 0

    @rule(target=subs, pattern=patterns, queue=queues, c=st.integers(0, 2))
    def insert(self, pattern: str, queue: str | None, c: int) -> Subscription:
        self.n += 1
        s = sub(pattern, queue=queue, conn=self.conns[c], sid=str(self.n))
        self.router.insert(s)
        self.uncached.insert(s)
        self.second.insert(s)
        self.live[id(s)] = s
        return s

    @rule(s=consumes(subs))
    def remove(self, s: Subscription) -> None:
        present = id(s) in self.live
        assert self.router.remove(s) is present
        assert self.uncached.remove(s) is present
        assert self.second.remove(s) is present
        self.live.pop(id(s), None)

    @rule(c=st.integers(0, 2))
    def disconnect(self, c: int) -> None:
        conn = self.conns[c]
        gone = self.router.remove_conn(conn)
        assert set(map(id, gone)) == {k for k, s in self.live.items() if s.conn is conn}
        assert set(map(id, self.uncached.remove_conn(conn))) == set(map(id, gone))
        assert set(map(id, self.second.remove_conn(conn))) == set(map(id, gone))
        for s in gone:
            del self.live[id(s)]

    @rule(subject=literals)
    def match(self, subject: str) -> None:
        assert_agrees(self.router, self.live.values(), subject)
        assert_agrees(self.uncached, self.live.values(), subject)
        assert_agrees(self.second, self.live.values(), subject)

    @invariant()
    def counts(self) -> None:
        assert self.router.count() == len(self.live) == self.uncached.count() == self.second.count()
        assert self.router.cache_len() <= 8 and self.second.cache_len() <= 8


TestRouterMachine = RouterMachine.TestCase
TestRouterMachine.settings = settings(
    max_examples=150, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def random_pattern(rng: random.Random, toks: list[str]) -> str:
    n = rng.randint(1, 5)
    parts = [rng.choice(toks) if rng.random() > 0.25 else "*" for _ in range(n)]
    if rng.random() < 0.15:
        parts[-1] = ">"
    return ".".join(parts)


@pytest.mark.parametrize("seed", range(5))
def test_randomized_interleaving_against_oracle(seed: int) -> None:
    """Longer runs than the state machine: thousands of mixed operations, cache of 32."""
    rng = random.Random(seed)
    toks = ["a", "b", "c", "ab"]
    r = Router(cache_size=32)
    conns = [Conn(str(i)) for i in range(4)]
    live: list[Subscription] = []
    for step in range(3000):
        op = rng.random()
        if op < 0.35:
            q = rng.choice([None, None, "q1", "q2"])
            s = Subscription(random_pattern(rng, toks), str(step), rng.choice(conns), q)
            r.insert(s)
            live.append(s)
        elif op < 0.55 and live:
            s = live.pop(rng.randrange(len(live)))
            assert r.remove(s)
        elif op < 0.57:
            c = rng.choice(conns)
            gone = r.remove_conn(c)
            assert {id(s) for s in gone} == {id(s) for s in live if s.conn is c}
            live = [s for s in live if s.conn is not c]
        else:
            subject = ".".join(rng.choice(toks) for _ in range(rng.randint(1, 6)))
            assert_agrees(r, live, subject)
        assert r.count() == len(live)


# --- scale --------------------------------------------------------------------------------------


def test_ten_thousand_subscriptions() -> None:
    """10k subscriptions: a sample of matches agrees with the oracle, and everything comes out."""
    rng = random.Random(10_000)
    toks = [f"t{i}" for i in range(20)]
    r = Router()
    conns = [Conn(str(i)) for i in range(100)]
    subs = [Subscription(random_pattern(rng, toks), str(i), conns[i % 100]) for i in range(10_000)]
    for s in subs:
        r.insert(s)
    assert r.count() == 10_000
    for _ in range(100):
        subject = ".".join(rng.choice(toks) for _ in range(rng.randint(1, 5)))
        assert_agrees(r, subs, subject)
    for c in conns[:50]:
        r.remove_conn(c)
    rest = [s for s in subs if s.conn not in conns[:50]]
    assert r.count() == len(rest) == 5_000
    for _ in range(30):
        subject = ".".join(rng.choice(toks) for _ in range(rng.randint(1, 5)))
        assert_agrees(r, rest, subject)
    assert r.remove_many(rest) == 5_000
    assert r.count() == 0
    assert r._root.is_empty()
