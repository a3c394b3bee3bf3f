"""callout.backends.ldap against a real slapd: credentials → Identity, and every way to be refused.

Guards the LDAP boundary (STYLE rules 11-13): escaped filters and exactly one match, no
unauthenticated bind through an empty password, outages and hangs turned into BackendUnavailable
within the timeout (and recovery right after), and an event loop that keeps ticking while 20
authentications run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from callout.backends.ldap import LdapBackend, LdapConfig
from callout.identity import (
    AmbiguousUser,
    BackendConfigError,
    BackendUnavailable,
    Identity,
    InvalidCredentials,
    InvalidInput,
    UnknownUser,
)
from tests.callout.conftest import (
    DUP_PASSWORD,
    GROUPS,
    PEOPLE,
    SVC_DN,
    SVC_PASSWORD,
    USERS,
    Slapd,
)

pytestmark = pytest.mark.real

T = TypeVar("T")
ALICE_PW = USERS["alice"][1]
assert ALICE_PW is not None
#: a loop lag above this means something ran on the event loop (a hung LDAP call would be >= 0.5 s)
MAX_TICK_GAP = 0.1


def config(slapd: Slapd, **overrides: Any) -> LdapConfig:
    kw: dict[str, Any] = {
        "url": slapd.url,
        "bind_dn": SVC_DN,
        "bind_password": SVC_PASSWORD,
        "user_base": PEOPLE,
        "group_base": GROUPS,
        "attributes": ("mail",),
        "connect_timeout": 1.0,
        "receive_timeout": 1.0,
        "timeout": 2.0,
    }
    kw.update(overrides)
    return LdapConfig(**kw)


def run(slapd: Slapd, body: Callable[[LdapBackend], Awaitable[T]], **overrides: Any) -> T:
    async def main() -> T:
        async with LdapBackend(config(slapd, **overrides)) as backend:
            return await body(backend)

    return asyncio.run(main())


async def refusal(backend: LdapBackend, username: str, password: str) -> Exception:
    with pytest.raises(Exception) as info:  # the caller checks the class
        await backend.authenticate(username, password)
    return info.value


async def refusal_of(call: Awaitable[Any]) -> Exception:
    with pytest.raises(Exception) as info:  # the caller checks the class
        await call
    return info.value


async def with_ticker(work: Awaitable[T], interval: float = 0.01) -> tuple[T, float]:
    """Run ``work`` while a ``interval`` ticker runs; return its result and the largest tick gap."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(interval)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    try:
        result = await work
    finally:
        done.set()
        await task
    return result, max(gaps, default=0.0)


# --- good credentials -------------------------------------------------------------------------


@pytest.mark.parametrize("groups", ["memberOf", "search"])
def test_good_passwords_give_identities_with_groups(slapd: Slapd, groups: str) -> None:
    async def body(b: LdapBackend) -> list[Identity]:
        return [await b.authenticate(u, USERS[u][1] or "") for u in ("alice", "bob", "carol", "dave*")]

    alice, bob, carol, dave = run(slapd, body, groups=groups)
    assert alice == Identity(
        subject="alice",
        name="Alice Example",
        groups=("engineering", "ops"),
        attributes={"mail": "alice@example.com", "dn": USERS["alice"][0]},
        expires_at=None,
        source="ldap",
    )
    assert bob.groups == ("engineering",)
    assert (carol.subject, carol.groups) == ("carol", ("contractors",))  # user in a nested OU
    assert carol.attributes["dn"] == f"uid=carol,ou=contractors,{PEOPLE}"
    assert (dave.subject, dave.groups) == ("dave*", ())  # a literal '*' matches only itself


def test_subject_comes_from_the_directory_and_ttl_from_the_clock(slapd: Slapd) -> None:
    async def main() -> Identity:
        async with LdapBackend(config(slapd, identity_ttl=600), clock=lambda: 1_700_000_000.5) as b:
            return await b.authenticate("ALICE", ALICE_PW)  # uid matching is case-insensitive

    ident = asyncio.run(main())
    assert (ident.subject, ident.expires_at) == ("alice", 1_700_000_600)
    with pytest.raises(TypeError):
        ident.attributes["dn"] = "x"  # type: ignore[index]


