"""trustkit.natsconf: nats-server's config syntax (the reader the broker and the callout doctor share)."""

from __future__ import annotations

import pytest

from trustkit.errors import TrustkitError
from trustkit.natsconf import NatsConfError, parse_conf, written


def test_syntax_variants() -> None:
    conf = parse_conf(
        """
        # comment
        port: 4222
        Host = "127.0.0.1"   // trailing comment
        max_payload 1MB
        debug: on; trace: false
        authorization {
          users = [ {user: a, password: 'p w'}, {user: "b\\"q", password: x} ]
        }
        accounts { APP: { users: [] } }
        """
    )
    assert conf["port"] == 4222 and conf["host"] == "127.0.0.1" and conf["max_payload"] == 1024**2
    assert conf["debug"] is True and conf["trace"] is False
    users = [{"user": "a", "password": "p w"}, {"user": 'b"q', "password": "x"}]
    assert conf["authorization"]["users"] == users
    assert list(conf["accounts"]) == ["app"] and written(conf["accounts"], "app") == "APP"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("port: 1\ninclude ./other.conf\n", "cfg:2: include is not supported"),
        ("a: $VAR\n", "cfg:1: variables ($VAR) are not supported"),
        ("a {\n b: 1\n", "missing '}'"),
        ('a: "open\n', "unterminated string"),
        ("a: [1, 2\n", "missing ']'"),
    ],
)
def test_errors_name_the_line(text: str, fragment: str) -> None:
    with pytest.raises(NatsConfError) as info:
        parse_conf(text, "cfg")
    assert fragment in str(info.value) and isinstance(info.value, TrustkitError)


def test_the_caller_chooses_the_error_type() -> None:
    class Mine(Exception):
        pass

    with pytest.raises(Mine, match=r"x\.conf:1"):
        parse_conf("a: $V", "x.conf", error=Mine)
