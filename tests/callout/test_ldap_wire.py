"""callout.backends.ldap's own LDAP wire code, against ldap3 and a scripted peer (no slapd).

The backend encodes its bind and search requests itself and reads the answers with ldap3's fast
decoder (ldap3's pyasn1 path costs ~0.5 ms per login). Guards that boundary:

* every request is byte for byte what ldap3 (``Connection.search`` / ``Connection.bind`` defaults)
  would send, for many filter templates and hostile values, including the cases left to ldap3;
* the password is SASLprep'd exactly as ldap3 does;
* answers are framed and matched by message ID whatever the TCP segmentation, and anything
  unexpected (wrong ID, Notice of Disconnection, garbage, oversize, silence, a closed socket) is a
  communication error that kills the connection, never an answer to the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import ldap3
import pytest
from ldap3.core.exceptions import LDAPCommunicationError, LDAPException, LDAPSASLPrepError
from ldap3.operation.bind import bind_operation
from ldap3.operation.search import search_operation
from ldap3.protocol.rfc4511 import LDAPMessage, MessageID, ProtocolOp
from ldap3.protocol.sasl.sasl import validate_simple_password
from ldap3.utils.asn1 import encode
from ldap3.utils.dn import safe_dn

from callout.backends.ldap import (
    _bind_request,
    _FilterTemplate,
    _Link,
    _message,
    _prep_password,
    _SearchTemplate,
)

T = TypeVar("T")
BASE = "ou=people,dc=example,dc=com"

TEMPLATES = [
    "(uid={username})",
    "(&(objectClass=inetOrgPerson)(uid={username}))",
    "(|(uid={username})(mail={username}@example.com))",
    "(&(|(uid={username})(cn={username}))(!(nsAccountLock=TRUE)))",
    "(cn=*{username}*)",
    "(cn={username}*)",
    "(cn=x*{username})",
    "(uid=pre-{username}-post)",
    "(uid~={username})",
    "(uid>={username})",
    "(uid<={username})",
    "(uid:caseExactMatch:={username})",
    "(uid:dn:2.5.13.5:={username})",
    "( uid = {username} )",
    "(cn=a\\2ab{username})",  # an escape of the template's own: left to ldap3
    "(member={username})",
]
VALUES = [
    "alice",
    "ALICE",
    "dave*",
    "*",
    ")(uid=*",
    "alice)(|(uid=*",
    "a(b)c",
    "back\\slash",
    "\\2a",
    "\\5c2a",
    "\\",
    "é",
    "日本語のユーザー",
    "Zoë O'Brien",
    "a b",
    " lead",
    "trail ",
    "\u00a0nbsp\u3000",
    "tab\tin",
    "x" * 300,
    "uid=dave\\2a,ou=people,dc=example,dc=com",  # a DN, as the group search sends it
    "cn=a\\,b+sn=c,dc=x",
]


def ldap3_message(msg_id: int, kind: str, request: Any) -> bytes:
    """What ldap3's BaseStrategy.send puts on the wire."""
    message = LDAPMessage()
    message["messageID"] = MessageID(msg_id)
    message["protocolOp"] = ProtocolOp().setComponentByName(kind, request)
    return bytes(encode(message))


def ldap3_search(
    base: str, text: str, scope: int, attributes: list[str], size_limit: int, time_limit: int
) -> bytes:
    """Connection.search defaults: check_names (safe_dn on the base), auto_escape, auto_encode,
    no schema; an empty attribute list becomes "1.1"."""
    request = search_operation(
        safe_dn(base),
        text,
        scope,
        ldap3.DEREF_NEVER,
        attributes or ["1.1"],
        size_limit,
        time_limit,
        False,
        True,
        True,
        None,
        validator=None,
        check_names=True,
    )
    return ldap3_message(1234, "searchRequest", request)


def outcome(fn: Callable[[], bytes]) -> bytes | type[Exception]:
    try:
        return fn()
    except LDAPException as e:
        return type(e)


@pytest.mark.parametrize("template", TEMPLATES)
def test_search_requests_are_what_ldap3_sends(template: str) -> None:
    from ldap3.utils.conv import escape_filter_chars

    attributes = ["uid", "cn", "memberOf"]
    search = _SearchTemplate(
        BASE, template, "{username}", scope=2, attributes=attributes, size_limit=2, time_limit=3
    )
    for value in VALUES:
        text = template.replace("{username}", escape_filter_chars(value))
        want = outcome(functools.partial(ldap3_search, BASE, text, ldap3.SUBTREE, attributes, 2, 3))
        got = outcome(lambda: _message(1234, search.request(value)))  # noqa: B023 - called at once
        assert got == want, (template, value)


def test_the_splice_is_used_where_it_is_exact_and_ldap3_elsewhere() -> None:
    assert _FilterTemplate("(uid={username})", "{username}")._parts is not None
    assert _FilterTemplate("(&(objectClass=person)(cn=*{username}*))", "{username}")._parts is not None
    assert _FilterTemplate("(cn=a\\2ab{username})", "{username}")._parts is None  # its own escape
    # the value in the attribute position: ldap3 does not unescape there, the probes catch it
    assert _FilterTemplate("({username}=x)", "{username}")._parts is None


