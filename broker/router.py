"""The broker's routing table: subscriptions by subject, matched per published message.

A :class:`Router` holds the subscriptions of **one account**. Accounts are separate subject
spaces, so the server keeps one ``Router`` per account and never matches across them (imports
and exports are wired by the server, not here).

Structure, mirroring nats-server's ``sublist.go`` (and the historic Ruby ``sublist.rb``): a trie
with one level per subject token. Each level has a map of literal tokens, one ``*`` child and one
``>`` child; a node holds the plain subscriptions and the queue subscriptions (by queue name) whose
subject ends there. Matching a literal publish subject walks the literal child and, in parallel,
the ``*`` child at each level; a ``>`` child matches whenever at least one token remains, so
``a.>`` never matches ``a`` (and ``a.*`` does not either).

In front of the trie is a bounded cache, publish subject → :class:`Result`, kept exact on every
change the way ``sublist.go`` keeps its cache (``addToCache`` / ``removeFromCache``):

* insert: the cached results the new subscription matches get a copy with it added (a literal
  subscription can only match the cache entry of the same subject; a wildcard one is tested
  against the cached subjects with :func:`trustkit.subject.matches`, after a prefix and
  token-count prefilter). A result that is already large is dropped instead of copied, so a
  crowd subscribing to one busy subject does not copy it over and over;
* remove: the cached results the removed subscription matches are dropped and rebuilt by the
  next match;
* a bulk removal (:meth:`Router.remove_conn`) with many wildcard subjects empties the cache
  instead, like ``RemoveBatch``;
* above ``cache_size`` entries the older half is dropped (insertion order; a dropped subject
  costs one trie walk the next time it is published to);
* with ``admit_on_second=True`` (the broker's routers) a subject is cached the second time it is
  matched, not the first: one-off subjects (replies to unique inboxes) then cost their trie walk
  without pushing the busy subjects out of the cache.

Cached results are shared: :class:`Result` fields are tuples and the queue mapping must be
treated as read-only. A result stays valid (a snapshot) after the router changes.

The router is not thread-safe; the broker uses it from its event loop only. It does not
validate publish subjects — the caller does that once per message with
``trustkit.subject.validate(subject, wildcards=False)``; subscription subjects are validated on
insert.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import islice
from typing import Any

from trustkit.errors import BrokerError
from trustkit.subject import has_wildcards, matches, validate

__all__ = [
    "EMPTY_RESULT",
    "Chooser",
    "RandomChooser",
    "Result",
    "RoundRobinChooser",
    "Router",
    "Subscription",
    "pick_queue_members",
]

#: Default bound on cached publish subjects (nats-server's ``slCacheMax`` is 1024).
DEFAULT_CACHE_SIZE = 1024

# With more distinct wildcard subjects than this in one bulk removal, clearing the cache is
# cheaper than testing every cached subject against each of them (sublist.go always clears).
_BULK_SCAN_MAX = 4

# A cached result with this many members (plain, or in the queue group concerned) is dropped
# rather than copied when a subscription joins it.
_COPY_MAX = 32


class Subscription:
    """One subscription: ``SUB <subject> [queue] <sid>`` of one connection.

    Identity is the object itself (two SUBs with equal fields are two subscriptions). ``conn``
    is opaque to the router; it only groups subscriptions (by identity) for
    :meth:`Router.remove_conn`. Do not change ``subject``, ``queue`` or ``conn`` while the
    subscription is in a router: the router finds it again by them.
    """

    __slots__ = ("conn", "queue", "sid", "subject")

    def __init__(self, subject: str, sid: str, conn: Any, queue: str | None = None) -> None:
        self.subject = subject
        self.sid = sid
        self.conn = conn
        self.queue = queue

    def __repr__(self) -> str:
        q = f" queue={self.queue!r}" if self.queue is not None else ""
        return f"<Subscription {self.subject!r}{q} sid={self.sid!r}>"


class Result:
    """The subscriptions matching one publish subject (``SublistResult``: psubs, qsubs).

    ``plain`` are the subscriptions that each get the message; ``queues`` maps a queue name to
    its members, of which one gets it (:func:`pick_queue_members`). Members of one queue name are
    merged across subjects, as in nats-server. Read-only: results are shared by the cache.
    """

    __slots__ = ("plain", "queues")

    def __init__(
        self, plain: tuple[Subscription, ...], queues: Mapping[str, tuple[Subscription, ...]]
    ) -> None:
        self.plain = plain
        self.queues = queues

    def __bool__(self) -> bool:
        return bool(self.plain) or bool(self.queues)

    def __repr__(self) -> str:
        return f"<Result plain={len(self.plain)} queues={ {q: len(m) for q, m in self.queues.items()} }>"

    def _plus(self, sub: Subscription) -> Result | None:
        """A copy with ``sub`` added (copy-on-write: the old result may be held by a caller).

        None if the copy would be large: then the cache entry is dropped and rebuilt lazily,
        so N subscribers joining a busy subject cost O(N), not O(N²) copying.
        """
        if sub.queue is None:
            if len(self.plain) >= _COPY_MAX:
                return None
            return Result((*self.plain, sub), self.queues)
        members = self.queues.get(sub.queue, ())
        if len(members) >= _COPY_MAX or len(self.queues) >= _COPY_MAX:
            return None
        queues = dict(self.queues)
        queues[sub.queue] = (*members, sub)
        return Result(self.plain, queues)


#: The result for a subject nobody listens on (shared; never mutate).
EMPTY_RESULT = Result((), {})


class _Node:
    __slots__ = ("next", "psubs", "qsubs")

    def __init__(self) -> None:
        self.next: _Level | None = None
        # dicts used as insertion-ordered sets: deterministic result order, O(1) removal
        self.psubs: dict[Subscription, None] = {}
        self.qsubs: dict[str, dict[Subscription, None]] = {}


class _Level:
    __slots__ = ("fwc", "nodes", "pwc")

    def __init__(self) -> None:
        self.nodes: dict[str, _Node] = {}
        self.pwc: _Node | None = None  # '*'
        self.fwc: _Node | None = None  # '>'

    def is_empty(self) -> bool:
        return not self.nodes and self.pwc is None and self.fwc is None


def _collect(level: _Level | None, toks: list[str], i: int, out: list[_Node]) -> None:
    """Append to ``out`` every node whose subject matches ``toks[i:]`` below ``level``.

    Mirrors sublist.go ``matchLevel``: at each level the '>' node matches the rest, the '*'
    child is explored recursively for the next tokens, and the walk goes on down the literal.
    Each node is reached by at most one path, so no subscription is collected twice.
    """
    n = len(toks)
    node: _Node | None = None
    pwc: _Node | None = None
    while i < n:
        if level is None:
            return
        if level.fwc is not None:
            out.append(level.fwc)
        pwc = level.pwc
        if pwc is not None and pwc.next is not None and i + 1 < n:
            _collect(pwc.next, toks, i + 1, out)
        node = level.nodes.get(toks[i])
        level = node.next if node is not None else None
        i += 1
    # the last token: its literal node and the '*' node of the same level
    if node is not None and (node.psubs or node.qsubs):
        out.append(node)
    if pwc is not None and (pwc.psubs or pwc.qsubs):
        out.append(pwc)


def _any(level: _Level | None, toks: list[str], i: int) -> bool:
    """True if any subscription below ``level`` matches ``toks[i:]`` (sublist.go ``matchLevelForAny``)."""
    n = len(toks)
    node: _Node | None = None
    pwc: _Node | None = None
    while i < n:
        if level is None:
            return False
        if level.fwc is not None:  # never empty: empty nodes are pruned and '>' has no children
            return True
        pwc = level.pwc
        if pwc is not None and pwc.next is not None and i + 1 < n and _any(pwc.next, toks, i + 1):
            return True
        node = level.nodes.get(toks[i])
        level = node.next if node is not None else None
        i += 1
    if node is not None and (node.psubs or node.qsubs):
        return True
    return pwc is not None and bool(pwc.psubs or pwc.qsubs)


def _build(nodes: list[_Node]) -> Result:
    if not nodes:
        return EMPTY_RESULT
    plain: list[Subscription] = []
    queues: dict[str, list[Subscription]] = {}
    for node in nodes:
        if node.psubs:
            plain.extend(node.psubs)
        for q, members in node.qsubs.items():
            have = queues.get(q)
            if have is None:
                queues[q] = list(members)
            else:
                have.extend(members)
    return Result(tuple(plain), {q: tuple(m) for q, m in queues.items()})


def _cached_matches(cache: Mapping[str, Result], pattern: str) -> list[str]:
    """The cached publish subjects that the wildcard ``pattern`` matches.

    ``trustkit.subject.matches`` decides; two C-speed necessary conditions skip most keys first
    (a wildcard change would otherwise cost ~0.5 µs per cached subject): the key starts with the
    pattern's literal prefix (the tokens before its first wildcard), and, without a trailing
    ``>``, has the same number of tokens.
    """
    toks = pattern.split(".")
    lead: list[str] = []
    for t in toks:
        if t == "*" or t == ">":
            break
        lead.append(t)
    prefix = ".".join(lead) + "." if lead else ""
    if toks[-1] == ">":
        return [k for k in cache if k.startswith(prefix) and matches(pattern, k)]
    dots = len(toks) - 1
    return [k for k in cache if k.startswith(prefix) and k.count(".") == dots and matches(pattern, k)]


class Router:
    """Subscriptions of one account, matched against literal publish subjects.

    ``cache_size`` bounds the match cache (0 disables it).
    """

    __slots__ = (
        "_by_conn", "_cache", "_cache_size", "_count", "_root", "_seen", "cached", "inserts", "removes",
    )  # fmt: skip

    def __init__(self, *, cache_size: int = DEFAULT_CACHE_SIZE, admit_on_second: bool = False) -> None:
        if cache_size < 0:
            raise BrokerError("cache_size must be >= 0", code="router_config")
        self._root = _Level()
        self._count = 0
        #: subscriptions inserted and removed since the router was made (``/subsz`` num_inserts,
        #: num_removes; counted on SUB and UNSUB, never per message)
        self.inserts = 0
        self.removes = 0
        # id(conn) -> that connection's subscriptions (ordered set). id() rather than the object:
        # conn is opaque (maybe unhashable) and is kept alive by its subscriptions while listed.
        self._by_conn: dict[int, dict[Subscription, None]] = {}
        self._cache: dict[str, Result] = {}
        self._cache_size = cache_size
        #: ``cached(subject)``: the cached result for ``subject`` or None, at the cost of a dict
        #: lookup (for hot loops; :meth:`match` on None). Valid as long as the router lives.
        self.cached: Callable[[str], Result | None] = self._cache.get
        # subjects matched once and not cached yet (admit_on_second); emptied at cache_size
        self._seen: set[str] | None = set() if admit_on_second and cache_size else None

    # --- queries --------------------------------------------------------------------------------

    def match(self, subject: str) -> Result:
        """The subscriptions matching the literal publish ``subject`` (a shared, read-only result).

        ``subject`` must be a valid literal subject (the caller validates it); a subject with an
        empty token matches nothing.
        """
        r = self._cache.get(subject)
        if r is not None:
            return r
        toks = subject.split(".")
        if "" in toks:
            return EMPTY_RESULT
        out: list[_Node] = []
        _collect(self._root, toks, 0, out)
        r = _build(out)
        seen = self._seen
        if seen is not None and subject not in seen:
            if len(seen) >= self._cache_size:
                seen.clear()
            seen.add(subject)
        elif self._cache_size:
            if seen is not None:
                seen.discard(subject)
            cache = self._cache
            cache[subject] = r
            if len(cache) > self._cache_size:
                self._shrink_cache()
        return r

    def has_interest(self, subject: str) -> bool:
        """True if any subscription matches the literal ``subject`` (stops at the first one)."""
        r = self._cache.get(subject)
        if r is not None:
            return bool(r)
        toks = subject.split(".")
        if "" in toks:
            return False
        return _any(self._root, toks, 0)

    def count(self) -> int:
        """Number of subscriptions."""
        return self._count

    def cache_len(self) -> int:
        """Number of cached publish subjects."""
        return len(self._cache)

    def cached_results(self) -> Iterable[Result]:
        """The cached results (read-only; for ``/subsz``'s fan-out figures)."""
        return self._cache.values()

    def subscriptions(self, conn: object) -> tuple[Subscription, ...]:
        """The subscriptions of ``conn`` (by identity), in insertion order."""
        subs = self._by_conn.get(id(conn))
        return tuple(subs) if subs else ()

    def __contains__(self, sub: object) -> bool:
        if not isinstance(sub, Subscription):
            return False
        subs = self._by_conn.get(id(sub.conn))
        return subs is not None and sub in subs

    def __len__(self) -> int:
        return self._count

    # --- changes --------------------------------------------------------------------------------

    def insert(self, sub: Subscription) -> None:
        """Add ``sub``.

        Raises :class:`~trustkit.errors.SubjectError` for an invalid subject and
        :class:`~trustkit.errors.BrokerError` (``sub_duplicate``, ``queue_invalid``) if ``sub`` is
        already in the router or its queue name is empty.
        """
        subject = sub.subject
        validate(subject)
        if sub.queue == "":
            raise BrokerError("queue group name cannot be empty", code="queue_invalid")
        key = id(sub.conn)
        mine = self._by_conn.get(key)
        if mine is not None and sub in mine:
            raise BrokerError(f"subscription {sub.sid!r} is already routed", code="sub_duplicate")

        toks = subject.split(".")
        last = len(toks) - 1
        level = self._root
        node: _Node | None = None
        for i, tok in enumerate(toks):
            if tok == "*":
                node = level.pwc
                if node is None:
                    node = level.pwc = _Node()
            elif tok == ">":
                node = level.fwc
                if node is None:
                    node = level.fwc = _Node()
            else:
                node = level.nodes.get(tok)
                if node is None:
                    node = level.nodes[tok] = _Node()
            if i < last:
                nxt = node.next
                if nxt is None:
                    nxt = node.next = _Level()
                level = nxt
        assert node is not None  # a valid subject has at least one token
        if sub.queue is None:
            node.psubs[sub] = None
        else:
            node.qsubs.setdefault(sub.queue, {})[sub] = None
        if mine is None:
            mine = self._by_conn[key] = {}
        mine[sub] = None
        self._count += 1
        self.inserts += 1
        self._cache_add(sub)

    def remove(self, sub: Subscription) -> bool:
        """Remove ``sub``; False if it was not in the router (idempotent for UNSUB races)."""
        key = id(sub.conn)
        mine = self._by_conn.get(key)
        if mine is None or sub not in mine:
            return False
        del mine[sub]
        if not mine:
            del self._by_conn[key]
        self._unlink(sub)
        self._cache_drop((sub.subject,))
        return True

    def remove_conn(self, conn: object) -> list[Subscription]:
        """Remove every subscription of ``conn`` (a disconnect) and return them.

        Cost is proportional to that connection's subscriptions, not to the router's.
        """
        mine = self._by_conn.pop(id(conn), None)
        if not mine:
            return []
        for sub in mine:
            self._unlink(sub)
        self._cache_drop({sub.subject for sub in mine})
        return list(mine)

    def remove_many(self, subs: Iterable[Subscription]) -> int:
        """Remove several subscriptions with one cache update; the number actually removed."""
        removed: set[str] = set()
        n = 0
        for sub in subs:
            key = id(sub.conn)
            mine = self._by_conn.get(key)
            if mine is None or sub not in mine:
                continue
            del mine[sub]
            if not mine:
                del self._by_conn[key]
            self._unlink(sub)
            removed.add(sub.subject)
            n += 1
        if removed:
            self._cache_drop(removed)
        return n

    # --- internals ------------------------------------------------------------------------------

    def _unlink(self, sub: Subscription) -> None:
        """Take ``sub`` (known to be present) out of the trie and prune emptied nodes."""
        path: list[tuple[_Level, str, _Node]] = []
        level: _Level | None = self._root
        node: _Node | None = None
        for tok in sub.subject.split("."):
            if level is None:
                break
            if tok == "*":
                node = level.pwc
            elif tok == ">":
                node = level.fwc
            else:
                node = level.nodes.get(tok)
            if node is None:
                break
            path.append((level, tok, node))
            level = node.next
        if node is None or len(path) != sub.subject.count(".") + 1:
            raise BrokerError(f"routing table out of step for {sub!r}", code="router_corrupt")
        if sub.queue is None:
            del node.psubs[sub]
        else:
            members = node.qsubs[sub.queue]
            del members[sub]
            if not members:
                del node.qsubs[sub.queue]
        self._count -= 1
        self.removes += 1
        # prune from the leaf up while nodes are empty (sublist.go pruneNode)
        for i in range(len(path) - 1, -1, -1):
            level, tok, node = path[i]
            if node.psubs or node.qsubs or node.next is not None:
                break
            if tok == "*":
                level.pwc = None
            elif tok == ">":
                level.fwc = None
            else:
                del level.nodes[tok]
            if i > 0 and level.is_empty():
                path[i - 1][2].next = None

    def _cache_add(self, sub: Subscription) -> None:
        """Add ``sub`` to the cached results it matches (sublist.go ``addToCache``)."""
        cache = self._cache
        if not cache:
            return
        subject = sub.subject
        if not has_wildcards(subject):
            r = cache.get(subject)
            if r is not None:
                nr = r._plus(sub)
                if nr is None:
                    del cache[subject]
                else:
                    cache[subject] = nr
            return
        for key in _cached_matches(cache, subject):
            nr = cache[key]._plus(sub)
            if nr is None:
                del cache[key]
            else:
                cache[key] = nr

    def _cache_drop(self, subjects: Iterable[str]) -> None:
        """Drop the cached results that subscriptions on ``subjects`` may be in (``removeFromCache``)."""
        cache = self._cache
        if not cache:
            return
        wild: list[str] = []
        for subject in subjects:
            if has_wildcards(subject):
                wild.append(subject)
            else:
                cache.pop(subject, None)
        if not wild:
            return
        if len(wild) > _BULK_SCAN_MAX:
            cache.clear()
            return
        for w in wild:
            for key in _cached_matches(cache, w):
                del cache[key]

    def _shrink_cache(self) -> None:
        # Keep the newer half, in place: the dict stays the same object (see ``cached``); the
        # dict compacts itself when it next grows. Amortized O(1) per cached subject.
        cache = self._cache
        for key in list(islice(cache, len(cache) - self._cache_size // 2)):
            del cache[key]


# --- queue groups ---------------------------------------------------------------------------------

#: Picks the member of queue group ``queue`` that gets a message.
Chooser = Callable[[str, Sequence[Subscription]], Subscription]


class RandomChooser:
    """Uniformly random member (what nats-server does for local queue subscribers).

    Pass a seeded ``random.Random`` for reproducible tests.
    """

    __slots__ = ("_choice",)

    def __init__(self, rng: random.Random | None = None) -> None:
        # load spreading, not security: a non-cryptographic generator is right here
        self._choice = (rng if rng is not None else random.Random()).choice  # noqa: S311

    def __call__(self, queue: str, members: Sequence[Subscription]) -> Subscription:
        return self._choice(members)


class RoundRobinChooser:
    """Members in turn, one counter per queue name.

    Counters are forgotten (rotation restarts) once more than ``max_queues`` names were seen, so
    churning queue names cannot grow memory without bound.
    """

    __slots__ = ("_max", "_next")

    def __init__(self, max_queues: int = 4096) -> None:
        self._next: dict[str, int] = {}
        self._max = max_queues

    def __call__(self, queue: str, members: Sequence[Subscription]) -> Subscription:
        i = self._next.get(queue, 0)
        n = len(members)
        if i >= n:
            i %= n
        if queue not in self._next and len(self._next) >= self._max:
            self._next.clear()
        self._next[queue] = i + 1
        return members[i]


def pick_queue_members(result: Result, choose: Chooser) -> list[Subscription]:
    """One member of each queue group in ``result``, chosen by ``choose``."""
    return [choose(q, members) for q, members in result.queues.items()]
