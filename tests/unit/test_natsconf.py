"""trustkit.natsconf: nats-server's config syntax (the reader the broker and the callout doctor share)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustkit.errors import TrustkitError
from trustkit.natsconf import NatsConfError, parse_conf, parse_conf_file, written


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
        ("port: 1\ninclude ./other.conf\n", "cfg:2: include ./other.conf: no directory"),
        ("a: $TK_UNSET_VAR\n", "cfg:1: variable reference for 'TK_UNSET_VAR' can not be found"),
        ("b {c: 1}\na: $c\n", "cfg:2: variable reference for 'c' can not be found"),
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
        parse_conf("a: $TK_UNSET_VAR", "x.conf", error=Mine)


def test_variables_resolve_like_nats_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TK_PORT", "4333")
    monkeypatch.setenv("TK_SIZE", "2MB")
    monkeypatch.setenv("TK_BLOCK", "{ user: env, password: pw }")
    monkeypatch.setenv("TK_LOOP", "$TK_LOOP")
    conf = parse_conf(
        """
        Token: "outer"
        pass = 'shh'
        port: $TK_PORT
        max_payload: $TK_SIZE
        hash: $2a$11$abcdefghijklmnopqrstuv
        authorization {
          token: "inner"
          users: [ {user: a, password: $pass}, $TK_BLOCK ]
          t1: $token
          t2: $Token
        }
        """,
        "cfg",
    )
    assert conf["port"] == 4333 and conf["max_payload"] == 2 * 1024**2  # env values are parsed
    assert conf["hash"] == "$2a$11$abcdefghijklmnopqrstuv"  # a bcrypt hash, not a variable
    auth = conf["authorization"]
    assert auth["users"] == [{"user": "a", "password": "shh"}, {"user": "env", "password": "pw"}]
    # keys match as spelt, the innermost block first; "token" is only defined inside
    assert auth["t1"] == "inner" and auth["t2"] == "outer"
    with pytest.raises(NatsConfError, match="cycle"):
        parse_conf("a: $TK_LOOP", "cfg")
    with pytest.raises(NatsConfError, match="'a_missing' can not be found"):
        parse_conf("a: \"$TK_PORT\"\nb: $a_missing", "cfg")
    assert parse_conf("a: \"$TK_PORT\"")["a"] == "$TK_PORT"  # quoted: a plain string


def test_include_like_nats_server(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "auth.conf").write_text("users: [ {user: a, password: $secret} ]\nsecret: x\n")
    (tmp_path / "sub" / "inner.conf").write_text("include 'leaf.conf'\nport: 2\n")
    (tmp_path / "sub" / "leaf.conf").write_text("leaf: true\n")
    (tmp_path / "main.conf").write_text(
        "port: 1\nInclude sub/inner.conf\nsecret: y\nauthorization {\n  include \"sub/auth2.conf\"\n}\n"
    )
    (tmp_path / "sub" / "auth2.conf").write_text("secret: z\nusers: [ {user: a, password: $secret} ]\n")
    conf = parse_conf_file(tmp_path / "main.conf")
    # the include sets its keys where it stands (a later key wins); its own includes resolve
    # against its own directory; variables of the including file are not seen inside it
    assert conf["port"] == 2 and conf["leaf"] is True
    assert conf["authorization"]["users"] == [{"user": "a", "password": "z"}]
    (tmp_path / "bad.conf").write_text("include sub/auth.conf\n")
    with pytest.raises(NatsConfError, match=r"auth\.conf:1: variable reference for 'secret'"):
        parse_conf_file(tmp_path / "bad.conf")
    (tmp_path / "missing.conf").write_text("\n\ninclude nothere.conf\n")
    with pytest.raises(NatsConfError, match=r"missing\.conf:3: include nothere\.conf: cannot read"):
        parse_conf_file(tmp_path / "missing.conf")
    (tmp_path / "self.conf").write_text("include self.conf\n")
    with pytest.raises(NatsConfError, match="nested more than"):
        parse_conf_file(tmp_path / "self.conf")
    # a quoted key named include is just a key
    assert parse_conf('"include": 1')["include"] == 1