def test_fixed_requests_match_ldap3() -> None:
    # the readiness probe's base read: no attributes ("1.1"), a presence filter, base scope
    probe = _SearchTemplate(BASE, "(objectClass=*)", None, scope=0, attributes=[], size_limit=1, time_limit=2)
    assert _message(1234, probe.request("")) == ldap3_search(BASE, "(objectClass=*)", ldap3.BASE, [], 1, 2)
    # single-level scope, a large size limit (a two-octet INTEGER) and a DN that safe_dn rewrites
    base = "OU=People,DC=Example,DC=com"
    groups = _SearchTemplate(
        base, "(member={dn})", "{dn}", scope=1, attributes=["cn"], size_limit=1000, time_limit=300
    )
    assert _message(1234, groups.request("uid=a,dc=x")) == ldap3_search(
        base, "(member=uid=a,dc=x)", ldap3.LEVEL, ["cn"], 1000, 300
    )


PASSWORDS = [
    "alice-pw-Wonderland",
    "with space and !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "pässwörd",
    "non\u00a0breaking",  # mapped to a space
    "soft\u00adhyphen",  # mapped to nothing
    "\uff46\uff55\uff4c\uff4c",  # fullwidth "full": NFKC
    "日本語",
    "\u05d0\u05d1",  # right-to-left only: allowed
]


@pytest.mark.parametrize("password", PASSWORDS)
def test_passwords_are_saslprepped_as_ldap3_does(password: str) -> None:
    want = validate_simple_password(password)
    assert _prep_password(password) == (want if isinstance(want, bytes) else want.encode())
    name = "uid=é,ou=people,dc=example,dc=com"
    assert _message(9, _bind_request(name.encode(), _prep_password(password))) == ldap3_message(
        9, "bindRequest", bind_operation(3, ldap3.SIMPLE, name, password, auto_encode=True)
    )


@pytest.mark.parametrize("password", ["tab\there", "bell\x07", "\u05d0a\u05d1", "\ue000private"])
def test_passwords_saslprep_refuses_are_refused(password: str) -> None:
    with pytest.raises(LDAPSASLPrepError):
        validate_simple_password(password)
    with pytest.raises(LDAPSASLPrepError):
        _prep_password(password)


# --- answers, from a scripted peer ---------------------------------------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    length = bytes((n,)) if n < 0x80 else bytes((0x82,)) + n.to_bytes(2, "big")
    return bytes((tag,)) + length + content


