"""broker.protocol: the sans-I/O client-protocol parser and the server frame builders.

Every operation, every error with nats-server's exact -ERR text (or none where nats-server closes
silently), split reads at every byte offset, and hypothesis properties: round trips through random
chunking, garbage never raising anything but ProtocolError, and the buffer bound.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker import protocol
from broker.protocol import (
    ERR_AUTHORIZATION,
    ERR_MAX_CONTROL_LINE,
    ERR_MAX_PAYLOAD,
    ERR_UNKNOWN_PROTOCOL,
    OK_FRAME,
    PING_FRAME,
    PONG_FRAME,
    Connect,
    HPub,
    Op,
    Parser,
    Ping,
    Pong,
    ProtocolError,
    Pub,
    Sub,
    Unsub,
    err,
    hmsg,
    info,
    msg,
)
from trustkit.errors import BrokerError, TrustkitError

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEADERS_ON = b'CONNECT {"headers":true}\r\n'
HDR = b"NATS/1.0\r\nA: b\r\n\r\n"


@pytest.fixture(params=[True, False], ids=["fast", "general"])
def fast(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Run a test with the PUB/HPUB fast paths on and off: both must agree."""
    old = Parser._fast
    Parser._fast = request.param
    try:
        yield request.param
    finally:
        Parser._fast = old


def parse(data: bytes, **kw: object) -> list[Op]:
    return Parser(**kw).feed(data)  # type: ignore[arg-type]


def parse_h(data: bytes) -> list[Op]:
    """Parse after a CONNECT that turns headers on (the CONNECT op is dropped)."""
    ops = Parser().feed(HEADERS_ON + data)
    assert ops[0] == Connect({"headers": True})
    return ops[1:]


def fails(data: bytes, **kw: object) -> ProtocolError:
    with pytest.raises(ProtocolError) as ei:
        Parser(**kw).feed(data)  # type: ignore[arg-type]
    return ei.value


def fails_h(data: bytes) -> ProtocolError:
    return fails(HEADERS_ON + data)


# --- every operation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "ops"),
    [
        (b"PUB foo 3\r\nabc\r\n", [Pub("foo", None, b"abc")]),
        (b"PUB foo _INBOX.x 3\r\nabc\r\n", [Pub("foo", "_INBOX.x", b"abc")]),
        (b"PUB foo 0\r\n\r\n", [Pub("foo", None, b"")]),
        (b"PUB foo 4\r\na\r\nb\r\n", [Pub("foo", None, b"a\r\nb")]),
        (b"PUB foo 000000003\r\nabc\r\n", [Pub("foo", None, b"abc")]),  # 9 digits is still a size
        (b"pub foo 1\r\nx\r\n", [Pub("foo", None, b"x")]),
        (b"pUb\tfoo \t r  1 \t\r\nx\r\n", [Pub("foo", "r", b"x")]),
        (b"PUB foo 1\nx\r\n", [Pub("foo", None, b"x")]),  # bare LF ends a control line
        (b"PUB foo\x0bbar 1\r\nx\r\n", [Pub("foo\x0bbar", None, b"x")]),  # only space/tab separate
        (b"PUB foo\rbar 1\r\nx\r\n", [Pub("foo\rbar", None, b"x")]),
        (b"PUB \xc3\xa9t\xc3\xa9 1\r\nx\r\n", [Pub("\u00e9t\u00e9", None, b"x")]),
        (b"PUB \xff 1\r\nx\r\n", [Pub("\udcff", None, b"x")]),  # undecodable byte kept, round-trips
        (b"PUB \nfoo 1\r\nx\r\n", [Pub("\nfoo", None, b"x")]),  # parser.go: LF right after the blanks
        (b"SUB foo 1\r\n", [Sub("foo", None, "1")]),
        (b"SUB foo.* workers 22\r\n", [Sub("foo.*", "workers", "22")]),
        (b"sub\tfoo\t\tq\t7\r\n", [Sub("foo", "q", "7")]),
        (b"SUB foo\r1\r\n", [Sub("foo", None, "1")]),  # client.go splitArg also splits on CR
        (b"UNSUB 1\r\n", [Unsub("1", None)]),
        (b"UNSUB 1 5\r\n", [Unsub("1", 5)]),
        (b"UNSUB 1 0\r\n", [Unsub("1", 0)]),
        (b"UNSUB 1 x\r\n", [Unsub("1", None)]),  # parseSize -1: nats-server unsubscribes at once
        (b"unsub   1   5  \r\n", [Unsub("1", 5)]),
        (b"PING\r\n", [Ping()]),
        (b"ping\n", [Ping()]),
        (b"PINGpong whatever\r\n", [Ping()]),  # parser.go OP_PING ignores all up to LF
        (b"PONG\r\n", [Pong()]),
        (b"+OK\r\n", []),  # accepted and ignored
        (b"INFO {}\r\n", []),  # a client's INFO is decoded, then ignored
        (b"INFO null\r\n", []),
        (b'CONNECT {"verbose":false,"name":"a b"}\r\n', [Connect({"verbose": False, "name": "a b"})]),
        (b"CONNECT{}\r\n", [Connect({})]),
        (b"connect \t {}\r\n", [Connect({})]),
        (b"CONNECT null\r\n", [Connect({})]),
        (b"CONNECT\n{}\r\n", [Connect({})]),  # LF as the first argument byte, as in parser.go
        (b"CONNECT {}\r\r\n", [Connect({})]),
    ],
)
def test_operations(data: bytes, ops: list[Op], fast: bool) -> None:
    assert parse(data) == ops


