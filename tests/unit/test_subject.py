"""Subjects: validation, wildcard matching and containment (the one matcher of trustkit)."""

from __future__ import annotations

import pytest

from trustkit import subject
from trustkit.errors import SubjectError


@pytest.mark.parametrize(
    "good",
    [
        "a",
        "a.b",
        "a.b.c",
        "*",
        ">",
        "a.*",
        "a.>",
        "*.b.>",
        "$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE",
        "a*b.c>",
        "_INBOX.x",
    ],
)
def test_valid_subjects(good: str) -> None:
    subject.validate(good)
    assert subject.is_valid(good)


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("", "empty"),
        ("a..b", "empty token"),
        (".a", "empty token"),
        ("a.", "empty token"),
        (".", "empty token"),
        ("a b", "white space"),
        ("a\tb", "white space"),
        ("a\nb", "white space"),
        (" a", "white space"),
        ("a.b ", "white space"),
        ("a.>.b", "'>' must be the last token"),
        (">.a", "'>' must be the last token"),
    ],
)
def test_invalid_subjects(bad: str, fragment: str) -> None:
    with pytest.raises(SubjectError, match=fragment):
        subject.validate(bad)
    assert not subject.is_valid(bad)


@pytest.mark.parametrize("wild", ["*", ">", "a.*", "a.>", "a.*.c", "*.b"])
def test_literal_only_refuses_wildcards(wild: str) -> None:
    with pytest.raises(SubjectError, match="cannot contain wildcards"):
        subject.validate(wild, wildcards=False)
    assert not subject.is_valid(wild, wildcards=False)
    assert subject.is_valid(wild)


def test_literal_only_accepts_wildcard_characters_inside_tokens() -> None:
    subject.validate("a*b.c>", wildcards=False)
    subject.validate("a.b", wildcards=False)


def test_non_string_is_a_subject_error() -> None:
    with pytest.raises(SubjectError):
        subject.validate(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pattern", "subj", "expected"),
    [
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.*", "a", False),
        ("a.*", "b.c", False),
        ("a.>", "a", False),
        ("a.>", "a.b", True),
        ("a.>", "a.b.c", True),
        ("a.>", "b.c", False),
        (">", "a", True),
        (">", "a.b.c.d", True),
        ("*", "a", True),
        ("*", "a.b", False),
        ("a.b", "a.b", True),
        ("a.b", "a.c", False),
        ("a.b", "a.b.c", False),
        ("a.b", "a", False),
        ("*.b.*", "x.b.y", True),
        ("*.b.*", "x.c.y", False),
        ("a.*.>", "a.b", False),
        ("a.*.>", "a.b.c", True),
        ("a*", "ab", False),  # '*' inside a token is a literal character
        ("a*", "a*", True),
    ],
)
def test_matches(pattern: str, subj: str, expected: bool) -> None:
    assert subject.matches(pattern, subj) is expected


@pytest.mark.parametrize(
    ("sub", "sup", "expected"),
    [
        ("a.b", "a.*", True),
        ("a.b", "a.>", True),
        ("a.*", "a.>", True),
        ("a.>", "a.*", False),
        ("a.>", "a.>", True),
        ("a.*", "a.*", True),
        ("a.*", "a.b", False),
        ("*", ">", True),
        (">", "*", False),
        ("a.*.c", "a.>", True),
        ("a.*.c", "a.*.*", True),
        ("a.*.c", "a.b.c", False),
        ("a.b.>", "a.>", True),
        ("a.>", "a.b.>", False),
        (">", "a.>", False),
        ("a", "a.>", False),
        ("a.b", "a.b", True),
        ("a.b", "a.c", False),
        ("a.b.c", "a.b", False),
    ],
)
def test_is_subset(sub: str, sup: str, expected: bool) -> None:
    assert subject.is_subset(sub, sup) is expected


@pytest.mark.parametrize(
    ("subj", "expected"),
    [
        ("a.b", False),
        ("a.*", True),
        ("a.>", True),
        ("*", True),
        (">", True),
        ("a.*b", False),
        ("a>.b", False),
        ("a.b*", False),
        ("*.b", True),
    ],
)
def test_has_wildcards(subj: str, expected: bool) -> None:
    assert subject.has_wildcards(subj) is expected


def test_tokens() -> None:
    assert subject.tokens("a.b.c") == ["a", "b", "c"]
