"""Sharing between accounts in trustkit-broker: stream and service imports, exports, activations,
and subject mappings, with nats-server's semantics (server/accounts.go, client.go,
subject_transform.go, sublist.go).

The one home of this logic. The server calls it at a few points: when an account is loaded or its
JWT changes (:meth:`Sharing.load`, :meth:`Sharing.account_updated`), when a client subscribes or
unsubscribes or disconnects (shadow subscriptions for stream imports, clean-up of pending
responses), when a message reaches one of the subscriptions made here (:meth:`Sharing.deliver`),
and on every publish of an account with mappings (``Account.mapper``).

How it routes, as nats-server does:

* **Stream imports** use *shadow subscriptions*. When a client of the importing account
  subscribes to a subject that overlaps an import's local subject, a copy of its subscription,
  rewritten to the exporter's subject, is put into the exporter's routing table. A message
  published in the exporter reaches it like any subscriber, and is delivered with the subject
  rewritten back (the import's transform). Queue groups carry over. Stream imports are not
  transitive, and a message that came in through a service import is not re-exported.
* **Service imports** are subscriptions of the importing account on the import's local subject.
  A request there is published in the exporter on the export's subject, with the reply rewritten
  to ``_R_.<account prefix>.<random>``. A response published there is carried back to the
  original reply in the requesting account. Singleton exports take one response, Stream and
  Chunked take many, until an empty message or until the response threshold passes without
  one. The request gets nats-server's ``Nats-Request-Info`` header (``acc``). The
  responder needs publish permission for the rewritten reply, or ``allow_responses``, exactly
  as on nats-server.
* **Authorization** of an import is checked when the importing account is loaded and again when
  either side's JWT changes: the subject must be inside an export of the same kind; a public
  export admits everybody; an account token position admits the account whose key is at that
  place; a private export needs an activation token (issued by the exporter or one of its signing
  keys with ``issuer_account``, for this account, of this kind, covering the subject, in its
  validity window, not revoked by the export, ``*`` included). An activation that expires stops
  the import at its expiry. Refused imports are left out, as nats-server leaves them out.
* **Mappings** rewrite a client's publish subject before permissions are checked. Weights pick a
  destination per message; what the weights leave under 100% stays on the original subject
  (unless the source itself is listed: then that share is dropped). Cluster-scoped destinations
  never apply (the broker is not in a cluster). Every transform function of nats-server is
  supported. A mapping nats-server refuses is left out, as nats-server leaves it out, and logged.

* **Service latency** (an export's ``latency``, accounts.go ``TrackServiceExportWithSampling``,
  ``shouldSample``, ``sendTrackingLatency``): on Singleton exports only. A request through a
  service import is sampled by percentage or by a sampled trace header; its reply gets the
  tracked suffix (``.<server hash>.T``), and its first response publishes a
  ``io.nats.server.metric.v1.service_latency`` event on the results subject in the exporter
  (requester details only with the import's ``share``; the responder always in detail). An
  unanswered sampled request reports 400, 408, 503 or 504. Imports of exports without
  ``latency`` only test ``ServiceImport.track``.

A request carries ``Nats-Request-Info`` (the requester's account and RTT; who it is with the
import's ``share``). A client's RTT is nats-server's estimate at CONNECT (``Conn.rtt``); the
broker does not refine it with PING/PONG as nats-server does.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from broker.router import Subscription
from trustkit.errors import BrokerError, TokenError, TrustkitError
from trustkit.jwt.account import AccountClaims, is_revoked
from trustkit.jwt.account import _contained_in as contained_in  # Go Subject.IsContainedIn
from trustkit.jwt.activation import ActivationClaims
from trustkit.jwt.decoder import decode
from trustkit.jwt.types import SERVICE, STREAM, Export, Import, ServiceLatency, WeightedMapping

if TYPE_CHECKING:
    from broker.server import Account, Broker, Conn, ConnSub

__all__ = [
    "ImportSub",
    "Mappings",
    "ResponseSub",
    "ShadowSub",
    "Sharing",
    "SharingError",
    "Transform",
    "build_mappings",
    "subjects_collide",
]

SINGLETON, STREAMED, CHUNKED = "Singleton", "Stream", "Chunked"
#: nats-server DEFAULT_SERVICE_EXPORT_RESPONSE_THRESHOLD
DEFAULT_RESPONSE_THRESHOLD = 120.0
#: nats-server MaxAccountCycleSearchDepth
MAX_CYCLE_SEARCH_DEPTH = 1024
#: Service imports chained through more accounts than this are dropped (a guard; nats-server stops
#: a chain when an export repeats, which the broker does too).
MAX_CHAIN = 64
REQUEST_INFO = b"Nats-Request-Info"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INT32_MAX = 2**31 - 1
_MAPPING_CACHE = 1024

# one generator for load spreading and reply names, as nats-server's fastrand (not a secret)
_rng = random.Random()  # noqa: S311


class SharingError(BrokerError):
    """An import, export or mapping nats-server would refuse (the message is nats-server's)."""

    code = "sharing"


# --- Go's subject helpers (server/sublist.go), exact ----------------------------------------------

_GO_SPACE = "\t\n\f\r "


def _valid_subject(subject: str) -> bool:
    """Go ``IsValidSubject`` (wildcards allowed, ``>`` last, no white space)."""
    if not subject:
        return False
    fwc = False
    for t in subject.split("."):
        if not t or fwc:
            return False
        if len(t) > 1:
            if any(c in _GO_SPACE for c in t):
                return False
            continue
        if t == ">":
            fwc = True
        elif t in _GO_SPACE:
            return False
    return True


def _has_wildcard(subject: str) -> bool:
    """Go ``subjectHasWildcard``: a token that is exactly ``*`` or ``>``."""
    return any(t == "*" or t == ">" for t in subject.split("."))


def _subset(tokens: list[str], test: list[str]) -> bool:
    """Go ``isSubsetMatchTokenized``: is every subject ``tokens`` matches also matched by ``test``."""
    n = len(tokens)
    for i, t2 in enumerate(test):
        if i >= n:
            return False
        if not t2:
            return False
        if t2 == ">":
            return True
        t1 = tokens[i]
        if not t1 or t1 == ">":
            return False
        if t1 == "*":
            if t2 != "*":
                return False
            continue
        if t2[0] != "*" and t1 != t2:
            return False
    return n == len(test)


def _subset_subject(subject: str, test: str) -> bool:
    return _subset(subject.split("."), test.split("."))


def _collide(subj1: str, subj2: str) -> bool:
    """Go ``SubjectsCollide``: could one literal subject match both."""
    if subj1 == subj2:
        return True
    t1, t2 = subj1.split("."), subj2.split(".")
    pwc1, fwc1 = "*" in t1, ">" in t1
    pwc2, fwc2 = "*" in t2, ">" in t2
    l1, l2 = not (pwc1 or fwc1), not (pwc2 or fwc2)
    if l1 and l2:
        return False
    if l1 and not l2:
        return _subset(t1, t2)
    if l2 and not l1:
        return _subset(t2, t1)
    if not fwc1 and not fwc2 and len(t1) != len(t2):
        return False
    if len(t1) != len(t2) and ((len(t1) < len(t2) and not fwc1) or (len(t2) < len(t1) and not fwc2)):
        return False
    for a, b in zip(t1, t2, strict=False):
        if not a or not b:
            return False
        if a[0] not in "*>" and b[0] not in "*>" and a != b:
            return False
    return True


#: the broker's name for Go ``SubjectsCollide`` (its delivery-time subscribe deny filter uses it)
subjects_collide = _collide


# --- subject transforms (server/subject_transform.go) ---------------------------------------------

(NO_TRANSFORM, BAD_TRANSFORM, PARTITION, WILDCARD, SPLIT_FROM_LEFT, SPLIT_FROM_RIGHT, SLICE_FROM_LEFT,
 SLICE_FROM_RIGHT, SPLIT, LEFT, RIGHT, RANDOM) = range(12)  # fmt: skip

_S = "[\t\n\f\r ]*"  # Go RE2 \s*


def _fn(name: str) -> re.Pattern[str]:
    """nats-server's function regex: ``{{\\s*[wW]ildcard\\s*\\((.*)\\)\\s*}}`` (first letter and
    camel-case letters in either case)."""
    pat = "".join(f"[{c.lower()}{c.upper()}]" if i == 0 or c.isupper() else c for i, c in enumerate(name))
    return re.compile(r"\{\{" + _S + pat + _S + r"\((.*)\)" + _S + r"\}\}")


# the mustache functions in the order nats-server tries them (indexPlaceHolders)
_WILDCARD_RE = _fn("wildcard")
_PARTITION_RE = _fn("partition")
_SPLIT_FROM_LEFT_RE = _fn("splitFromLeft")
_SPLIT_FROM_RIGHT_RE = _fn("splitFromRight")
_SLICE_FROM_LEFT_RE = _fn("sliceFromLeft")
_SLICE_FROM_RIGHT_RE = _fn("sliceFromRight")
_RIGHT_RE = _fn("right")
_LEFT_RE = _fn("left")
_SPLIT_RE = _fn("split")
_RANDOM_RE = _fn("random")
_COMMA_RE = re.compile(",[\t\n\f\r ]*")
_ATOI_RE = re.compile(r"[+-]?[0-9]+")

_ERR = "invalid mapping destination"
_ERR_SUBJECT = f"{_ERR}: invalid transform"
_ERR_NOT_ALL_WILDCARDS = f"{_ERR}: not using all of the token wildcard(s)"
_ERR_UNKNOWN_FUNCTION = f"{_ERR}: unknown function"
_ERR_INDEX = f"{_ERR}: wildcard index out of range"
_ERR_NOT_ENOUGH = f"{_ERR}: not enough arguments passed to the function"
_ERR_ARG = f"{_ERR}: function argument is invalid or in the wrong format"
_ERR_TOO_MANY = f"{_ERR}: too many arguments passed to the function"
_ERR_IMPORT = f"{_ERR}: the only mapping function allowed for import transforms is {{{{Wildcard()}}}}"


def _dest_err(err: str, token: str) -> SharingError:
    """Go ``mappingDestinationErr``: ``<err> in <token>``."""
    return SharingError(f"{err} in {token}" if token else err)


def _atoi(text: str) -> int | None:
    """Go ``strconv.Atoi``: an optional sign and ASCII digits, nothing else."""
    return int(text) if _ATOI_RE.fullmatch(text) else None


def _args(pattern: re.Pattern[str], token: str) -> list[str] | None:
    """Go ``getMappingFunctionArgs``: the function's arguments split at commas, or None."""
    m = pattern.search(token)
    return _COMMA_RE.split(m.group(1)) if m else None


def _index_int_args(token: str, args: list[str], kind: int) -> tuple[int, list[int], int, str]:
    if len(args) < 2:
        raise _dest_err(_ERR_NOT_ENOUGH, token)
    if len(args) > 2:
        raise _dest_err(_ERR_TOO_MANY, token)
    i = _atoi(args[0].strip(" "))
    n = _atoi(args[1].strip(" "))
    if i is None or n is None or not -(2**31) <= n <= _INT32_MAX:
        raise _dest_err(_ERR_ARG, token)
    return kind, [i], n, ""


def _place_holder(token: str) -> tuple[int, list[int], int, str]:
    """Go ``indexPlaceHolders``: (function, source wildcard indexes, int argument, string argument)."""
    n = len(token)
    if n > 1:
        if token[0] == "$":  # the old $1 form; "$x" is a literal token
            tp = _atoi(token[1:])
            return (NO_TRANSFORM, [-1], -1, "") if tp is None else (WILDCARD, [tp], -1, "")
        if n > 4 and token.startswith("{{") and token.endswith("}}"):
            args = _args(_WILDCARD_RE, token)
            if args is not None:
                if len(args) == 1 and args[0] == "":
                    raise _dest_err(_ERR_NOT_ENOUGH, token)
                if len(args) != 1:
                    raise _dest_err(_ERR_TOO_MANY, token)
                idx = _atoi(args[0].strip(" "))
                if idx is None:
                    raise _dest_err(_ERR_ARG, token)
                return WILDCARD, [idx], -1, ""
            args = _args(_PARTITION_RE, token)
            if args is not None:
                count = _atoi(args[0].strip(" "))
                if count is None or count > _INT32_MAX:
                    raise _dest_err(_ERR_ARG, token)
                positions: list[int] = []
                for a in args[1:]:
                    p = _atoi(a.strip(" "))
                    if p is None:
                        raise _dest_err(_ERR_ARG, token)
                    positions.append(p)
                return PARTITION, positions, count, ""
            for pattern, kind in (
                (_SPLIT_FROM_LEFT_RE, SPLIT_FROM_LEFT),
                (_SPLIT_FROM_RIGHT_RE, SPLIT_FROM_RIGHT),
                (_SLICE_FROM_LEFT_RE, SLICE_FROM_LEFT),
                (_SLICE_FROM_RIGHT_RE, SLICE_FROM_RIGHT),
                (_RIGHT_RE, RIGHT),
                (_LEFT_RE, LEFT),
            ):
                args = _args(pattern, token)
                if args is not None:
                    return _index_int_args(token, args, kind)
            args = _args(_SPLIT_RE, token)
            if args is not None:
                if len(args) < 2:
                    raise _dest_err(_ERR_NOT_ENOUGH, token)
                if len(args) > 2:
                    raise _dest_err(_ERR_TOO_MANY, token)
                idx = _atoi(args[0].strip(" "))
                if idx is None or " " in args[1] or "." in args[1]:
                    raise _dest_err(_ERR_ARG, token)
                return SPLIT, [idx], -1, args[1]
            args = _args(_RANDOM_RE, token)
            if args is not None:
                if len(args) != 1:
                    raise _dest_err(_ERR_NOT_ENOUGH, token)
                count = _atoi(args[0].strip(" "))
                if count is None or count > _INT32_MAX:
                    raise _dest_err(_ERR_ARG, token)
                return RANDOM, [], count, ""
            raise _dest_err(_ERR_UNKNOWN_FUNCTION, token)
    return NO_TRANSFORM, [-1], -1, ""


def transform_tokenize(subject: str) -> str:
    """Go ``transformTokenize``: each ``*`` becomes ``$1``, ``$2``… (``foo.*.*`` → ``foo.$1.$2``)."""
    out: list[str] = []
    i = 1
    for t in subject.split("."):
        if t == "*":
            out.append(f"${i}")
            i += 1
        else:
            out.append(t)
    return ".".join(out)


def transform_untokenize(subject: str) -> tuple[str, list[str]]:
    """Go ``transformUntokenize``: placeholders (``$N``, ``{{wildcard(N)}}``) become ``*``."""
    phs: list[str] = []
    out: list[str] = []
    for t in subject.split("."):
        args = _args(_WILDCARD_RE, t)
        if (len(t) > 1 and t[0] == "$" and "1" <= t[1] <= "9") or (
            args is not None and len(args) == 1 and args[0] != ""
        ):
            phs.append(t)
            out.append("*")
        else:
            out.append(t)
    return ".".join(out), phs


def _subject_info(subject: str) -> tuple[bool, list[str], int, bool]:
    """Go ``subjectInfo``: (valid, tokens, number of ``*``, has ``>``)."""
    if not subject:
        return False, [], 0, False
    pwcs = 0
    fwc = False
    toks = subject.split(".")
    for t in toks:
        if not t or fwc:
            return False, [], 0, False
        if t == ">":
            fwc = True
        elif t == "*":
            pwcs += 1
    return True, toks, pwcs, fwc


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def _b(token: str) -> bytes:
    # Go slices subjects by byte; the broker's subjects are UTF-8 decoded with surrogateescape
    return token.encode("utf-8", "surrogateescape")


def _s(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


class Transform:
    """A subject transform (Go ``subjectTransform``): ``src`` pattern → ``dest`` with placeholders.

    Build one with :meth:`create`; ``apply`` takes a subject the source matches.
    """

    __slots__ = ("dest", "dtoks", "indexes", "ints", "kinds", "src", "stoks", "strs")

    def __init__(self, src: str, dest: str, dtoks: list[str], stoks: list[str]) -> None:
        self.src = src
        self.dest = dest
        self.dtoks = dtoks
        self.stoks = stoks
        self.kinds: list[int] = []
        self.indexes: list[list[int]] = []
        self.ints: list[int] = []
        self.strs: list[str] = []

    def __repr__(self) -> str:
        return f"<Transform {self.src!r} -> {self.dest!r}>"

    @classmethod
    def create(cls, src: str, dest: str, *, strict: bool = False) -> Transform | None:
        """Go ``NewSubjectTransformWithStrict``; None for an empty ``dest``. ``strict`` (imports)
        allows only wildcard placeholders and requires every ``*`` of ``src`` to be used.
        Raises :class:`SharingError` with nats-server's message."""
        if dest == "":
            return None
        if src == "":
            src = ">"
        sv, stoks, npwcs, hasfwc = _subject_info(src)
        dv, dtoks, dnpwcs, dhasfwc = _subject_info(dest)
        if not sv or not dv or dnpwcs > 0 or hasfwc != dhasfwc:
            raise SharingError("invalid subject")
        tr = cls(src, dest, dtoks, stoks)
        if npwcs > 0 or hasfwc:
            sti: dict[int, int] = {}
            for i, tok in enumerate(stoks):
                if tok == "*":
                    sti[len(sti) + 1] = i
            nphs = 0
            for tok in dtoks:
                kind, idxs, n, s = _place_holder(tok)
                if strict and kind not in (NO_TRANSFORM, WILDCARD):
                    raise _dest_err(_ERR_IMPORT, tok)
                if kind == NO_TRANSFORM:
                    tr._add(NO_TRANSFORM, [-1], -1, "")
                elif kind == RANDOM:
                    tr._add(RANDOM, [], n, "")
                else:
                    nphs += len(idxs)
                    stis = []
                    for wi in idxs:
                        if wi > npwcs:
                            raise _dest_err(_ERR_INDEX, f"{tok}: [{wi}]")
                        stis.append(sti.get(wi, 0))  # Go reads a missing map key as 0
                    tr._add(kind, stis, n, s)
            if strict and nphs < npwcs:
                raise _dest_err(_ERR_NOT_ALL_WILDCARDS, dest)
        else:
            for tok in dtoks:
                kind, _, n, _s_arg = _place_holder(tok)
                if kind == NO_TRANSFORM:
                    tr._add(NO_TRANSFORM, [-1], -1, "")
                elif kind in (RANDOM, PARTITION):
                    tr._add(kind, [], n, "")
                else:
                    raise _dest_err(_ERR_INDEX, tok)
        return tr

    def _add(self, kind: int, idxs: list[int], n: int, s: str) -> None:
        self.kinds.append(kind)
        self.indexes.append(idxs)
        self.ints.append(n)
        self.strs.append(s)

    def apply(self, subject: str) -> str:
        """Go ``TransformSubject``."""
        return self.apply_tokens(subject.split("."))

    def apply_tokens(self, tokens: list[str]) -> str:
        """Go ``TransformTokenizedSubject``."""
        kinds = self.kinds
        if not kinds:
            return self.dest
        out: list[str] = []
        last = len(kinds) - 1
        for i, kind in enumerate(kinds):
            if kind == NO_TRANSFORM:
                if self.dtoks[i] == ">":
                    break
                out.append(self.dtoks[i])
            elif kind == WILDCARD:
                idx = self.indexes[i]
                if idx and 0 <= idx[0] < len(tokens):
                    out.append(tokens[idx[0]])
            elif kind == PARTITION:
                if self.indexes[i]:
                    key = b"".join(_b(tokens[j]) for j in self.indexes[i])
                else:
                    key = _b(".".join(tokens))
                buckets = self.ints[i] % 2**32  # Go: uint32(numBuckets)
                out.append("0" if buckets == 0 else str(_fnv32a(key) % buckets))
            elif kind == RANDOM:
                ceiling = self.ints[i]
                out.append("0" if ceiling == 0 else str(_rng.randrange(2**31) % abs(ceiling)))
            else:
                out.append(self._function(kind, _b(tokens[self.indexes[i][0]]), self.ints[i], self.strs[i]))
            if i < last:
                out.append(".")
        if self.dtoks[-1] == ">":
            out.append(".".join(tokens[len(self.stoks) - 1 :]))
        return "".join(out)

    @staticmethod
    def _function(kind: int, tok: bytes, n: int, delim: str) -> str:
        size = len(tok)
        if kind == SPLIT_FROM_LEFT:
            return _s(tok[:n] + b"." + tok[n:]) if 0 < n < size else _s(tok)
        if kind == SPLIT_FROM_RIGHT:
            return _s(tok[: size - n] + b"." + tok[size - n :]) if 0 < n < size else _s(tok)
        if kind == SLICE_FROM_LEFT:
            if not 0 < n < size:
                return _s(tok)
            parts: list[bytes] = []
            i = 0
            while i + n <= size:
                parts.append(tok[i : i + n])
                if i + n != size and i + n + n > size:
                    parts.append(tok[i + n :])
                    break
                i += n
            return _s(b".".join(parts))
        if kind == SLICE_FROM_RIGHT:
            if not 0 < n < size:
                return _s(tok)
            rem = size % n
            parts = [tok[:rem]] if rem else []
            parts += [tok[i : i + n] for i in range(rem, size - n + 1, n)]
            return _s(b".".join(parts))
        if kind == LEFT:
            return _s(tok[:n]) if 0 < n < size else _s(tok)
        if kind == RIGHT:
            return _s(tok[size - n :]) if 0 < n < size else _s(tok)
        # SPLIT: Go strings.Split, dropping empty parts and the dots around them
        text = _s(tok)
        pieces = text.split(delim) if delim else list(text)
        out: list[str] = []
        for j, piece in enumerate(pieces):
            if piece:
                out.append(piece)
            if j < len(pieces) - 1 and pieces[j + 1] and not (j == 0 and not piece):
                out.append(".")
        return "".join(out)

    def reverse(self) -> Transform | None:
        """Go ``reverse``: the transform back (imports are reversible); None if there is none."""
        try:
            if not self.indexes:
                return Transform.create(self.dest, self.src, strict=True)
            nsrc, phs = transform_untokenize(self.dest)
            nda: list[str] = []
            for tok in self.stoks:
                if tok == "*":
                    if not phs:
                        return None
                    nda.append(phs.pop(0))
                else:
                    nda.append(tok)
            return Transform.create(nsrc, ".".join(nda), strict=True)
        except SharingError:
            return None


def validate_mapping(src: str, dest: str) -> None:
    """Go ``ValidateMapping``: raises :class:`SharingError` for a destination nats-server refuses
    (a function it does not know, an empty token, a token after ``>``, white space, or a
    destination :meth:`Transform.create` refuses)."""
    if dest == "":
        return
    fwc = False
    for t in dest.split("."):
        n = len(t)
        if n == 0 or fwc:
            raise _dest_err(_ERR_SUBJECT, t)
        if n > 4 and t.startswith("{{") and t.endswith("}}"):
            if not any(
                p.search(t)
                for p in (
                    _PARTITION_RE,
                    _WILDCARD_RE,
                    _SPLIT_FROM_LEFT_RE,
                    _SPLIT_FROM_RIGHT_RE,
                    _SLICE_FROM_LEFT_RE,
                    _SLICE_FROM_RIGHT_RE,
                    _SPLIT_RE,
                    _LEFT_RE,  # absent from the mirrored source's list; nats-server 2.15.1 maps them
                    _RIGHT_RE,
                    _RANDOM_RE,
                )
            ):
                raise _dest_err(_ERR_UNKNOWN_FUNCTION, t)
            continue
        if t == ">":
            fwc = True
        elif any(c in _GO_SPACE for c in t):
            raise SharingError(_ERR_SUBJECT)
    Transform.create(src, dest)


# --- mappings (Account.AddWeightedMappings / selectMappedSubject) ----------------------------------


class _Mapping:
    __slots__ = ("dests", "src", "src_toks", "wc")

    def __init__(self, src: str, dests: list[tuple[Transform, int]]) -> None:
        self.src = src
        self.src_toks = src.split(".")
        self.wc = _has_wildcard(src)
        self.dests = dests  # (transform, cumulative weight), by weight


def _mapping(src: str, entries: list[WeightedMapping]) -> _Mapping:
    """Go ``AddWeightedMappings`` for one source; raises :class:`SharingError` as it refuses."""
    if not _valid_subject(src):
        raise SharingError("invalid subject")
    seen: set[str] = set()
    totals: dict[str, int] = {}
    local: list[tuple[Transform, int]] = []
    for wm in entries:
        if wm.subject in seen:
            raise SharingError(f"duplicate entry for {wm.subject!r}")
        seen.add(wm.subject)
        weight = wm.effective_weight()
        if weight > 100:
            raise SharingError("individual weights need to be <= 100")
        totals[wm.cluster] = totals.get(wm.cluster, 0) + weight
        if totals[wm.cluster] > 100:
            raise SharingError("total weight needs to be <= 100")
        validate_mapping(src, wm.subject)
        tr = Transform.create(src, wm.subject)
        if tr is None:
            raise SharingError("invalid subject")
        if wm.cluster == "":
            local.append((tr, weight))
        # cluster-scoped destinations are built (and refused) as nats-server does, but a broker is
        # in no cluster, so they never apply: nats-server falls back to the unscoped ones
    for cluster in sorted({wm.cluster for wm in entries if wm.cluster}):
        scoped = [(_must(src, wm.subject), wm.effective_weight()) for wm in entries if wm.cluster == cluster]
        _cumulate(src, scoped, seen)
    return _Mapping(src, _cumulate(src, local, seen))


def _must(src: str, dest: str) -> Transform:
    tr = Transform.create(src, dest)
    if tr is None:
        raise SharingError("invalid subject")
    return tr


def _cumulate(src: str, dests: list[tuple[Transform, int]], seen: set[str]) -> list[tuple[Transform, int]]:
    """Go ``processDestinations``: the source takes what the weights leave (unless listed), then
    the weights become cumulative, smallest first."""
    total = sum(w for _, w in dests)
    if total != 100 and src not in seen:
        dest = transform_tokenize(src) if _has_wildcard(src) else src
        dests = [*dests, (_must(src, dest), 100 - total if dests else 100)]
    dests = sorted(dests, key=lambda d: d[1])
    out: list[tuple[Transform, int]] = []
    acc = 0
    for tr, w in dests:
        acc += w
        out.append((tr, acc))
    return out


class Mappings:
    """An account's mappings as one callable: publish subject → subject to route.

    Returns the subject unchanged when no mapping applies, and ``""`` when a weighted mapping
    drops this message (weights under 100% with the source itself listed: nats-server's "loss").
    """

    __slots__ = ("_cache", "entries")

    def __init__(self, entries: list[_Mapping]) -> None:
        self.entries = entries
        self._cache: dict[str, _Mapping | None] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def _find(self, subject: str, tokens: list[str]) -> _Mapping | None:
        for m in self.entries:
            if (not m.wc and m.src == subject) or _subset(tokens, m.src_toks):
                return m
        return None

    def __call__(self, subject: str) -> str:
        tokens = subject.split(".")
        cache = self._cache
        if subject in cache:
            m = cache[subject]
        else:
            m = self._find(subject, tokens)
            if len(cache) >= _MAPPING_CACHE:
                cache.clear()
            cache[subject] = m
        if m is None:
            return subject
        dests = m.dests
        if len(dests) == 1 and dests[0][1] == 100:
            tr: Transform | None = dests[0][0]
        else:
            w = _rng.randrange(100)
            tr = next((t for t, cw in dests if w < cw), None)
        if tr is None:
            return ""
        # nats-server hands a literal source's transform no tokens when that mapping comes first
        # in its (random) map order, so {{partition()}} then hashes "": the broker always hashes
        # the subject's tokens
        return tr.apply_tokens(tokens)


def build_mappings(
    mappings: dict[str, list[WeightedMapping]], log: Callable[[str], None] | None = None
) -> Mappings | None:
    """An account JWT's ``mappings`` as :class:`Mappings` (None if there are none that apply).

    A source nats-server refuses (``AddWeightedMappings`` errors: bad subjects, unknown functions,
    duplicates, weights) is left out, as nats-server leaves it out, and ``log`` is told why."""
    entries: list[_Mapping] = []
    for src, dests in mappings.items():
        try:
            entries.append(_mapping(src, dests))
        except SharingError as exc:
            if log is not None:
                log(f"mapping {src!r} refused (nats-server refuses it too): {exc.message}")
    return Mappings(entries) if entries else None


# --- exports, imports, and the subscriptions that carry them ----------------------------------------


class _Auth:
    """Go ``exportAuth``: who may import (public exports have none)."""

    __slots__ = ("account_pos", "revocations", "token_req")

    def __init__(self, exp: Export) -> None:
        self.token_req = exp.token_req
        self.account_pos = exp.account_token_position
        self.revocations = exp.revocations


def _auth(exp: Export) -> _Auth | None:
    return _Auth(exp) if exp.token_req or exp.account_token_position > 0 else None


class ServiceExport:
    """One service export of an account: its authorization, response type and threshold, and
    its latency tracking (``latency``, set by :meth:`Sharing._track` when nats-server accepts it)."""

    __slots__ = ("account", "auth", "latency", "resp_type", "subject", "threshold", "timer")

    def __init__(self, account: Account, exp: Export) -> None:
        self.account = account
        self.subject = exp.subject
        self.auth = _auth(exp)
        self.resp_type = exp.response_type if exp.response_type in (STREAMED, CHUNKED) else SINGLETON
        # nats-server applies the threshold on first load (and reverts it to the default on a
        # later update, a quirk the broker does not copy)
        ns = exp.response_threshold
        self.threshold = ns / 1e9 if ns > 0 else DEFAULT_RESPONSE_THRESHOLD
        self.timer: asyncio.TimerHandle | None = None
        self.latency: Latency | None = None


class StreamImport:
    """Go ``streamImport``: messages on ``from_`` in ``exporter`` appear on ``to`` here."""

    __slots__ = ("claim", "expires", "exporter", "from_", "rtr", "to", "tr", "use_pub")

    def __init__(self, exporter: Account, from_: str, to: str, claim: Import, expires: int) -> None:
        self.exporter = exporter
        self.claim = claim
        self.expires = expires  # activation expiry (unix seconds), 0 = none
        self.use_pub = False
        self.tr: Transform | None = None
        self.rtr: Transform | None = None
        if _has_wildcard(from_):
            if to == from_:
                self.use_pub = True
            else:
                self.tr = Transform.create(from_, transform_tokenize(to), strict=True)
                to, _ = transform_untokenize(to)
                self.rtr = self.tr.reverse() if self.tr is not None else None
        self.from_ = from_
        self.to = to

    def deliver_subject(self, subject: str) -> str:
        if self.tr is not None:
            return self.tr.apply(subject)
        return subject if self.use_pub else self.to


class ServiceImport:
    """Go ``serviceImport``: requests on ``from_`` in the importing account go to ``to`` in
    ``acc``. With ``response`` set it is a pending response: messages on ``from_`` (a ``_R_``
    reply) in the exporter go back to ``to`` (the original reply) in ``acc`` (the requester).

    ``track`` is None unless latency is tracked: on an import, the export's :class:`Latency`; on a
    pending response, the :class:`Sample` of the request it answers."""

    __slots__ = (
        "acc", "claim", "expires", "from_", "response", "rt", "se", "sub", "to", "tr", "track", "ts",
        "use_pub",
    )  # fmt: skip

    def __init__(
        self,
        acc: Account,
        from_: str,
        to: str,
        *,
        se: ServiceExport | None,
        claim: Import | None = None,
        expires: int = 0,
        response: bool = False,
    ) -> None:
        self.acc = acc
        self.claim = claim
        self.se = se
        self.rt = se.resp_type if se is not None else SINGLETON
        self.expires = expires
        self.response = response
        self.ts = 0.0
        self.use_pub = False
        self.tr: Transform | None = None
        self.sub: ImportSub | None = None
        self.track: Latency | Sample | None = None
        if not response and _has_wildcard(to):
            if to == from_:
                self.use_pub = True
            else:
                to, _ = transform_untokenize(to)
                fwd = Transform.create(to, transform_tokenize(from_), strict=True)
                from_, _ = transform_untokenize(from_)
                self.tr = fwd.reverse() if fwd is not None else None
                if self.tr is None:
                    raise SharingError(
                        f"failed to create mapping transform for service import subject from {from_!r}"
                        f" to {to!r}"
                    )
        self.from_ = from_
        self.to = to


class _Internal:
    """The stand-in connection of the subscriptions made here (never closed, sends nothing)."""

    __slots__ = ()
    closed = False


class ShadowSub(Subscription):
    """A client's subscription copied into an exporter's routing table for a stream import."""

    __slots__ = ("imp", "orig")

    def __init__(self, subject: str, orig: ConnSub, imp: StreamImport) -> None:
        super().__init__(subject, orig.sid, orig.conn, orig.queue)
        self.orig = orig
        self.imp = imp


class ImportSub(Subscription):
    """A service import: the importing account's subscription on the import's local subject."""

    __slots__ = ("account", "si")

    def __init__(self, account: Account, si: ServiceImport, conn: _Internal) -> None:
        super().__init__(si.from_, "", conn)
        self.account = account
        self.si = si


class ResponseSub(Subscription):
    """The account's ``_R_.<prefix>.>`` subscription that carries responses back."""

    __slots__ = ("account",)

    def __init__(self, account: Account, subject: str, conn: _Internal) -> None:
        super().__init__(subject, "", conn)
        self.account = account


class Links:
    """What one account shares: exports, imports, pending responses (``Account.links``)."""

    __slots__ = (
        "exporters",
        "internal",
        "reply_prefix",
        "resp_conn",
        "responses",
        "rr",
        "service_exports",
        "services",
        "stream_exports",
        "streams",
    )

    def __init__(self) -> None:
        self.stream_exports: dict[str, _Auth | None] = {}
        self.service_exports: dict[str, ServiceExport] = {}
        self.streams: list[StreamImport] = []
        self.services: dict[str, list[ServiceImport]] = {}
        self.exporters: set[str] = set()  # accounts imported from (valid or not)
        self.internal = _Internal()  # owns the service import subscriptions
        self.resp_conn = _Internal()  # owns the response subscription
        self.reply_prefix = ""
        self.responses: dict[str, ServiceImport] = {}  # _R_ reply -> pending response
        self.rr: dict[str, list[tuple[Account, str]]] = {}  # original reply -> (exporter, _R_ reply)

    def service_export(self, subject: str) -> ServiceExport | None:
        """Go ``getServiceExport``: the export of exactly ``subject``, or the first that covers it."""
        se = self.service_exports.get(subject)
        if se is not None:
            return se
        toks = subject.split(".")
        for subj, se in self.service_exports.items():
            if _subset(toks, subj.split(".")):
                return se
        return None


def _go_json(info: dict[str, Any]) -> bytes:
    """``ClientInfo`` as Go marshals it: its fields in struct order, empty ones left out."""
    order = (
        "start", "host", "id", "acc", "svc", "user", "name", "lang", "ver", "rtt", "server", "cluster",
        "alts", "stop", "jwt", "issuer_key", "name_tag", "tags", "kind", "client_type", "client_id",
        "nonce", "reply",
    )  # fmt: skip
    return orjson.dumps({k: info[k] for k in order if info.get(k)})


def _remove_header(hdr: bytes, key: bytes) -> bytes:
    """Go ``removeHeaderIfPresent`` (a ``Key:`` line after a CRLF, case-sensitive)."""
    needle = b"\r\n" + key + b":"
    while True:
        i = hdr.find(needle)
        if i < 0:
            return hdr
        end = hdr.find(b"\r\n", i + 2)
        if end < 0:
            return hdr
        hdr = hdr[: i + 2] + hdr[end + 2 :]


def _request_info(headers: bytes | None) -> dict[str, Any] | None:
    if not headers:
        return None
    i = headers.find(b"\r\n" + REQUEST_INFO + b":")
    if i < 0:
        return None
    end = headers.find(b"\r\n", i + 2)
    try:
        value = orjson.loads(headers[i + len(REQUEST_INFO) + 3 : end].strip())
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


#: Go ``ClientInfo``'s JSON fields in declaration order (events.go)
_CLIENT_INFO_FIELDS = (
    "start", "host", "id", "acc", "svc", "user", "name", "lang", "ver", "rtt", "server", "cluster",
    "alts", "stop", "jwt", "issuer_key", "name_tag", "tags", "kind", "client_type", "client_id",
    "nonce", "reply",
)  # fmt: skip


def _client_info_fields(info: dict[str, Any]) -> dict[str, Any]:
    """A ``ClientInfo`` as Go marshals it after unmarshalling: its own fields only, in field
    order, empty ones left out (``omitempty``)."""
    return {k: info[k] for k in _CLIENT_INFO_FIELDS if info.get(k)}


def _shares(si: ServiceImport) -> bool:
    """The import's ``share``: the requester's details go along with its requests."""
    return si.claim is not None and si.claim.share


def _set_header(headers: bytes | None, value: bytes) -> bytes:
    """Go ``client.setHeader``: replace or append ``Nats-Request-Info``."""
    line = REQUEST_INFO + b": " + value + b"\r\n\r\n"
    if headers is None or len(headers) <= 2:
        return b"NATS/1.0\r\n" + line
    hdr = _remove_header(headers[:-2], REQUEST_INFO)
    return (hdr or b"NATS/1.0\r\n") + line


def _reply_token() -> str:
    n = _rng.getrandbits(64)
    out = []
    for _ in range(6):
        out.append(_BASE62[n % 62])
        n //= 62
    return "".join(out)


# --- service latency (accounts.go ServiceLatency, shouldSample, sendTrackingLatency) ---------------

#: nats-server ``ServiceLatencyType``
SERVICE_LATENCY_TYPE = "io.nats.server.metric.v1.service_latency"
#: the ``description`` of each status a latency result can carry (accounts.go)
_LATENCY_ERRORS = {
    400: "Bad Request",
    408: "Request Timeout",
    503: "Service Unavailable",
    504: "Service Timeout",
}
_NUID_MAX_SEQ = 62**10
_HEX = frozenset("0123456789abcdefABCDEF")
_TOKEN_BYTES = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SIGNED_HEX_RE = re.compile(r"[+-]?[0-9a-fA-F]+")
# trace headers, as textproto canonicalizes them (accounts.go trcUber, trcCtx, trcB3, …)
_TRC_UBER, _TRC_UBER_CTX = "Uber-Trace-Id", "Uberctx-"
_TRC_CTX, _TRC_CTX_STATE = "Traceparent", "Tracestate"
_TRC_B3, _TRC_B3_SAMPLED, _TRC_B3_ID = "B3", "X-B3-Sampled", "X-B3-Traceid"
_B3_KEEP = (_TRC_B3_SAMPLED, _TRC_B3_ID, "X-B3-Parentspanid", "X-B3-Spanid")

Header = dict[str, list[str]]


class Latency:
    """A service export's latency tracking (Go ``serviceLatency``): ``sampling`` 1-100 percent,
    or 0 for requests that carry a sampled trace header; results go to ``results`` in the
    exporting account."""

    __slots__ = ("results", "sampling")

    def __init__(self, sampling: int, results: str) -> None:
        self.sampling = sampling
        self.results = results


class Sample:
    """A request picked for latency tracking, kept on its pending response (Go ``serviceImport``'s
    ``rc``, ``ts``, ``share``, ``trackingHdr``, ``didDeliver``)."""

    __slots__ = ("delivered", "header", "latency", "rc", "share", "ts")

    def __init__(self, latency: Latency, rc: Conn | None, share: bool, header: Header | None) -> None:
        self.latency = latency
        self.rc = rc  # the requester; None once a result was sent
        self.share = share
        self.header = header  # the trace headers that picked it
        self.ts = time.time_ns()
        self.delivered = False


def _canonical_key(key: bytes) -> str | None:
    """Go ``textproto.canonicalMIMEHeaderKey``: ``x-b3-traceid`` → ``X-B3-Traceid``; None for a key
    textproto refuses (a byte outside a token; a space leaves the key as it is)."""
    if not key:
        return None
    if not all(c in _TOKEN_BYTES for c in key):
        if all(c in _TOKEN_BYTES or c == 0x20 for c in key):
            return key.decode("latin-1")
        return None
    out = []
    upper = True
    for ch in key.decode("ascii"):
        ch = ch.upper() if upper else ch.lower()
        out.append(ch)
        upper = ch == "-"
    return "".join(out)


def parse_header(headers: bytes) -> Header | None:
    """A NATS header block as nats-server reads it for sampling (``parseState.getHeader``: the
    version line skipped, then ``textproto.ReadMIMEHeader``); None if textproto refuses it."""
    fields: list[bytes] = []
    for line in headers.split(b"\r\n")[1:]:
        if not line:
            break
        if line[0] in b" \t":  # a continued line: Go joins it to the one before, if there is one
            if not fields:
                return None
            fields[-1] += b" " + line.strip(b" \t")
        else:
            fields.append(line.strip(b" \t"))
    out: Header = {}
    for field in fields:
        key, sep, value = field.partition(b":")
        name = _canonical_key(key) if sep else None
        if name is None or any((c < 0x20 and c != 0x09) or c == 0x7F for c in value):
            return None
        out.setdefault(name, []).append(value.strip(b" \t").decode("utf-8", "surrogateescape"))
    return out


def should_sample(sampling: int, headers: bytes | None) -> tuple[bool, Header | None]:
    """Go ``shouldSample``: is this request measured, and with which trace headers.

    A percentage picks requests at random (as nats-server: ``rand(100) <= sampling``, so 1 is
    about 2%); a request it does not pick, and every request with ``headers`` sampling, is
    measured when a trace header says it is sampled: Uber (``uber-trace-id`` flags), B3
    (``X-B3-Sampled``, ``X-B3-TraceId``, single ``b3``) or W3C ``traceparent`` flags."""
    if sampling < 0:
        return False, None
    if sampling >= 100:
        return True, None
    if sampling > 0 and _rng.randrange(100) <= sampling:
        return True, None
    h = parse_header(headers) if headers else None
    if not h:
        return False, None
    uber = h.get(_TRC_UBER)
    if uber:
        tk = uber[0].split(":")
        if len(tk) == 4 and 0 < len(tk[3]) <= 2:
            flag = tk[3][-1]  # Go decodes "0" + the last of the (one or two) flag digits
            if flag in _HEX and int(flag, 16) & 1:
                picked = {_TRC_UBER: uber}
                picked.update((k, v) for k, v in h.items() if k.startswith(_TRC_UBER_CTX))
                return True, picked
        return False, None
    sampled = h.get(_TRC_B3_SAMPLED)
    if sampled and sampled[0] == "1":
        return True, {k: h[k] for k in _B3_KEEP if k in h}
    if sampled and sampled[0] == "0":
        return False, None
    if _TRC_B3_ID in h:
        return True, {k: h[k] for k in _B3_KEEP if k in h}
    b3 = h.get(_TRC_B3)
    if b3:
        tk = b3[0].split("-")
        if (len(tk) > 2 and tk[2] == "0") or (len(tk) == 1 and tk[0] == "0"):
            return False, None
        return True, {_TRC_B3: b3}
    ctx = h.get(_TRC_CTX)
    if ctx:
        tk = ctx[0].split("-")
        # Go strconv.ParseInt(flags, 16, 8): a signed 8-bit value, else not sampled
        if len(tk) == 4 and len(tk[3].encode()) == 2 and _SIGNED_HEX_RE.fullmatch(tk[3]):
            flags = int(tk[3], 16)
            if -128 <= flags <= 127 and flags & 1:
                picked = {_TRC_CTX: ctx}
                if _TRC_CTX_STATE in h:
                    picked[_TRC_CTX_STATE] = h[_TRC_CTX_STATE]
                return True, picked
    return False, None


def rfc3339nano(ns: int) -> str:
    """A UTC time in nanoseconds as Go marshals a ``time.Time`` (RFC 3339, trailing zeros of the
    fraction dropped)."""
    sec, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


class _Nuid:
    """Event ids as nats.io ``nuid`` makes them: 12 random base62 characters, then a 10-character
    sequence that grows by a random step."""

    __slots__ = ("inc", "pre", "seq")

    def __init__(self) -> None:
        self.pre = ""
        self.seq = self.inc = 0
        self._reset()

    def _reset(self) -> None:
        self.pre = "".join(_BASE62[b % 62] for b in secrets.token_bytes(12))
        self.seq = _rng.randrange(_NUID_MAX_SEQ)
        self.inc = 33 + _rng.randrange(300)

    def next(self) -> str:
        self.seq += self.inc
        if self.seq >= _NUID_MAX_SEQ:
            self._reset()
        n = self.seq
        tail = []
        for _ in range(10):
            tail.append(_BASE62[n % 62])
            n //= 62
        return self.pre + "".join(reversed(tail))


def _server_hash(name: str) -> str:
    """Go ``getHash``: 8 base62 characters from the SHA-256 of the server name."""
    return "".join(_BASE62[b % 62] for b in hashlib.sha256(name.encode()).digest()[:8])


# --- the broker's sharing state -------------------------------------------------------------------


class Sharing:
    """Imports, exports and mappings of every loaded account of one broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.importers: dict[str, set[str]] = {}  # exporter key -> keys of accounts importing from it
        self.chain: list[ServiceImport] = []  # service imports of the message being carried
        self._busy: set[str] = set()  # accounts being wired (an import may load its exporter)
        self._ids = _Nuid()  # ids of latency events
        self._suffix = ""  # see _tracked_suffix

    # --- loading ----------------------------------------------------------------------------
    def load(self, account: Account, *, refresh: bool = True) -> None:
        """(Re)build ``account``'s mappings, exports and imports from its claims. With ``refresh``
        (a new JWT for a loaded account), re-check the imports of every account that imports from
        it too: its exports or revocations may have changed. Live subscriptions get their shadow
        subscriptions rebuilt."""
        if account.key in self._busy:
            return
        self._busy.add(account.key)
        try:
            self._load(account)
        finally:
            self._busy.discard(account.key)
        if refresh:
            self._refresh_importers(account.key)

    def _load(self, account: Account) -> None:
        claims = account.claims
        log = self.broker.log
        account.mapper = build_mappings(claims.mappings, log) if claims is not None else None
        old = account.links
        unused = claims is None or (not claims.exports and not claims.imports)
        if unused and (old is None or not old.responses):
            if old is not None:
                self._unwire_imports(account, old)
                account.links = None
        else:
            links = Links()
            if old is not None:
                # pending responses and the reply prefix survive a new JWT, as in nats-server
                links.reply_prefix, links.responses, links.rr = old.reply_prefix, old.responses, old.rr
                links.resp_conn = old.resp_conn
                # the old exports' threshold timers keep running for these responses
                self._unwire_imports(account, old)
            account.links = links  # before the imports: an exporter may import from us (cycles)
            if claims is not None:
                for exp in claims.exports:
                    if exp.type == STREAM:
                        links.stream_exports[exp.subject] = _auth(exp)
                    elif exp.type == SERVICE:
                        se = links.service_exports[exp.subject] = ServiceExport(account, exp)
                        if exp.service_latency is not None:
                            se.latency = self._track(account, links, se, exp.service_latency)
                self._wire_imports(account, links, claims)

    def account_updated(self, key: str) -> None:
        """A new JWT for ``key`` was applied (or the account was deleted): rebuild it if loaded, and
        re-check the imports of the accounts that import from it."""
        acct = self.broker.accounts.get(key)
        if acct is not None:
            self.load(acct)
        else:
            self._refresh_importers(key)

    def _refresh_importers(self, key: str) -> None:
        for importer in sorted(self.importers.get(key, ())):
            acct = self.broker.accounts.get(importer)
            if acct is None or importer == key or importer in self._busy:
                continue
            links, claims = acct.links, acct.claims
            if links is not None and claims is not None:
                self._busy.add(importer)
                try:
                    self._unwire_imports(acct, links)
                    self._wire_imports(acct, links, claims)
                finally:
                    self._busy.discard(importer)

    def _unwire_imports(self, account: Account, links: Links) -> None:
        account.router.remove_conn(links.internal)
        links.internal = _Internal()
        for conn in account.conns:
            for sub in conn.subs.values():
                self._drop_shadows(sub)
        for key in links.exporters:
            keys = self.importers.get(key)
            if keys is not None:
                keys.discard(account.key)
                if not keys:
                    del self.importers[key]
        links.streams, links.services, links.exporters = [], {}, set()

    def _wire_imports(self, account: Account, links: Links, claims: AccountClaims) -> None:
        """``updateAccountClaims``' import loop: each import authorized and added, or left out."""
        now = int(time.time())
        for imp in claims.imports:
            if imp.account:
                links.exporters.add(imp.account)
                self.importers.setdefault(imp.account, set()).add(account.key)
            try:
                self._add_import(account, links, imp, now)
            except SharingError as exc:
                self.broker.log(
                    f"account {account.key}: {imp.type} import of {imp.subject!r} from {imp.account}"
                    f" left out: {exc.message}"
                )
        for sis in links.services.values():
            for si in sis:
                isub = si.sub = ImportSub(account, si, links.internal)
                try:
                    account.router.insert(isub)
                except TrustkitError as exc:  # a subject Go accepts and trustkit does not
                    self.broker.log(f"account {account.key}: service import on {si.from_!r} left out: {exc}")
        if links.streams:
            for conn in sorted(account.conns, key=lambda c: c.cid):
                for sub in conn.subs.values():
                    self._add_shadows(links, sub)

    def _exporter(self, key: str, now: int) -> Account:
        """The exporting account, loaded from the resolver (Go ``lookupAccount``)."""
        b = self.broker
        claims = b.lookup_account(key)
        if claims is None or claims.is_expired(now) or claims.is_not_yet_valid(now):
            raise SharingError(f"can't locate account [{key}]")
        return b.account(key, claims)

    def _add_import(self, account: Account, links: Links, imp: Import, now: int) -> None:
        exporter = self._exporter(imp.account, now)
        if imp.type == STREAM:
            from_, to = imp.subject, imp.to
            if imp.local_subject:
                to = imp.local_subject
            elif to:  # the deprecated ``to`` is a prefix for streams
                if _has_wildcard(to):
                    raise SharingError("stream import prefix can not contain wildcard tokens")
                to = (to if to.endswith(".") else to + ".") + from_
            ok, expires = self._authorized(exporter, account, STREAM, from_, imp, now)
            if not ok:
                raise SharingError("stream import not authorized")
            to = to or from_
            self._stream_cycle(account, exporter, to)
            self._stream_cycle(account, exporter, from_)
            if any(si.exporter is exporter and si.from_ == from_ for si in links.streams):
                raise SharingError("stream import already exists")
            links.streams.append(StreamImport(exporter, from_, to, imp, expires))
            return
        if imp.type != SERVICE:
            raise SharingError(f"invalid import type {imp.type!r}")
        if imp.local_subject:
            from_, to = imp.local_subject, imp.subject
        else:
            from_, to = imp.subject, imp.to or imp.subject
        if not _valid_subject(from_) or not _valid_subject(to):
            raise SharingError("invalid subject")
        ok, expires = self._authorized(exporter, account, SERVICE, to, imp, now)
        if not ok:
            raise SharingError("service import not authorized")
        from_t = transform_untokenize(from_)[0] if _has_wildcard(to) else from_
        self._service_cycle(exporter, from_t, {account.key})
        for dup in links.services.get(from_t, ()):
            if dup.acc is exporter:
                raise SharingError(f"duplicate service import subject {from_!r}")
        assert exporter.links is not None  # authorized, so it has exports
        se = exporter.links.service_export(to)
        si = ServiceImport(exporter, from_, to, se=se, claim=imp, expires=expires)
        if se is not None and se.latency is not None:
            si.track = se.latency
        links.services.setdefault(si.from_, []).append(si)

    # --- authorization (checkStreamImportAuthorized / checkServiceImportAuthorized) ---------------
    def _authorized(
        self, exporter: Account, importer: Account, kind: str, subject: str, imp: Import, now: int
    ) -> tuple[bool, int]:
        """(authorized, activation expiry or 0) for importing ``subject`` of ``kind``."""
        links = exporter.links
        if links is None or not _valid_subject(subject):
            return False, 0
        table: dict[str, Any] = links.stream_exports if kind == STREAM else links.service_exports
        if not table:
            return False, 0
        if subject in table:
            return self._check_auth(exporter, importer, kind, table[subject], imp, None, now)
        tokens = subject.split(".")
        for subj, entry in table.items():
            if _subset(tokens, subj.split(".")):
                return self._check_auth(exporter, importer, kind, entry, imp, tokens, now)
        return False, 0

    def _check_auth(
        self,
        exporter: Account,
        importer: Account,
        kind: str,
        entry: _Auth | ServiceExport | None,
        imp: Import,
        tokens: list[str] | None,
        now: int,
    ) -> tuple[bool, int]:
        """Go ``checkAuth``: public, account token position, or an activation."""
        auth = entry.auth if isinstance(entry, ServiceExport) else entry
        if auth is None:
            return True, 0
        if auth.account_pos > 0:
            pos = auth.account_pos
            return tokens is not None and pos <= len(tokens) and tokens[pos - 1] == importer.key, 0
        if auth.token_req:
            return self._activation(exporter, importer, kind, imp, auth, now)
        return False, 0

    def _activation(
        self, exporter: Account, importer: Account, kind: str, imp: Import, auth: _Auth, now: int
    ) -> tuple[bool, int]:
        """Go ``checkActivation``: a valid activation for this import, not revoked by the export."""
        if not imp.token or exporter.claims is None:
            return False, 0
        try:
            act = decode(imp.token, ActivationClaims)
        except TokenError:
            return False, 0
        # Import.Validate, for the importing account
        subject = imp.to if kind == SERVICE and imp.to else imp.subject
        if (
            imp.account not in (act.iss, act.issuer_account)
            or act.sub != importer.key
            or act.import_type != imp.type
            or not contained_in(subject, act.import_subject)
        ):
            return False, 0
        # isIssuerClaimTrusted: a signing key of the exporter needs issuer_account
        if act.issuer_account:
            strict = self.broker.operators.is_strict(exporter.claims)
            keys = set(exporter.claims.signing_keys)
            if not strict:
                keys.add(exporter.key)
            if act.issuer_account != exporter.key or act.iss not in keys:
                return False, 0
        elif act.iss != exporter.key:
            return False, 0
        if act.validate(now=now).is_blocking(include_time_checks=True):
            return False, 0
        if act.exp and act.exp <= now:
            return False, 0
        if is_revoked(auth.revocations, act.sub, act.iat):
            return False, 0
        return True, act.exp or 0

    # --- cycles (streamImportFormsCycle / serviceImportFormsCycle) ----------------------------------
    def _stream_cycle(self, importer: Account, exporter: Account, to: str) -> None:
        self._stream_cycles(exporter, to, {importer.key})

    def _stream_cycles(self, acct: Account, to: str, visited: set[str]) -> None:
        if len(visited) >= MAX_CYCLE_SEARCH_DEPTH:
            raise SharingError("search cycle depth exhausted")
        links = acct.links
        if links is None or not any(_subset_subject(to, s) for s in links.stream_exports):
            return
        for si in list(links.streams):
            if _collide(to, si.to):
                if si.exporter.key in visited:
                    raise SharingError("import forms a cycle")
                visited.add(acct.key)
                t = si.to if _subset_subject(si.to, to) else to
                self._stream_cycles(si.exporter, t, visited)

    def _service_cycle(self, acct: Account, from_: str, visited: set[str]) -> None:
        if len(visited) >= MAX_CYCLE_SEARCH_DEPTH:
            raise SharingError("search cycle depth exhausted")
        links = acct.links
        if links is None:
            return
        for sis in list(links.services.values()):
            for si in sis:
                if _collide(from_, si.to):
                    if si.acc.key in visited:
                        raise SharingError("import forms a cycle")
                    visited.add(acct.key)
                    f = si.from_ if _subset_subject(si.from_, from_) else from_
                    self._service_cycle(si.acc, f, visited)

    # --- shadow subscriptions (client.addShadowSubscriptions / addShadowSub) -------------------------
    def subscribed(self, account: Account, sub: ConnSub) -> None:
        """A client of ``account`` subscribed: shadow it into the exporters it imports streams from."""
        links = account.links
        if links is not None and links.streams:
            self._add_shadows(links, sub)

    def _add_shadows(self, links: Links, sub: ConnSub) -> None:
        subj = sub.subject
        tokens = subj.split(".")
        has_wc = "*" in tokens or tokens[-1] == ">"
        for im in links.streams:
            overlap, dyn = "", False
            if subj == im.to:
                pass
            else:
                toks = list(tokens)
                im_toks = im.to.split(".")
                if _subset(toks, im_toks):
                    dyn = True
                elif not has_wc:
                    continue
                elif _subset(im_toks, toks):
                    pass
                else:
                    n = len(im_toks)
                    for i, t in enumerate(toks):
                        if i >= n:
                            break
                        if t == "*" and im_toks[i] != ">":
                            toks[i] = im_toks[i]
                    last = len(toks) - 1
                    if toks[last] == ">" and n >= len(toks):
                        toks[last] = im_toks[last]
                        toks.extend(im_toks[last + 1 :])
                    if not _subset(toks, im_toks):
                        continue
                    overlap, dyn = ".".join(toks), True
            if not im.use_pub and dyn and im.tr is not None:
                subject = im.rtr.apply(overlap or subj) if im.rtr is not None else im.from_
            elif not im.use_pub or overlap or not dyn:
                subject = overlap or im.from_
            else:
                subject = subj
            shadow = ShadowSub(subject, sub, im)
            try:
                im.exporter.router.insert(shadow)
            except TrustkitError as exc:  # SubjectError, BrokerError
                self.broker.log(
                    f"could not add shadow import subscription for account {im.exporter.key}: {exc}"
                )
                continue
            if sub.shadows is None:
                sub.shadows = []
            sub.shadows.append(shadow)

    @staticmethod
    def _drop_shadows(sub: ConnSub) -> None:
        shadows = sub.shadows
        if shadows:
            sub.shadows = None
            for shadow in shadows:
                shadow.imp.exporter.router.remove(shadow)

    def unsubscribed(self, account: Account, sub: ConnSub) -> None:
        """A client subscription is gone: its shadows go too, and pending responses to a reply
        subject nobody in ``account`` listens on any more are dropped (``checkForReverseEntry``)."""
        self._drop_shadows(sub)
        links = account.links
        if links is not None and links.rr:
            self._check_reverse(account, links, sub.subject)

    def conn_closed(self, account: Account, conn: Conn) -> None:
        """A client connection closed (its subscriptions already left ``account``'s router)."""
        links = account.links
        subjects: set[str] = set()
        for sub in conn.subs.values():
            self._drop_shadows(sub)
            subjects.add(sub.subject)
        if links is not None and links.rr:
            for subject in subjects:
                self._check_reverse(account, links, subject)

    def _check_reverse(self, account: Account, links: Links, subject: str) -> None:
        if _has_wildcard(subject):
            toks = subject.split(".")
            replies = [r for r in links.rr if _subset(r.split("."), toks)]
        else:
            replies = [subject] if subject in links.rr else []
        for reply in replies:
            if account.router.has_interest(reply):
                continue
            for exporter, nrr in links.rr.pop(reply, ()):
                if exporter.links is not None:
                    rsi = exporter.links.responses.pop(nrr, None)
                    sample = rsi.track if rsi is not None else None
                    if isinstance(sample, Sample) and sample.rc is not None and not sample.delivered:
                        self._send_error(exporter, sample, 408)  # sendReplyInterestLostTrackLatency

    # --- delivery ------------------------------------------------------------------------------
    def deliver(
        self,
        sub: Subscription,
        sender: Conn | None,
        subject: str,
        reply: str | None,
        headers: bytes | None,
        payload: bytes,
        from_service: bool,
    ) -> bool:
        """A message reached one of the subscriptions made here; True if it was delivered."""
        if isinstance(sub, ShadowSub):
            if from_service:  # a message that came through a service import is not re-exported
                return False
            im, orig = sub.imp, sub.orig
            if im.expires and time.time() >= im.expires:
                return False  # the activation expired (nats-server's expiry timer)
            if orig.conn.subs.get(orig.sid) is not orig:
                return False  # unsubscribed (auto-unsubscribe) while this message was delivered
            dsubject = im.deliver_subject(subject)
            return self.broker._deliver_one(orig, sender, dsubject, reply, headers, payload)
        if isinstance(sub, ImportSub):
            return self._service_import(sub.si, sub.account, sender, subject, reply, headers, payload)
        if isinstance(sub, ResponseSub):
            links = sub.account.links
            rsi = links.responses.get(subject) if links is not None else None
            if rsi is not None:
                self._service_import(rsi, sub.account, sender, subject, reply, headers, payload)
            return True  # nats-server counts a response subscription as a delivery
        return False

    def _service_import(
        self,
        si: ServiceImport,
        acc: Account,
        sender: Conn | None,
        subject: str,
        reply: str | None,
        headers: bytes | None,
        payload: bytes,
    ) -> bool:
        """Go ``processServiceImport``: carry a request (or a response) across to ``si.acc``."""
        if si.expires and time.time() >= si.expires:
            return False
        chain = self.chain
        if len(chain) >= MAX_CHAIN or any(p is si or (p.se is not None and p.se is si.se) for p in chain):
            return False  # a cycle
        dest = si.acc
        rsi: ServiceImport | None = None
        nrr: str | None = None
        sample: Sample | None = None
        track = si.track
        if track is not None:  # latency tracking: only where an export asks for it
            if isinstance(track, Latency):
                sample = self._sample(track, si, sender, headers)
            elif not track.delivered:  # the first response to a sampled request: measure it
                track.delivered = True
                self._send_tracking(acc, track, sender)
        if reply:
            if reply.startswith("$JS.ACK."):
                nrr = reply
            else:
                rsi = self._add_response(si, acc, reply, sample)
                nrr = rsi.from_ if rsi is not None else None
        elif sample is not None:  # a sampled request nobody can answer (sendBadRequestTrackingLatency)
            self._send_error(dest, sample, 400)
        to = si.to
        if si.tr is not None:
            to = si.tr.apply(subject)
        elif si.use_pub:
            to = subject
        if dest.mapper is not None:
            to = dest.mapper(to)
        if not si.response:
            headers = _set_header(headers, self._client_info(headers, acc, si, sender))
        chain.append(si)
        try:
            delivered = bool(to) and self.broker.deliver(
                dest, sender, to, nrr, headers, payload, from_service=True
            )
        finally:
            chain.pop()
        if si.rt != SINGLETON and delivered:
            si.ts = time.monotonic()
        if not delivered or (si.response and (si.rt == SINGLETON or (not payload and headers is None))):
            if si.response:
                self._remove_response(acc, si, 0 if delivered else 503)
            elif rsi is not None:
                self._remove_response(dest, rsi, 503)
        return delivered

    def _client_info(
        self, headers: bytes | None, acc: Account, si: ServiceImport, sender: Conn | None
    ) -> bytes:
        """``Nats-Request-Info`` as ``processServiceImport`` sets it. First hop: the requester's
        ``getClientInfo`` (its account and RTT; who it is, and this server, with the import's
        ``share``). A chained hop keeps the first hop's info (Go's ``ClientInfo`` fields only) with
        ``svc`` set to the account it passes through, and this server's name once it enters an
        account that shares (or the system account) from one that did not."""
        chain = self.chain
        prev = chain[-1] if chain else None
        share = _shares(prev if prev is not None else si)
        to_system = si.acc.key == self.broker.config.system_account
        if prev is not None:
            info = _request_info(headers)
            if info is not None:
                info["svc"] = acc.key
                if not share and (_shares(si) or to_system):
                    info["server"] = self.broker.info_base.get("server_name")
                return _go_json(_client_info_fields(info))
        ci = self._client(sender, share)
        if ci is None:
            return _go_json({"acc": acc.key})
        if not share and to_system:
            ci["server"] = self.broker.info_base.get("server_name")
        return _go_json(_client_info_fields(ci))

    # --- pending responses (addRespServiceImport / removeRespServiceImport) -----------------------
    def _add_response(
        self, si: ServiceImport, acc: Account, reply: str, sample: Sample | None = None
    ) -> ServiceImport | None:
        """Record that a response on a new ``_R_`` reply in ``si.acc`` goes back to ``reply`` in
        ``acc``; the reply's wildcard subscription is made on first use. A request ``sample``d for
        latency tracking gets nats-server's tracked reply (``<reply>.<server hash>.T``)."""
        owner = si.acc
        links = owner.links
        if links is None:  # an exporter always has links; a requester that is now an exporter of a
            links = owner.links = Links()  # chained response needs somewhere to keep it
        if not links.reply_prefix:
            links.reply_prefix = "_R_." + _reply_token() + "."
            owner.router.insert(ResponseSub(owner, links.reply_prefix + ">", links.resp_conn))
        nrr = links.reply_prefix + _reply_token()
        if sample is not None:
            nrr += self._tracked_suffix()
        rsi = ServiceImport(acc, nrr, reply, se=si.se, response=True)
        rsi.rt = si.rt
        rsi.ts = time.monotonic()
        if sample is not None and rsi.rt == SINGLETON:
            rsi.track = sample
        links.responses[nrr] = rsi
        if si.se is not None:
            self._arm_threshold(si.se, owner)
        if acc.links is not None:
            acc.links.rr.setdefault(reply, []).append((owner, nrr))
        return rsi

    def _remove_response(self, owner: Account, rsi: ServiceImport, status: int = 0) -> None:
        """Forget a pending response. ``status`` says why (Go ``rsiReason``): 0 answered, 503 not
        delivered, 504 the threshold passed; a sampled request never answered reports it."""
        links = owner.links
        if links is not None:
            links.responses.pop(rsi.from_, None)
        sample = rsi.track
        if isinstance(sample, Sample) and sample.rc is not None and not sample.delivered:
            self._send_error(owner, sample, status)
        dest = rsi.acc.links
        if dest is not None:
            entries = dest.rr.get(rsi.to)
            if entries is not None:
                entries[:] = [e for e in entries if e[1] != rsi.from_]
                if not entries:
                    del dest.rr[rsi.to]

    def _arm_threshold(self, se: ServiceExport, owner: Account) -> None:
        if se.timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a test driving the router by hand): nothing expires
                return
            se.timer = loop.call_later(se.threshold, self._expire, se, owner)

    def _expire(self, se: ServiceExport, owner: Account) -> None:
        """``checkExpiredResponses``: drop responses of ``se`` that waited longer than its threshold."""
        se.timer = None
        links = owner.links
        if links is None:
            return
        cutoff = time.monotonic() - se.threshold
        mine = [rsi for rsi in links.responses.values() if rsi.se is se]
        expired = [rsi for rsi in mine if rsi.ts <= cutoff]
        for rsi in expired:
            self._remove_response(owner, rsi, 504)
        if len(mine) > len(expired):
            self._arm_threshold(se, owner)

    # --- service latency (TrackServiceExportWithSampling, sendTrackingLatency, …) ------------------
    def _track(
        self, account: Account, links: Links, se: ServiceExport, lat: ServiceLatency
    ) -> Latency | None:
        """Go ``TrackServiceExportWithSampling`` for an export's ``latency``: None (and a log line)
        where nats-server refuses to track it."""
        sampling, results = lat.sampling, lat.results
        if sampling != 0 and not 1 <= sampling <= 100:
            why = "bad sampling percentage, should be 1-100"
        elif not _valid_subject(results) or _has_wildcard(results):
            why = "invalid publish subject"
        elif links.service_export(results) is not None:
            why = "invalid publish subject"  # results on a service export would loop back
        elif se.resp_type != SINGLETON:
            why = "bad service response type"
        else:
            return Latency(sampling, results)
        self.broker.log(f"account {account.key}: latency tracking of {se.subject!r} left out: {why}")
        return None

    def _sample(
        self, lat: Latency, si: ServiceImport, sender: Conn | None, headers: bytes | None
    ) -> Sample | None:
        """A request to a tracked export: measured (a :class:`Sample`), or None."""
        picked, header = should_sample(lat.sampling, headers)
        if not picked:
            return None
        return Sample(lat, sender, _shares(si), header)

    def _tracked_suffix(self) -> str:
        """``.<server hash>.T``: what nats-server appends to the reply of a sampled request."""
        if not self._suffix:
            self._suffix = "." + _server_hash(str(self.broker.info_base.get("server_name", ""))) + ".T"
        return self._suffix

    def _client(self, conn: Conn | None, detailed: bool) -> dict[str, Any] | None:
        """Go ``client.getClientInfo``: the account and RTT, and with ``detailed`` (the import's
        ``share``, and always for the responder) who the client is, in ``ClientInfo`` field order
        with empty fields left out."""
        if conn is None:
            return None
        acct = conn.account
        acc = acct.key if acct is not None else "N/A"
        rtt = conn.rtt
        if not detailed:
            return {"acc": acc, "rtt": rtt} if rtt else {"acc": acc}
        opts = conn.connect_opts or {}
        grant = conn.grant
        user_jwt = opts.get("jwt") if isinstance(opts.get("jwt"), str) else ""
        if opts.get("nkey"):
            user = str(opts["nkey"])
        elif opts.get("user"):
            user = str(opts["user"])
        elif user_jwt and grant is not None:
            user = grant.user.sub
        else:
            user = "[REDACTED]" if opts.get("auth_token") else ""
        issuer, name_tag, tags = "", "", None
        if grant is not None:  # issuerForClient; nameTag and tags come from a user JWT
            issuer = grant.signing_key or acc
            if grant.signing_key:
                name_tag, tags = grant.user.name, list(grant.user.tags)
        info = {
            "start": rfc3339nano(int(conn.started * 1e9)),
            "host": conn.client_ip,
            "id": conn.cid,
            "acc": acc,
            "user": user,
            "name": conn.name,
            "lang": conn.lang,
            "ver": conn.version,
            "rtt": rtt,
            "server": self.broker.info_base.get("server_name"),
            "jwt": user_jwt,
            "issuer_key": issuer,
            "name_tag": name_tag,
            "tags": tags,
            "kind": "Client",
            "client_type": "nats",
        }
        return {k: v for k, v in info.items() if v}

    def _send_tracking(self, owner: Account, sample: Sample, responder: Conn | None) -> None:
        """Go ``sendTrackingLatency``: the response to a sampled request reached ``owner`` (the
        exporter); publish status 200 with the service, system and total latencies."""
        rc = sample.rc
        if rc is None:
            return
        now = time.time_ns()
        service_rtt = now - sample.ts
        requestor = self._client(rc, sample.share)
        resp = self._client(responder, True)
        req_rtt = rc.rtt
        resp_rtt = responder.rtt if responder is not None else 0
        total = req_rtt + service_rtt
        system = 0
        if resp_rtt > 0:
            system = time.time_ns() - now
            total += system
        service = max(service_rtt - resp_rtt, 0)  # sanitizeLatencyMetric
        start = sample.ts - req_rtt
        self._publish_latency(owner, sample, 200, requestor, resp, start, service, system, total)

    def _send_error(self, owner: Account, sample: Sample, status: int) -> None:
        """A sampled request that got no response: 400 (no reply subject), 408 (the requester
        stopped listening), 503 (nobody in the exporter took it), 504 (the threshold passed)."""
        rc = sample.rc
        requestor = self._client(rc, sample.share)
        start = sample.ts - (rc.rtt if rc is not None else 0)
        self._publish_latency(owner, sample, status, requestor, None, start, 0, 0, 0)

    def _publish_latency(
        self,
        owner: Account,
        sample: Sample,
        status: int,
        requestor: dict[str, Any] | None,
        responder: dict[str, Any] | None,
        start: int,
        service: int,
        system: int,
        total: int,
    ) -> None:
        """Publish a ``ServiceLatency`` event (Go field order, durations in nanoseconds, times in
        RFC 3339) on the export's results subject in ``owner``, as the server's own message."""
        sample.rc = None
        msg: dict[str, Any] = {
            "type": SERVICE_LATENCY_TYPE,
            "id": self._ids.next(),
            "timestamp": rfc3339nano(time.time_ns()),
            "status": status,
        }
        if status in _LATENCY_ERRORS:
            msg["description"] = _LATENCY_ERRORS[status]
        if requestor is not None:
            msg["requestor"] = requestor
        if responder is not None:
            msg["responder"] = responder
        if sample.header:
            msg["header"] = dict(sorted(sample.header.items()))  # Go marshals a map's keys sorted
        msg["start"] = rfc3339nano(start)
        msg["service"] = service
        msg["system"] = system
        msg["total"] = total
        # sent as a fresh message of the server (nats-server queues it for its send loop): not
        # part of the service chain being carried
        chain, self.chain = self.chain, []
        try:
            self.broker.deliver(owner, None, sample.latency.results, None, None, orjson.dumps(msg))
        finally:
            self.chain = chain