def test_hpub(fast: bool) -> None:
    assert parse_h(b"HPUB foo 18 20\r\n" + HDR + b"hi\r\n") == [HPub("foo", None, HDR, b"hi")]
    assert parse_h(b"HPUB foo r 18 18\r\n" + HDR + b"\r\n") == [HPub("foo", "r", HDR, b"")]
    assert parse_h(b"hpub\tfoo  r \t 0 2\r\nhi\r\n") == [HPub("foo", "r", b"", b"hi")]  # header size 0


def test_connect_fields_follow_go_json() -> None:
    """Go's encoding/json: names match case-insensitively, the last duplicate wins, null leaves a
    field alone, unknown names are kept as they are."""
    (op,) = parse(b'CONNECT {"VERBOSE":true,"Verbose":false,"Pedantic":null,"x-y":[1,{"a":2}]}\r\n')
    assert op == Connect({"verbose": False, "x-y": [1, {"a": 2}]})
    (op,) = parse('CONNECT {"n\u212aey":"k","\u017fig":"s"}\r\n'.encode())  # KELVIN SIGN, LONG S
    assert op == Connect({"nkey": "k", "sig": "s"})
    (op,) = parse(b'CONNECT {"name":"a\\ud800b","import":{"allow":["a",null]}}\r\n')
    assert op == Connect({"name": "a\ufffdb", "import": {"allow": ["a", None]}})
    (op,) = parse(b'CONNECT {"name":"\xff"}\r\n')  # invalid UTF-8 in a string: U+FFFD, as in Go
    assert op == Connect({"name": "\ufffd"})
    (op,) = parse(b'CONNECT {"protocol":-1}\r\n')  # a JSON int; the range check is the broker's
    assert op == Connect({"protocol": -1})


# --- errors: exact -ERR texts, or none where nats-server closes silently ----------------------