def test_groups_none_and_group_base_filter(slapd: Slapd) -> None:
    async def body(b: LdapBackend) -> Identity:
        return await b.authenticate("alice", ALICE_PW)

    assert run(slapd, body, groups="none").groups == ()
    assert run(slapd, body, group_base=f"ou=elsewhere,{PEOPLE}").groups == ()


# --- refusals ---------------------------------------------------------------------------------


def test_wrong_password_unknown_user_and_two_matches(slapd: Slapd) -> None:
    async def body(b: LdapBackend) -> list[Exception]:
        return [
            await refusal(b, "alice", "not-alices-password"),
            await refusal(b, "alice", USERS["bob"][1] or ""),
            await refusal(b, "nopw", "anything"),  # entry without userPassword
            await refusal(b, "mallory", ALICE_PW),
            await refusal(b, "dup", DUP_PASSWORD),  # the right password does not help
        ]

    errors = run(slapd, body)
    assert [type(e) for e in errors] == [
        InvalidCredentials,
        InvalidCredentials,
        InvalidCredentials,
        UnknownUser,
        AmbiguousUser,
    ]
    assert [e.code for e in errors] == [  # type: ignore[attr-defined]
        "invalid_credentials",
        "invalid_credentials",
        "invalid_credentials",
        "unknown_user",
        "ambiguous_user",
    ]


