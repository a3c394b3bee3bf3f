"""NATS subjects: validation and wildcard matching — the only matcher in trustkit.

A subject is a ``.``-separated list of non-empty tokens without white space. In a *pattern*, a
token that is exactly ``*`` matches one token and a final token ``>`` matches one or more tokens
(nats-server sublist semantics). Claims validation, callout policy, broker permissions and routing
all use this module.
"""

from __future__ import annotations

import re
from functools import lru_cache

from trustkit.errors import SubjectError

__all__ = [
    "has_wildcards",
    "is_subset",
    "is_valid",
    "matches",
    "tokens",
    "validate",
]

_WHITESPACE_RE = re.compile(r"[ \t\r\n\f\v]")


def tokens(subject: str) -> list[str]:
    return subject.split(".")


def validate(subject: str, *, wildcards: bool = True) -> None:
    """Raise :class:`SubjectError` naming the problem unless ``subject`` is well formed.

    ``wildcards=False`` requires a literal subject (what a client may publish to).
    """
    if not isinstance(subject, str):
        raise SubjectError("subject must be a string")
    problem = _problem(subject, wildcards)
    if problem is not None:
        raise SubjectError(problem)


@lru_cache(maxsize=16384)
def _problem(subject: str, wildcards: bool) -> str | None:
    """The reason ``subject`` is invalid, or None (cached: permission subjects repeat)."""
    if subject == "":
        return "subject cannot be empty"
    if _WHITESPACE_RE.search(subject):
        return f"subject {subject!r} cannot contain white space"
    toks = subject.split(".")
    last = len(toks) - 1
    for i, tok in enumerate(toks):
        if tok == "":
            return f"subject {subject!r} has an empty token"
        if tok == ">":
            if not wildcards:
                return f"subject {subject!r} cannot contain wildcards"
            if i != last:
                return f"subject {subject!r}: '>' must be the last token"
        elif tok == "*" and not wildcards:
            return f"subject {subject!r} cannot contain wildcards"
    return None


def is_valid(subject: str, *, wildcards: bool = True) -> bool:
    return isinstance(subject, str) and _problem(subject, wildcards) is None


def has_wildcards(subject: str) -> bool:
    """True if any token is exactly ``*`` or ``>``."""
    return any(t == "*" or t == ">" for t in subject.split("."))


@lru_cache(maxsize=8192)
def _pattern_tokens(pattern: str) -> tuple[str, ...]:
    return tuple(pattern.split("."))


def matches(pattern: str, subject: str) -> bool:
    """True if the literal ``subject`` is matched by ``pattern`` (which may hold wildcards)."""
    pt = _pattern_tokens(pattern)
    st = subject.split(".")
    n = len(pt)
    for i, tok in enumerate(pt):
        if tok == ">" and i == n - 1:
            return len(st) > i
        if i >= len(st):
            return False
        if tok != "*" and tok != st[i]:
            return False
    return len(st) == n


def is_subset(subject: str, pattern: str) -> bool:
    """True if every subject matched by ``subject`` (itself maybe a pattern) is matched by ``pattern``.

    Used for import/activation containment and for checking wildcard subscriptions against
    permissions. ``a.*`` ⊆ ``a.>``; ``a.>`` ⊄ ``a.*``; ``*`` in ``subject`` needs ``*``/``>`` in
    ``pattern`` at that place.
    """
    pt = _pattern_tokens(pattern)
    st = subject.split(".")
    n = len(pt)
    for i, tok in enumerate(pt):
        if tok == ">" and i == n - 1:
            return len(st) > i
        if i >= len(st):
            return False
        mine = st[i]
        if mine == ">":
            return False  # ">" covers more tokens than anything but ">" here
        if tok == "*":
            continue
        if tok != mine:
            return False
    return len(st) == n