@pytest.mark.parametrize(
    ("data", "text", "message"),
    [
        # parser.go parseErr -> -ERR 'Unknown Protocol Operation'
        (b"XYZ\r\n", ERR_UNKNOWN_PROTOCOL, "parser error"),
        (b"\r\n", ERR_UNKNOWN_PROTOCOL, "parser error"),
        (b" PING\r\n", ERR_UNKNOWN_PROTOCOL, "parser error"),
        (b"PIN\r\n", ERR_UNKNOWN_PROTOCOL, "parser error"),
        (b"PUB\r\n", ERR_UNKNOWN_PROTOCOL, "parser error"),  # a blank must follow the verb
        (b"PUBX foo 1\r\n", ERR_UNKNOWN_PROTOCOL, "parser error"),
        (b"UNSUB\r\n", ERR_UNKNOWN_PROTOCOL, "parser error"),
        (b"-ERR\r\n", ERR_UNKNOWN_PROTOCOL, "parser error"),
        (b"MSG foo 1 1\r\nx\r\n", ERR_UNKNOWN_PROTOCOL, "parser error"),  # not a client operation
        (b"HMSG foo 1 0 0\r\n\r\n", ERR_UNKNOWN_PROTOCOL, "parser error"),
        (b"RS+ foo\r\n", ERR_UNKNOWN_PROTOCOL, "parser error"),  # route verbs
        (b"LS+ foo\r\n", ERR_UNKNOWN_PROTOCOL, "parser error"),
        (b"A+ foo\r\n", ERR_UNKNOWN_PROTOCOL, "parser error"),
        (b"PUB foo 3\r\nabcX\r\n", ERR_UNKNOWN_PROTOCOL, "parser error"),  # payload not followed by CRLF
        (b"PUB foo 3\r\nabc\n", ERR_UNKNOWN_PROTOCOL, "parser error"),  # bare LF after a payload
        (b"PUB foo 3\r\nabc\r\r", ERR_UNKNOWN_PROTOCOL, "parser error"),
        # client.go processPub: logged, connection closed, no -ERR
        (b"PUB foo\r\n", None, "processPub Parse Error"),
        (b"PUB \r\n", None, "processPub Parse Error"),
        (b"PUB a b c 1\r\n", None, "processPub Parse Error"),
        (b"PUB foo x\r\n", None, "processPub Bad or Missing Size"),
        (b"PUB foo -1\r\n", None, "processPub Bad or Missing Size"),
        (b"PUB foo +1\r\n", None, "processPub Bad or Missing Size"),
        (b"PUB foo 1_0\r\n", None, "processPub Bad or Missing Size"),
        (b"PUB foo 0000000001\r\n", None, "processPub Bad or Missing Size"),  # 10 digits
        (b"PUB foo 3\r\r\nabc\r\n", None, "processPub Bad or Missing Size"),  # size "3\r"
        (b"PUB foo\r 3\nabc\r\n", None, "processPub Parse Error"),  # a CR drops the last byte
        # client.go parseSub / processUnsub: logged, closed, no -ERR
        (b"SUB foo\r\n", None, "processSub Parse Error"),
        (b"SUB a b c d\r\n", None, "processSub Parse Error"),
        (b"SUB \r\n", None, "processSub Parse Error"),
        (b"UNSUB 1 2 3\r\n", None, "processUnsub Parse Error"),
        # client.go processConnect / processInfo: json.Unmarshal errors close without -ERR
        (b"CONNECT {bad\r\n", None, "CONNECT: invalid JSON"),
        (b"CONNECT\r\n", None, "CONNECT: invalid JSON"),
        (b"CONNECT {} x\r\n", None, "CONNECT: invalid JSON"),
        (b"CONNECT []\r\n", None, "not an object"),
        (b'CONNECT "x"\r\n', None, "not an object"),
        (b'CONNECT {"x":NaN}\r\n', None, "invalid JSON"),
        (b'CONNECT {"verbose":"yes"}\r\n', None, "'verbose' must be a JSON bool"),
        (b'CONNECT {"headers":1}\r\n', None, "'headers' must be a JSON bool"),
        (b'CONNECT {"name":1}\r\n', None, "'name' must be a JSON str"),
        (b'CONNECT {"protocol":1.0}\r\n', None, "'protocol' must be a JSON int"),
        (b'CONNECT {"protocol":"1"}\r\n', None, "'protocol' must be a JSON int"),
        (b'CONNECT {"protocol":true}\r\n', None, "'protocol' must be a JSON int"),
        (b'CONNECT {"protocol":9223372036854775808}\r\n', None, "'protocol' must be a JSON int"),
        (b'CONNECT {"import":{"allow":"a"}}\r\n', None, "not a subject permission"),
        (b'CONNECT {"export":[]}\r\n', None, "not a subject permission"),
        (b"INFO nope\r\n", None, "INFO: invalid JSON"),
        (b"INFO\r\n", None, "INFO: invalid JSON"),
        (b"INFO []\r\n", None, "not an object"),
        # client.go processErr: a client's -ERR is logged and the connection closed
        (b"-ERR 'boom'\r\n", None, "Client Error 'boom'"),
        # client.go maxPayloadViolation -> -ERR 'Maximum Payload Violation'
        (b"PUB foo 1048577\r\n", ERR_MAX_PAYLOAD, "maximum payload exceeded: 1048577 vs 1048576"),
    ],
)
def test_errors(data: bytes, text: str | None, message: str, fast: bool) -> None:
    e = fails(data)
    assert e.err_text == text
    assert message in str(e)
    assert e.close is True
    assert isinstance(e, BrokerError) and isinstance(e, TrustkitError)
    assert e.code == "protocol"