def test_empty_password_is_refused_before_any_bind(slapd: Slapd, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[float] = []
    real_open = LdapBackend._open

    async def spy(self: LdapBackend, deadline: float) -> Any:
        opened.append(deadline)
        return await real_open(self, deadline)

    monkeypatch.setattr(LdapBackend, "_open", spy)

    async def body(b: LdapBackend) -> list[Exception]:
        return [await refusal(b, "alice", ""), await refusal(b, "nopw", "")]

    errors = run(slapd, body)
    assert all(type(e) is InvalidInput for e in errors)
    assert opened == []  # no service bind, no user bind: nothing reached the server


INJECTIONS = [
    ("*", UnknownUser),  # unescaped: every user → AmbiguousUser at best
    ("a*", UnknownUser),
    (")(uid=*", UnknownUser),
    ("alice)(|(uid=*", UnknownUser),
    ("*)(uid=alice", UnknownUser),
    ("alice)(uid=*))(|(uid=*", UnknownUser),
    ("\\2a", UnknownUser),  # a pre-escaped wildcard is escaped again (backslash first)
    ("alice\x00", InvalidInput),
    ("alice\x00)(uid=*", InvalidInput),
    ("alice\n", InvalidInput),
    ("a" * 257, InvalidInput),
    ("alice" + ")(uid=*" * 60, InvalidInput),
    ("\udcff", InvalidInput),  # lone surrogate
]


@pytest.mark.parametrize(("username", "expected"), INJECTIONS, ids=[repr(u)[:24] for u, _ in INJECTIONS])
def test_ldap_injection_is_refused_and_never_authenticates(
    slapd: Slapd, username: str, expected: type[Exception]
) -> None:
    async def body(b: LdapBackend) -> Exception:
        return await refusal(b, username, ALICE_PW)  # alice's real password: a match would log in

    assert type(run(slapd, body)) is expected


def test_bad_password_inputs(slapd: Slapd) -> None:
    async def body(b: LdapBackend) -> list[Exception]:
        return [
            await refusal(b, "alice", ALICE_PW + "\x00"),
            await refusal(b, "alice", "x" * 1025),
            await refusal(b, "alice", "*"),  # a filter wildcard is just a wrong password
        ]

    assert [type(e) for e in run(slapd, body)] == [InvalidInput, InvalidInput, InvalidCredentials]


def test_passwords_never_reach_messages_or_logs(slapd: Slapd, caplog: pytest.LogCaptureFixture) -> None:
    secret = "Hunter2-do-not-log"
    caplog.set_level(logging.DEBUG)

    async def body(b: LdapBackend) -> list[Exception]:
        errors = [
            await refusal(b, "alice", secret),
            await refusal(b, "mallory", secret),
            await refusal(b, "dup", secret),
            await refusal(b, "alice", secret + "\x00"),
        ]
        with slapd.stopped():
            errors.append(await refusal(b, "alice", secret))
        return errors

    errors = run(slapd, body)
    assert {type(e) for e in errors} == {
        InvalidCredentials,
        UnknownUser,
        AmbiguousUser,
        InvalidInput,
        BackendUnavailable,
    }
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [r.getMessage() for r in caplog.records]
    assert caplog.records and not [t for t in texts if secret in t or SVC_PASSWORD in t]
    assert all(e.__cause__ is None for e in errors)  # no ldap3 exception chained along


def test_misconfiguration_is_backend_unavailable(slapd: Slapd) -> None:
    async def body(b: LdapBackend) -> Exception:
        return await refusal(b, "alice", ALICE_PW)

    assert type(run(slapd, body, bind_password="wrong-svc-password")) is BackendUnavailable
    assert type(run(slapd, body, user_base="ou=nowhere,dc=example,dc=com")) is BackendUnavailable


# --- TLS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["starttls", "ldaps"])
def test_tls_with_the_servers_ca_and_refusal_without_it(slapd: Slapd, mode: str) -> None:
    tls: dict[str, Any] = {"start_tls": True} if mode == "starttls" else {"url": slapd.ldaps_url}

    async def ok(b: LdapBackend) -> Identity:
        return await b.authenticate("alice", ALICE_PW)

    async def refused(b: LdapBackend) -> Exception:
        return await refusal(b, "alice", ALICE_PW)

    assert run(slapd, ok, ca_certs_file=str(slapd.ca_cert), **tls).groups == ("engineering", "ops")
    # the self-signed certificate is not in the system store: fail closed, never fall back to plain
    assert type(run(slapd, refused, **tls)) is BackendUnavailable


# --- outages, hangs, load ---------------------------------------------------------------------


def test_slapd_stopped_mid_run_then_recovers_at_once(slapd: Slapd) -> None:
    async def body(b: LdapBackend) -> tuple[Identity, list[float], Identity, float]:
        before = await b.authenticate("alice", ALICE_PW)  # warms the service-connection pool
        times = []
        with slapd.stopped():
            for _ in range(3):
                t0 = time.monotonic()
                assert type(await refusal(b, "alice", ALICE_PW)) is BackendUnavailable
                times.append(time.monotonic() - t0)
        t0 = time.monotonic()
        # the pooled connection is dead and a shared ldap3.Server would refuse for ~5 s: neither
        # may delay the first call after the restart
        after = await b.authenticate("bob", USERS["bob"][1] or "")
        recovery = time.monotonic() - t0
        # a restart between two calls: the pooled service connection is dead, nobody has noticed yet
        slapd.restart()
        assert (await b.authenticate("carol", USERS["carol"][1] or "")).subject == "carol"
        return before, times, after, recovery

    before, times, after, recovery = run(slapd, body)
    assert before.subject == "alice" and after.subject == "bob"
    assert max(times) < 0.5  # connection refused is immediate, well within timeout=2
    assert recovery < 0.5


def test_user_binds_reuse_one_connection_and_never_carry_an_identity_over(slapd: Slapd) -> None:
    """The user-bind pool: one connection serves consecutive binds (a wrong password in between
    included), each bind is judged on its own password, and a restart is survived."""

    async def body(b: LdapBackend) -> list[Any]:
        await b.authenticate("alice", ALICE_PW)
        first = list(b._bind_idle)
        out: list[Any] = [len(first)]
        out.append(type(await refusal(b, "bob", "not-bobs-password")))  # right after alice's bind
        out.append((await b.authenticate("bob", USERS["bob"][1] or "")).subject)
        out.append(type(await refusal(b, "alice", USERS["bob"][1] or "")))  # bob's password: no
        out.append(b._bind_idle == first)  # the same connection all along
        slapd.restart()  # the pooled bind connection is now dead: replaced within the call
        out.append((await b.authenticate("alice", ALICE_PW)).subject)
        out.append(len(b._bind_idle))
        return out

    assert run(slapd, body) == [1, InvalidCredentials, "bob", InvalidCredentials, True, "alice", 1]


def test_a_pooled_bind_connection_that_died_unnoticed_is_replaced_within_the_call(
    slapd: Slapd, caplog: pytest.LogCaptureFixture
) -> None:
    """slapd restarts while nothing runs on the loop: the pooled bind connection still looks alive,
    the bind on it fails, and the same call binds again on a new connection, the password judged
    by that bind alone."""
    caplog.set_level(logging.INFO, logger="callout.backends.ldap")

    async def body(b: LdapBackend) -> list[Any]:
        await b.authenticate("alice", ALICE_PW)
        pooled = list(b._bind_idle)
        out: list[Any] = []
        for password, _ in ((ALICE_PW, "right"), ("not-alices-password", "wrong")):
            slapd.restart()  # blocking: the loop has not seen the connection close yet
            deadline = time.monotonic() + 2
            try:
                await b._bind_user(USERS["alice"][0].encode(), password.encode(), deadline)
                out.append("bound")
            except Exception as e:
                out.append(type(e))
        out.append(bool(pooled) and all(link not in b._bind_idle for link in pooled))
        return out

    assert run(slapd, body) == ["bound", InvalidCredentials, True]
    dead = [r for r in caplog.records if "pooled LDAP bind connection is dead" in r.getMessage()]
    assert len(dead) == 2


def test_concurrent_logins_are_bounded_by_max_workers(slapd: Slapd) -> None:
    async def body(b: LdapBackend) -> tuple[list[str], int, int]:
        cases = [("alice", ALICE_PW), ("bob", USERS["bob"][1] or ""), ("carol", USERS["carol"][1] or "")] * 4
        results = await asyncio.gather(*(b.authenticate(u, p) for u, p in cases))
        return [i.subject for i in results], len(b._idle), len(b._bind_idle)

    subjects, idle, bind_idle = run(slapd, body, max_workers=2)
    assert subjects == ["alice", "bob", "carol"] * 4
    assert 1 <= idle <= 2 and 1 <= bind_idle <= 2  # two conversations at a time: two of each


def test_the_backend_can_be_used_from_a_second_event_loop(slapd: Slapd) -> None:
    """Connections belong to the loop that opened them: a later loop opens its own."""
    backend = LdapBackend(config(slapd))
    try:
        first = asyncio.run(backend.authenticate("alice", ALICE_PW))
        second = asyncio.run(backend.authenticate("bob", USERS["bob"][1] or ""))
    finally:
        backend.close()
    assert (first.subject, second.subject) == ("alice", "bob")


def test_attribute_names_match_whatever_their_case(slapd: Slapd) -> None:
    async def body(b: LdapBackend) -> Identity:
        return await b.authenticate("alice", ALICE_PW)

    ident = run(slapd, body, subject_attribute="UID", name_attribute="CN", attributes=("Mail",))
    assert (ident.subject, ident.name) == ("alice", "Alice Example")
    assert ident.attributes == {"Mail": "alice@example.com", "dn": USERS["alice"][0]}


def test_readiness_probe(slapd: Slapd) -> None:
    async def body(b: LdapBackend) -> list[Any]:
        out: list[Any] = [await b.probe()]
        with slapd.stopped():
            out.append(type(await refusal_of(b.probe())))
        out.append(await b.probe())
        return out

    assert run(slapd, body) == [None, BackendUnavailable, None]

    async def missing(b: LdapBackend) -> str:
        return str(await refusal_of(b.probe()))

    assert "cannot be read (LDAP result 32)" in run(slapd, missing, user_base=f"ou=nowhere,{PEOPLE}")
    assert run(slapd, missing, bind_password="wrong") == "LDAP service bind refused"


def test_hung_slapd_times_out_without_blocking_the_loop(slapd: Slapd) -> None:
    async def body(b: LdapBackend) -> tuple[list[Exception], float, float, Identity]:
        await b.authenticate("alice", ALICE_PW)
        with slapd.frozen():
            t0 = time.monotonic()
            calls = [refusal(b, "alice", ALICE_PW) for _ in range(5)]
            errors, gap = await with_ticker(asyncio.gather(*calls))
            elapsed = time.monotonic() - t0
        return errors, gap, elapsed, await b.authenticate("carol", USERS["carol"][1] or "")

    errors, gap, elapsed, carol = run(slapd, body, receive_timeout=0.5, timeout=1.0)
    assert all(type(e) is BackendUnavailable for e in errors)
    assert 0.4 < elapsed < 1.5
    assert gap < MAX_TICK_GAP
    assert carol.groups == ("contractors",)


def test_overload_and_close_refuse_at_once(slapd: Slapd) -> None:
    async def main() -> tuple[Exception, float, list[Exception], float, Exception]:
        # one worker: of the two calls let in, one hangs on the frozen slapd and one waits in line
        b = LdapBackend(config(slapd, max_workers=1, max_pending=2, receive_timeout=0.5, timeout=1.0))
        with slapd.frozen():
            first = [asyncio.create_task(refusal(b, "alice", ALICE_PW)) for _ in range(2)]
            await asyncio.sleep(0.05)
            t0 = time.monotonic()
            overloaded = await refusal(b, "alice", ALICE_PW)
            fast = time.monotonic() - t0
            t0 = time.monotonic()
            await b.aclose()  # the queued call is refused, not cancelled; the hung one times out
            pending = await asyncio.gather(*first)
            drained = time.monotonic() - t0
        return overloaded, fast, pending, drained, await refusal(b, "alice", ALICE_PW)

    overloaded, fast, pending, drained, closed = asyncio.run(main())
    assert type(overloaded) is BackendUnavailable and fast < 0.05
    assert [type(e) for e in pending] == [BackendUnavailable, BackendUnavailable]
    assert drained < 1.5
    assert type(closed) is BackendUnavailable


def test_twenty_concurrent_authentications_keep_the_loop_ticking(slapd: Slapd) -> None:
    cases = [(u, USERS[u][1] or "", u) for u in ("alice", "bob", "carol")] * 5
    cases += [
        ("alice", "wrong", "InvalidCredentials"),
        ("mallory", "x", "UnknownUser"),
        ("dup", DUP_PASSWORD, "AmbiguousUser"),
        ("*", ALICE_PW, "UnknownUser"),
        ("nopw", "x", "InvalidCredentials"),
    ]
    assert len(cases) == 20

    async def one(b: LdapBackend, user: str, password: str) -> str:
        try:
            return (await b.authenticate(user, password)).subject
        except Exception as e:
            return type(e).__name__

    async def body(b: LdapBackend) -> tuple[list[str], float, float]:
        t0 = time.monotonic()
        results, gap = await with_ticker(asyncio.gather(*(one(b, u, p) for u, p, _ in cases)))
        return results, gap, time.monotonic() - t0

    results, gap, elapsed = run(slapd, body, groups="search")
    assert results == [want for _, _, want in cases]
    assert gap < MAX_TICK_GAP, f"event loop stalled for {gap * 1000:.0f} ms"
    assert elapsed < 2.0


# --- configuration (no server needed) ---------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"url": "http://127.0.0.1"},
        {"url": "ldap://"},
        {"url": "ldap://h/dc=x"},
        {"url": "ldaps://h", "start_tls": True},
        {"bind_password": ""},
        {"bind_dn": ""},
        {"user_base": ""},
        {"user_filter": "(uid=alice)"},
        {"user_filter": "uid={username}"},
        {"user_filter": "(&(uid={username})"},
        {"groups": "search", "group_base": None},
        {"groups": "search", "group_filter": "(member=x)"},
        {"groups": "nested"},
        {"timeout": 0},
        {"max_workers": 0},
    ],
)
def test_bad_config_is_refused(overrides: dict[str, Any]) -> None:
    kw: dict[str, Any] = {
        "url": "ldap://127.0.0.1:389",
        "bind_dn": SVC_DN,
        "bind_password": "pw",
        "user_base": PEOPLE,
        "group_base": GROUPS,
    }
    kw.update(overrides)
    with pytest.raises(BackendConfigError) as info:
        LdapConfig(**kw)
    assert info.value.code == "backend_config"


def test_config_repr_hides_the_service_password() -> None:
    cfg = LdapConfig(url="ldap://127.0.0.1", bind_dn=SVC_DN, bind_password=SVC_PASSWORD, user_base=PEOPLE)
    assert SVC_PASSWORD not in repr(cfg) and (cfg.host, cfg.port, cfg.use_ssl) == ("127.0.0.1", 389, False)