def integer(tag: int, n: int) -> bytes:
    return tlv(tag, n.to_bytes(n.bit_length() // 8 + 1, "big"))


def answer(msg_id: int, op_tag: int, body: bytes) -> bytes:
    return tlv(0x30, integer(0x02, msg_id) + tlv(op_tag, body))


def result(code: int, message: str = "") -> bytes:
    return integer(0x0A, code) + tlv(0x04, b"") + tlv(0x04, message.encode())


def entry(msg_id: int, dn: str, attrs: dict[str, list[bytes]]) -> bytes:
    attributes = b"".join(
        tlv(0x30, tlv(0x04, name.encode()) + tlv(0x31, b"".join(tlv(0x04, v) for v in values)))
        for name, values in attrs.items()
    )
    return answer(msg_id, 0x64, tlv(0x04, dn.encode()) + tlv(0x30, attributes))


async def scripted(script: Callable[[socket.socket, _Link], Awaitable[T]]) -> T:
    """A _Link on one end of a socket pair, ``script`` driving the other end."""
    loop = asyncio.get_running_loop()
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    _, link = await loop.create_connection(_Link, sock=ours)
    try:
        return await script(peer, link)
    finally:
        link.close()
        peer.close()


async def request_id(peer: socket.socket) -> int:
    """The message ID of the request the link sent (read whole from the peer's socket)."""
    data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(peer, 65536), 2)
    assert data[0] == 0x30 and data[2] == 0x02
    return int.from_bytes(data[4 : 4 + data[3]], "big")


def test_a_bind_answer_split_anywhere_is_read_whole() -> None:
    async def script(peer: socket.socket, link: _Link) -> list[int]:
        codes = []
        whole = answer(1, 0x61, result(49, "invalid credentials"))
        for cut in range(1, len(whole) + 1):
            call = asyncio.create_task(link.bind(b"uid=a", b"pw", 2))
            msg_id = await request_id(peer)
            data = answer(msg_id, 0x61, result(49 if cut % 2 else 0, "x"))
            peer.send(data[:cut])
            await asyncio.sleep(0.001)
            peer.send(data[cut:])
            codes.append(await call)
        assert link.alive
        return codes

    codes = asyncio.run(scripted(script))
    assert len(codes) > 20 and codes == [49 if cut % 2 else 0 for cut in range(1, len(codes) + 1)]


def test_a_search_reads_entries_skips_references_and_lowercases_names() -> None:
    async def script(peer: socket.socket, link: _Link) -> Any:
        call = asyncio.create_task(link.search(b"\x63\x00", 2, 2))
        msg_id = await request_id(peer)
        attrs = {"UID": [b"\xc3\xa9"], "jpegPhoto": [b"\xff\xd8"], "cn": [b"A", b"B"]}
        peer.send(
            entry(msg_id, "uid=é,dc=x", attrs)
            + answer(msg_id, 0x73, tlv(0x04, b"ldap://elsewhere/dc=y"))  # a reference: skipped
            + answer(msg_id, 0x65, result(0))
        )
        return await call

    code, entries = asyncio.run(scripted(script))
    assert code == 0
    assert entries == [("uid=é,dc=x".encode(), {"uid": ["é"], "jpegphoto": [], "cn": ["A", "B"]})]


def test_more_entries_than_asked_for_is_an_error() -> None:
    async def script(peer: socket.socket, link: _Link) -> tuple[type[Exception], bool]:
        call = asyncio.create_task(link.search(b"\x63\x00", 2, 2))
        msg_id = await request_id(peer)
        entries = b"".join(entry(msg_id, f"uid={i},dc=x", {}) for i in range(3))
        peer.send(entries + answer(msg_id, 0x65, result(0)))
        with pytest.raises(LDAPCommunicationError) as info:
            await call
        return type(info.value), link.alive

    assert asyncio.run(scripted(script))[1] is False


BAD_ANSWERS: dict[str, Callable[[int], bytes]] = {
    "another message ID": lambda i: answer(i + 1, 0x61, result(0)),
    "a Notice of Disconnection": lambda i: answer(
        0, 0x78, result(52, "shutting down") + tlv(0x8A, b"1.3.6.1.4.1.1466.20036")
    ),
    "not an LDAPMessage": lambda i: b"HTTP/1.1 400 Bad Request\r\n\r\n",
    "an unknown protocolOp": lambda i: answer(i, 0x7F, b""),
    "a search answer to a bind": lambda i: answer(i, 0x65, result(0)),
    "a truncated LDAPResult": lambda i: answer(i, 0x61, integer(0x0A, 0)),
    "a huge length": lambda i: b"\x30\x84\x7f\xff\xff\xff",
    "an empty close": lambda i: b"",
}


@pytest.mark.parametrize("name", list(BAD_ANSWERS))
def test_unexpected_answers_kill_the_connection(name: str) -> None:
    async def script(peer: socket.socket, link: _Link) -> bool:
        call = asyncio.create_task(link.bind(b"uid=a", b"pw", 2))
        data = BAD_ANSWERS[name](await request_id(peer))
        if data:
            peer.send(data)
        else:
            peer.shutdown(socket.SHUT_WR)
        with pytest.raises(LDAPCommunicationError):
            await call
        with pytest.raises(LDAPCommunicationError):  # never reused: the next request fails at once
            await link.bind(b"uid=a", b"pw", 2)
        return link.alive

    assert asyncio.run(scripted(script)) is False


def test_silence_times_out_and_a_late_answer_is_never_read() -> None:
    async def script(peer: socket.socket, link: _Link) -> bool:
        call = asyncio.create_task(link.bind(b"uid=a", b"pw", 0.1))
        msg_id = await request_id(peer)
        with pytest.raises(LDAPCommunicationError, match="no answer"):
            await call
        with contextlib.suppress(OSError):  # the link has aborted the connection already
            peer.send(answer(msg_id, 0x61, result(0)))  # too late: a success must not be picked up
        await asyncio.sleep(0.05)
        with pytest.raises(LDAPCommunicationError):
            await link.bind(b"uid=b", b"pw", 1)
        return link.alive

    assert asyncio.run(scripted(script)) is False


def test_close_unbinds() -> None:
    async def script(peer: socket.socket, link: _Link) -> bytes:
        link.close()
        loop = asyncio.get_running_loop()
        data = b""
        while chunk := await asyncio.wait_for(loop.sock_recv(peer, 100), 2):
            data += chunk
        return data

    assert asyncio.run(scripted(script)) == _message(1, b"\x42\x00")  # UnbindRequest, then EOF


def test_starttls_refusal_and_data_injected_before_the_handshake() -> None:
    """A refused StartTLS is a refusal (never a plain-text fallback); bytes that arrive in clear
    right behind the StartTLS answer (a classic injection) kill the connection before TLS starts."""
    import ssl

    from callout.identity import BackendUnavailable

    context = ssl.create_default_context()

    async def refused(peer: socket.socket, link: _Link) -> None:
        call = asyncio.create_task(link.start_tls(context, "127.0.0.1", 2))
        peer.send(answer(await request_id(peer), 0x78, result(2, "StartTLS not supported")))
        with pytest.raises(BackendUnavailable):
            await call

    async def injected(peer: socket.socket, link: _Link) -> bool:
        call = asyncio.create_task(link.start_tls(context, "127.0.0.1", 2))
        msg_id = await request_id(peer)
        peer.send(answer(msg_id, 0x78, result(0)) + answer(msg_id + 1, 0x61, result(0)))
        with pytest.raises(LDAPCommunicationError, match="after the StartTLS answer"):
            await call
        return link.alive

    asyncio.run(scripted(refused))
    assert asyncio.run(scripted(injected)) is False