@pytest.mark.parametrize(
    ("data", "text", "message"),
    [
        (b"HPUB foo 3\r\n", None, "processHeaderPub Parse Error"),
        (b"HPUB a b c d e\r\n", None, "processHeaderPub Parse Error"),
        (b"HPUB foo x 3\r\n", None, "processHeaderPub Bad or Missing Header Size"),
        (b"HPUB foo -1 3\r\n", None, "processHeaderPub Bad or Missing Header Size"),
        (b"HPUB foo 1 x\r\n", None, "processHeaderPub Bad or Missing Total Size"),
        (b"HPUB foo 1 1234567890\r\n", None, "processHeaderPub Bad or Missing Total Size"),
        (b"HPUB foo 5 3\r\n", None, "processHeaderPub Header Size larger then TotalSize"),
        (b"HPUB foo 1 1048577\r\n", ERR_MAX_PAYLOAD, "maximum payload exceeded"),
        (b"HPUB foo 0 1\r\nxY", ERR_UNKNOWN_PROTOCOL, "parser error"),
    ],
)
def test_hpub_errors(data: bytes, text: str | None, message: str, fast: bool) -> None:
    e = fails_h(data)
    assert (e.err_text, message in str(e)) == (text, True), str(e)


def test_hpub_needs_headers_negotiated(fast: bool) -> None:
    """client.go processHeaderPub: ErrMsgHeadersNotSupported closes without -ERR unless the client
    sent "headers": true and the server supports headers."""
    hpub = b"HPUB foo 0 1\r\nx\r\n"
    for data, kw in [
        (hpub, {}),
        (b"CONNECT {}\r\n" + hpub, {}),
        (b'CONNECT {"headers":false}\r\n' + hpub, {}),
        (b'CONNECT {"headers":true}\r\nCONNECT {"headers":false}\r\n' + hpub, {}),
        (HEADERS_ON + hpub, {"server_headers": False}),
    ]:
        e = fails(data, **kw)
        assert (e.err_text, str(e)) == (None, "message headers not supported")
    # A later CONNECT without the field (or with null) leaves it on, as Go's c.opts does.
    p = Parser()
    assert not p.headers
    ops = p.feed(HEADERS_ON + b'CONNECT {"headers":null}\r\nCONNECT {}\r\n' + hpub)
    assert p.headers and ops[-1] == HPub("foo", None, b"", b"x")


def test_payload_limit_is_checked_before_the_payload_arrives(fast: bool) -> None:
    p = Parser(max_payload=10)
    assert p.feed(b"PUB foo 10\r\n0123456789\r\n") == [Pub("foo", None, b"0123456789")]
    with pytest.raises(ProtocolError) as ei:
        p.feed(b"PUB foo 11\r\n")  # no payload byte sent yet
    assert ei.value.err_text == ERR_MAX_PAYLOAD
    assert p.buffered == 0
    assert ei.value.frame == b"-ERR 'Maximum Payload Violation'\r\n"


def test_max_payload_can_be_lowered_between_feeds() -> None:
    p = Parser()
    p.feed(b"CONNECT {}\r\n")
    p.max_payload = 2  # e.g. the user JWT's limit, applied after CONNECT
    assert p.feed(b"PUB a 2\r\nxy\r\n") == [Pub("a", None, b"xy")]
    with pytest.raises(ProtocolError, match="3 vs 2"):
        p.feed(b"PUB a 3\r\n")


