"""A private OpenLDAP slapd for the callout backend tests (see docs: real-components-ldap).

One slapd per session: its own slapd.conf and mdb directory under a temp dir, a random loopback port,
started in the foreground (``-d 0``) with PR_SET_PDEATHSIG so it cannot outlive pytest. It serves
``ldap://`` (StartTLS available) and ``ldaps://`` on a second port, with a throwaway self-signed
certificate for 127.0.0.1. The test
directory is loaded online with ``ldapadd`` so that the memberof overlay fills in ``memberOf``.
Tests may stop, restart or freeze (SIGSTOP) it through :class:`Slapd`; it must be running again
when they return.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.callout.oidc_fixture import oidc_provider, oidc_provider_factory  # noqa: F401
from tests.realcomp import free_port, require

SLAPD = "/usr/sbin/slapd"
BASE_DN = "dc=example,dc=com"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "admin-secret"
SVC_DN = f"cn=svc,ou=services,{BASE_DN}"
SVC_PASSWORD = "svc-secret-7f3a"
PEOPLE = f"ou=people,{BASE_DN}"
CONTRACTORS = f"ou=contractors,{PEOPLE}"
GROUPS = f"ou=groups,{BASE_DN}"

#: uid → (DN, password or None for an entry without userPassword)
USERS: dict[str, tuple[str, str | None]] = {
    "alice": (f"uid=alice,{PEOPLE}", "alice-pw-Wonderland"),
    "bob": (f"uid=bob,{PEOPLE}", "bob-pw-Builder"),
    "carol": (f"uid=carol,{CONTRACTORS}", "carol-pw-Nested"),
    "dave*": (f"uid=dave\\2a,{PEOPLE}", "dave-pw-Star"),  # a literal '*' in a uid
    "nopw": (f"uid=nopw,{PEOPLE}", None),  # no userPassword at all
}
#: two entries with uid=dup (one per OU): the "two matching entries" case
DUP_DNS = (f"uid=dup,{PEOPLE}", f"uid=dup,{CONTRACTORS}")
DUP_PASSWORD = "dup-pw"
#: group cn → member uids
GROUP_MEMBERS: dict[str, tuple[str, ...]] = {
    "engineering": ("alice", "bob"),
    "ops": ("alice",),
    "contractors": ("carol",),
}

CONF = """\
TLSCertificateFile {tmp}/cert.pem
TLSCertificateKeyFile {tmp}/key.pem
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile  {tmp}/slapd.pid
argsfile {tmp}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload refint
database mdb
suffix   "{base}"
rootdn   "{admin_dn}"
rootpw   {admin_hash}
directory {tmp}/data
maxsize 104857600
index objectClass eq
index uid,cn eq,sub
index member,memberOf eq
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
overlay refint
refint_attributes member
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by dn.exact="{svc_dn}" read
    by self read
    by anonymous auth
    by * none
"""


def ssha(password: str) -> str:
    return subprocess.run(
        ["slappasswd", "-h", "{SSHA}", "-s", password], check=True, capture_output=True, text=True
    ).stdout.strip()


def directory_ldif() -> str:
    def user(dn: str, uid: str, password: str | None) -> str:
        lines = [
            f"dn: {dn}",
            "objectClass: inetOrgPerson",
            f"uid: {uid}",
            f"cn: {uid.title()} Example",
            f"sn: {uid.title()}",
            f"mail: {uid.replace('*', '')}@example.com",
        ]
        if password is not None:
            lines.append(f"userPassword: {ssha(password)}")
        return "\n".join(lines)

    blocks = [
        f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: {CONTRACTORS}\nobjectClass: organizationalUnit\nou: contractors",
        f"dn: ou=services,{BASE_DN}\nobjectClass: organizationalUnit\nou: services",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups",
        f"dn: {SVC_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: svc\n"
        f"userPassword: {ssha(SVC_PASSWORD)}",
    ]
    blocks += [user(dn, uid, pw) for uid, (dn, pw) in USERS.items()]
    blocks += [user(dn, "dup", DUP_PASSWORD) for dn in DUP_DNS]
    for cn, uids in GROUP_MEMBERS.items():
        members = "\n".join(f"member: {USERS[u][0]}" for u in uids)
        blocks.append(f"dn: cn={cn},{GROUPS}\nobjectClass: groupOfNames\ncn: {cn}\n{members}")
    return "\n\n".join(blocks) + "\n"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Slapd:
    """A private slapd on ``ldap://127.0.0.1:<port>/`` and ``ldaps://127.0.0.1:<tls_port>/``.

    ``startup_seconds`` is the last spawn → port-accepting time.
    """

    workdir: Path
    port: int
    tls_port: int
    proc: subprocess.Popen[bytes] | None = None
    startup_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_cert(self) -> Path:
        """The server's self-signed certificate (CN and SAN 127.0.0.1), which is its own CA."""
        return self.workdir / "cert.pem"

    @property
    def conf(self) -> Path:
        return self.workdir / "slapd.conf"

    @property
    def log(self) -> Path:
        return self.workdir / "slapd.log"

    def start(self, timeout: float = 5.0) -> None:
        t0 = time.monotonic()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    SLAPD,
                    "-d",
                    "0",
                    "-f",
                    str(self.conf),
                    "-h",
                    f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.tls_port}/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # only prctl() before exec: fork-safe
            )
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited ({self.proc.returncode}):\n{self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                time.sleep(0.01)
                continue
            self.startup_seconds = time.monotonic() - t0
            return
        self.stop()
        raise RuntimeError(f"slapd did not listen within {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.resume()  # a stopped process does not act on SIGTERM until continued
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def restart(self) -> None:
        """Same config, same data directory, same port."""
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts TCP connections, slapd answers nothing (a "slow" LDAP)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """slapd is down inside the block and running again (same port, same data) after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        self.freeze()
        try:
            yield
        finally:
            self.resume()


def slapd_available() -> bool:
    """slapd, ldapadd, slappasswd and openssl are installed."""
    return (
        os.access(SLAPD, os.X_OK)
        and shutil.which("ldapadd") is not None
        and shutil.which("slappasswd") is not None
        and shutil.which("openssl") is not None
    )


@contextlib.contextmanager
def private_slapd() -> Iterator[Slapd]:
    """A started slapd loaded with the test directory; stopped and its files removed afterwards.

    Used by the ``slapd`` fixture and by ``bench/callout.py``.
    """
    tmp = Path(tempfile.mkdtemp(prefix="trustkit-slapd-"))
    server = Slapd(workdir=tmp, port=free_port(), tls_port=free_port())
    try:
        (tmp / "data").mkdir()
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                str(tmp / "key.pem"),
                "-out",
                str(server.ca_cert),
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        server.conf.write_text(
            CONF.format(
                tmp=tmp, base=BASE_DN, admin_dn=ADMIN_DN, admin_hash=ssha(ADMIN_PASSWORD), svc_dn=SVC_DN
            )
        )
        (tmp / "data.ldif").write_text(directory_ldif())
        server.start()
        subprocess.run(
            [
                "ldapadd",
                "-x",
                "-H",
                server.url,
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
                "-f",
                str(tmp / "data.ldif"),
            ],
            check=True,
            capture_output=True,
            timeout=10,
        )
        yield server
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def slapd() -> Iterator[Slapd]:
    require(
        slapd_available(),
        "OpenLDAP slapd + ldap-utils (and openssl)",
        "run bash scripts/install-components.sh",
    )
    with private_slapd() as server:
        yield server