@pytest.mark.parametrize("verb", [b"PUB ", b"SUB ", b"UNSUB ", b"HPUB ", b"CONNECT ", b"INFO ", b"-ERR "])
def test_control_line_limit(verb: bytes, fast: bool) -> None:
    """parser.go overMaxControlLineLimit: the argument (after the verb and its blanks, without
    the CR) may be max_control_line bytes long, one more fails with the errCtx's bare text."""
    mcl = 40

    def outcome(n: int) -> str | None:
        p = Parser(max_control_line=mcl)
        p.feed(HEADERS_ON)
        try:
            p.feed(verb + b" \t " + b"x" * n + b"\r\n")
        except ProtocolError as e:
            return e.err_text
        return "ok"

    assert outcome(mcl) != ERR_MAX_CONTROL_LINE
    assert outcome(mcl + 1) == ERR_MAX_CONTROL_LINE


def test_control_line_limit_without_newline_and_without_buffering() -> None:
    p = Parser(max_control_line=100)
    p.feed(b"SUB " + b"a" * 60)
    assert p.buffered <= 100 + 8
    with pytest.raises(ProtocolError) as ei:
        p.feed(b"a" * 41)  # 101 argument bytes, no newline yet
    assert ei.value.err_text == ERR_MAX_CONTROL_LINE
    assert ei.value.frame == b"-ERR 'maximum control line exceeded'\r\n"
    # A trailing CR does not count (it would be dropped), one byte more does.
    p = Parser(max_control_line=100)
    p.feed(b"SUB " + b"a" * 100 + b"\r")
    with pytest.raises(ProtocolError):
        p.feed(b"a")


def test_blanks_after_the_verb_and_ping_trailers_are_not_buffered() -> None:
    """nats-server skips them without a limit, so they cannot count against one either."""
    p = Parser(max_control_line=16)
    p.feed(b"PUB")
    for _ in range(100):
        p.feed(b" \t" * 500)
        assert p.buffered <= 8
    assert p.feed(b"foo 1\r\nx\r\n") == [Pub("foo", None, b"x")]
    p.feed(b"PING")
    for _ in range(100):
        p.feed(b"x" * 1000)
        assert p.buffered == 0
    assert p.feed(b"\r\nPONG\r\n") == [Ping(), Pong()]


def test_bad_verb_fails_at_once_without_a_newline() -> None:
    p = Parser()
    assert p.feed(b"PU") == []
    with pytest.raises(ProtocolError) as ei:
        p.feed(b"X")
    assert ei.value.err_text == ERR_UNKNOWN_PROTOCOL


def test_require_connect() -> None:
    """parser.go OP_START while auth is pending: any first byte but C/c is an Authorization
    Violation; a CONNECT opens the gate (the broker closes if authentication fails)."""
    for data in [b"PING\r\n", b"PUB foo 1\r\nx\r\n", b"SUB foo 1\r\n", b"+OK\r\n", b"XYZ"]:
        e = fails(data, require_connect=True)
        assert e.err_text == ERR_AUTHORIZATION
    assert fails(b"CX", require_connect=True).err_text == ERR_UNKNOWN_PROTOCOL
    p = Parser(require_connect=True)
    assert p.feed(b"CONNECT {}\r\nPING\r\nPUB a 1\r\nx\r\n") == [Connect({}), Ping(), Pub("a", None, b"x")]
    assert not p.require_connect


def test_error_carries_earlier_ops_and_is_sticky(fast: bool) -> None:
    p = Parser()
    with pytest.raises(ProtocolError) as ei:
        p.feed(b"PING\r\nPUB a 1\r\nx\r\nSUB a 1\r\nBAD\r\nPING\r\n")
    assert ei.value.ops == [Ping(), Pub("a", None, b"x"), Sub("a", None, "1")]
    with pytest.raises(ProtocolError) as again:
        p.feed(b"PING\r\n")
    assert again.value.err_text == ERR_UNKNOWN_PROTOCOL and again.value.ops == []


def test_a_clean_connection_is_never_mistaken_for_broken(fast: bool) -> None:
    p = Parser()
    assert p.feed(b"") == []
    assert p.feed(b"PUB a 3\r\n") == []
    assert p.buffered > 0
    assert p.feed(b"ab") == []
    assert p.feed(b"c\r") == []
    assert p.feed(b"\n") == [Pub("a", None, b"abc")]
    assert p.buffered == 0
    assert Parser().feed(bytearray(b"PING\r\n")) == [Ping()]
    assert Parser().feed(memoryview(b"PING\r\n")) == [Ping()]  # type: ignore[arg-type]


# --- frame builders ---------------------------------------------------------------------------


def test_frames() -> None:
    assert PING_FRAME == b"PING\r\n" and PONG_FRAME == b"PONG\r\n" and OK_FRAME == b"+OK\r\n"
    assert err("Authorization Violation") == b"-ERR 'Authorization Violation'\r\n"
    assert err('Permissions Violation for Publish to "a.b"') == (
        b"-ERR 'Permissions Violation for Publish to \"a.b\"'\r\n"
    )
    with pytest.raises(BrokerError):
        err("x\r\nPING")
    assert msg("foo.bar", "9", None, b"hi") == b"MSG foo.bar 9 2\r\nhi\r\n"
    assert msg("foo", "9", "_INBOX.1", b"") == b"MSG foo 9 _INBOX.1 0\r\n\r\n"
    assert msg(b"foo", b"9", b"r", b"x") == b"MSG foo 9 r 1\r\nx\r\n"
    assert msg("\udcff", "1", None, b"") == b"MSG \xff 1 0\r\n\r\n"  # surrogate escapes round-trip
    assert hmsg("foo", "9", None, HDR, b"hi") == b"HMSG foo 9 18 20\r\n" + HDR + b"hi\r\n"
    assert hmsg("foo", "9", "r", HDR, b"") == b"HMSG foo 9 r 18 18\r\n" + HDR + b"\r\n"
    frame = info({"server_id": "N1", "headers": True, "max_payload": 1048576, "nonce": "abc"})
    assert frame == b'INFO {"server_id":"N1","headers":true,"max_payload":1048576,"nonce":"abc"}\r\n'
    assert orjson.loads(frame[5:-2])["max_payload"] == 1048576
    assert ProtocolError("x").frame == b""


# --- split boundaries -------------------------------------------------------------------------

STREAM = b"".join(
    [
        b'CONNECT {"verbose":false,"pedantic":false,"name":"my client","headers":true,"lang":"python"}\r\n',
        b"PING\r\n",
        b"SUB sensors.* workers 1\r\n",
        b"SUB sensors.> 2\r\n",
        b"PUB sensors.1 5\r\nhello\r\n",
        b"PUB sensors.2 _INBOX.abc.1 12\r\nhello\r\nworld\r\n",
        b"HPUB sensors.3 18 22\r\n" + HDR + b"data\r\n",
        b"HPUB sensors.4 _INBOX.abc.2 18 18\r\n" + HDR + b"\r\n",
        b"pub\tsensors.5  \t 0\r\n\r\n",
        b"UNSUB 1 10\r\n",
        b"PONG\r\n",
        b"+OK\r\n",
        b"INFO {}\r\n",
        b"PUB x 1\nz\r\n",
        b"UNSUB 2\r\n",
        b"PING\r\n",
    ]
)
STREAM_OPS: list[Op] = [
    Connect({"verbose": False, "pedantic": False, "name": "my client", "headers": True, "lang": "python"}),
    Ping(),
    Sub("sensors.*", "workers", "1"),
    Sub("sensors.>", None, "2"),
    Pub("sensors.1", None, b"hello"),
    Pub("sensors.2", "_INBOX.abc.1", b"hello\r\nworld"),
    HPub("sensors.3", None, HDR, b"data"),
    HPub("sensors.4", "_INBOX.abc.2", HDR, b""),
    Pub("sensors.5", None, b""),
    Unsub("1", 10),
    Pong(),
    Pub("x", None, b"z"),
    Unsub("2", None),
    Ping(),
]


def feed_chunks(chunks: list[bytes], **kw: object) -> list[Op]:
    p = Parser(**kw)  # type: ignore[arg-type]
    ops: list[Op] = []
    for c in chunks:
        ops += p.feed(c)
    assert p.buffered == 0
    return ops


def test_whole_stream(fast: bool) -> None:
    assert Parser().feed(STREAM) == STREAM_OPS


def test_split_at_every_offset(fast: bool) -> None:
    for i in range(len(STREAM) + 1):
        assert feed_chunks([STREAM[:i], STREAM[i:]]) == STREAM_OPS, i


def test_split_at_every_pair_of_offsets_near_a_payload() -> None:
    start = STREAM.index(b"PUB sensors.2")
    end = STREAM.index(b"pub\tsensors.5")
    for i in range(start, end):
        for j in range(i, end + 1):
            assert feed_chunks([STREAM[:i], STREAM[i:j], STREAM[j:]]) == STREAM_OPS, (i, j)


def test_byte_by_byte(fast: bool) -> None:
    assert feed_chunks([STREAM[i : i + 1] for i in range(len(STREAM))]) == STREAM_OPS


def test_errors_do_not_depend_on_the_split() -> None:
    for bad, text in [
        (b"PUB foo 3\r\nabcX\r\n", ERR_UNKNOWN_PROTOCOL),
        (b"PUB foo 2000000\r\n", ERR_MAX_PAYLOAD),
        (b"SUB " + b"a" * 5000 + b" 1\r\n", ERR_MAX_CONTROL_LINE),
        (b"PUB a\r 1\nx\r\n", None),
    ]:
        data = STREAM + bad
        for i in range(len(STREAM) - 30, len(data) + 1, 7):
            p = Parser()
            ops: list[Op] = []
            with pytest.raises(ProtocolError) as ei:
                for c in (data[:i], data[i:]):
                    ops += p.feed(c)
            assert ops + ei.value.ops == STREAM_OPS
            assert ei.value.err_text == text


# --- properties -------------------------------------------------------------------------------

token = st.text(st.sampled_from("abcXYZ019_-$*>é"), min_size=1, max_size=12)
subject = st.lists(token, min_size=1, max_size=4).map(".".join)
payload = st.binary(max_size=300)
blank = st.sampled_from([" ", "\t", "  ", " \t "])
eol = st.sampled_from([b"\r\n", b"\n"])


@st.composite
def operation(draw: st.DrawFn) -> tuple[bytes, Op | None]:
    """One operation in some valid spelling, and the op it must parse to."""
    kind = draw(st.sampled_from(["pub", "hpub", "sub", "unsub", "ping", "pong", "ok", "connect"]))
    verb_case = draw(st.sampled_from([str.upper, str.lower, str.title]))

    def line(verb: str, *args: str) -> bytes:
        sep = draw(blank)
        return (verb_case(verb) + sep + sep.join(args)).encode() + draw(eol)

    reply = draw(st.none() | subject)
    if kind == "pub":
        s, p = draw(subject), draw(payload)
        args = [s] + ([reply] if reply else []) + [str(len(p))]
        return line("pub", *args) + p + b"\r\n", Pub(s, reply, p)
    if kind == "hpub":
        s, p = draw(subject), draw(payload)
        h = b"NATS/1.0\r\nK: " + draw(st.binary(max_size=20)).hex().encode() + b"\r\n\r\n"
        args = [s] + ([reply] if reply else []) + [str(len(h)), str(len(h) + len(p))]
        return line("hpub", *args) + h + p + b"\r\n", HPub(s, reply, h, p)
    if kind == "sub":
        s, q, sid = draw(subject), draw(st.none() | token), str(draw(st.integers(0, 10**6)))
        return line("sub", *([s] + ([q] if q else []) + [sid])), Sub(s, q, sid)
    if kind == "unsub":
        sid, mx = str(draw(st.integers(0, 10**6))), draw(st.none() | st.integers(0, 10**8))
        return line("unsub", *([sid] + ([str(mx)] if mx is not None else []))), Unsub(sid, mx)
    if kind == "ping":
        return verb_case("ping").encode() + draw(eol), Ping()
    if kind == "pong":
        return verb_case("pong").encode() + draw(eol), Pong()
    if kind == "ok":
        return b"+OK" + draw(eol), None
    name = draw(st.text(max_size=20))
    body = orjson.dumps({"headers": True, "verbose": False, "name": name})
    return b"CONNECT " + body + draw(eol), Connect({"headers": True, "verbose": False, "name": name})


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@PROPS
@given(st.lists(operation(), max_size=12), st.lists(st.integers(0, 10**6), max_size=12))
def test_roundtrip_in_random_chunks(ops: list[tuple[bytes, Op | None]], cuts: list[int]) -> None:
    data = HEADERS_ON + b"".join(b for b, _ in ops)
    expected = [Connect({"headers": True})] + [op for _, op in ops if op is not None]
    assert feed_chunks(cut(data, cuts)) == expected
    old = Parser._fast
    Parser._fast = False
    try:
        assert feed_chunks([data]) == expected
    finally:
        Parser._fast = old


MCL, MAXP = 64, 128
BOUND = MCL + MAXP + 16


def check_bounded(chunks: list[bytes], **kw: object) -> None:
    """Feed chunks until the end or a ProtocolError; the buffer stays bounded throughout."""
    p = Parser(max_control_line=MCL, max_payload=MAXP, **kw)  # type: ignore[arg-type]
    for c in chunks:
        try:
            ops = p.feed(c)
        except ProtocolError as e:
            assert e.err_text in (
                None,
                ERR_UNKNOWN_PROTOCOL,
                ERR_MAX_CONTROL_LINE,
                ERR_MAX_PAYLOAD,
                ERR_AUTHORIZATION,
            )
            return
        assert all(isinstance(op, Connect | Pub | HPub | Sub | Unsub | Ping | Pong) for op in ops)
        for op in ops:
            if isinstance(op, Pub | HPub):
                assert len(op.payload) + len(getattr(op, "headers", b"")) <= MAXP
        assert p.buffered <= BOUND, p.buffered


VERBS = [b"PUB ", b"HPUB ", b"SUB ", b"UNSUB ", b"PING", b"PONG", b"+OK", b"-ERR ", b"CONNECT ", b"INFO "]
PIECES = [b"\r\n", b"\n", b"\r", b" ", b"\t", b"foo", b"1", b"99", b"12 20", b"{}", b"NATS/1.0\r\n\r\n"]
ODD = [b"pub\t", b"a" * 70, b"x" * 200, b"200", b"64", b"\x00", b"\xff", b"MSG "]
protocolish = st.lists(st.sampled_from([*VERBS, *PIECES, *ODD]), max_size=40).map(b"".join)


@PROPS
@given(st.binary(max_size=600) | protocolish, st.lists(st.integers(0, 10**6), max_size=10), st.booleans())
def test_garbage_only_raises_protocol_error_and_stays_bounded(
    data: bytes, cuts: list[int], gate: bool
) -> None:
    check_bounded(cut(HEADERS_ON + data, cuts), require_connect=gate)
    check_bounded(cut(data, cuts))


@PROPS
@given(st.lists(operation(), max_size=8), st.integers(0, 3000), st.sampled_from([b"\r", b"a", b" "]))
def test_long_lines_and_big_payloads_stay_bounded(
    ops: list[tuple[bytes, Op | None]], n: int, filler: bytes
) -> None:
    data = HEADERS_ON + b"".join(b for b, _ in ops)
    rng = random.Random(n)
    tail = rng.choice([b"SUB ", b"PUB foo ", b"CONNECT ", b"PUB foo 100\r\n", b"PING"]) + filler * n
    chunks = [data] + [tail[i : i + 37] for i in range(0, len(tail), 37)]
    check_bounded(chunks)


def test_all_names_exported() -> None:
    for name in protocol.__all__:
        assert hasattr(protocol, name), name
