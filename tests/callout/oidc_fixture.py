"""A real OpenID provider for the callout's OIDC tests: npm ``oidc-provider`` in our node script.

``tests/js/oidc/provider.mjs`` (see its header) runs on a free loopback port and mints real signed
access tokens for the users below through a custom grant (no browser). The fixtures:

* ``oidc_provider`` — one provider for the session (about 0.3 s to start);
* ``oidc_provider_factory`` — private providers for the tests that restart (key rotation) or stop
  (provider down) theirs; each is stopped at the test's teardown.

Keys are generated here (joserfc), written 0600 to a temp file and passed by path in an env var.
A provider restarts on the **same port**, so its issuer (``http://127.0.0.1:<port>``) stays the
same, with the same or new keys. Missing node or the npm package: skip on a laptop, fail under
``CI=true`` (:func:`tests.realcomp.require`). Registered in ``tests/callout/conftest.py``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import ECKey, RSAKey

from tests.realcomp import ROOT, require

JS_DIR = ROOT / "tests" / "js"
SCRIPT = JS_DIR / "oidc" / "provider.mjs"
CLIENT = ("test-client", "test-secret")
AUDIENCE = "nats"

#: username → the claims the provider puts in that user's access tokens (besides the standard ones)
USERS: dict[str, dict[str, Any]] = {
    "alice": {
        "email": "alice@example.test",
        "name": "Alice Example",
        "groups": ["ops", "engineering"],
        "realm_access": {"roles": ["oncall"]},  # a nested claim (Keycloak-style roles)
        "department": "platform",
    },
    "bob": {"email": "bob@example.test", "name": "Bob Builder", "groups": ["svc"]},
    "carol": {"email": "carol@example.test", "groups": ["sales"]},  # authenticates; no rule matches
    "dave": {"email": "dave@example.test"},  # no groups claim at all
}


def node_binary() -> str | None:
    return shutil.which("node") or ("/usr/bin/node" if Path("/usr/bin/node").exists() else None)


def available() -> bool:
    return (
        node_binary() is not None
        and (JS_DIR / "node_modules" / "oidc-provider" / "package.json").exists()
        and SCRIPT.exists()
    )


def rsa_jwk(kid: str) -> dict[str, Any]:
    """A private RSA-2048 JWK (no ``alg``: the provider may sign RS256 and PS256 with it)."""
    jwk = RSAKey.generate_key(2048, private=True).as_dict(private=True)
    jwk.update(kid=kid, use="sig")
    return dict(jwk)


def ec_jwk(kid: str) -> dict[str, Any]:
    """A private P-256 JWK for ES256."""
    jwk = ECKey.generate_key("P-256", private=True).as_dict(private=True)
    jwk.update(kid=kid, use="sig", alg="ES256")
    return dict(jwk)


def public_pem(jwk: dict[str, Any]) -> bytes:
    """The SubjectPublicKeyInfo PEM of a private RSA JWK: what an attacker HMACs with."""
    key = RSAKey.import_key(jwk)
    return key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class OidcProvider:
    """One ``node provider.mjs``. ``keys``: its private JWKs (the first fitting one signs)."""

    workdir: Path
    keys: list[dict[str, Any]]
    port: int = 0  # 0 until the first start; restarts reuse it
    proc: subprocess.Popen[bytes] | None = None
    issuer: str = ""
    kids: list[str] = field(default_factory=list)
    startup_seconds: float = 0.0

    @property
    def keys_file(self) -> Path:
        return self.workdir / "keys.json"

    @property
    def log(self) -> Path:
        return self.workdir / "provider.log"

    def key(self, kid: str) -> dict[str, Any]:
        return next(k for k in self.keys if k["kid"] == kid)

    def start(self, timeout: float = 15.0) -> None:
        node = node_binary()
        assert node is not None
        fd = os.open(self.keys_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"keys": self.keys}, f)
        users = self.workdir / "users.json"
        users.write_text(json.dumps(USERS))
        env = {
            **os.environ,
            "OIDC_KEYS_FILE": str(self.keys_file),
            "OIDC_USERS_FILE": str(users),
            "PORT": str(self.port),
        }
        t0 = time.monotonic()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [node, str(SCRIPT)],
                cwd=SCRIPT.parent,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                preexec_fn=_die_with_parent,  # only prctl() before exec: fork-safe
            )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.stop()
            raise RuntimeError(f"oidc-provider did not start within {timeout}s:\n{self.log.read_text()}")
        info = json.loads(line)
        assert info["ready"] is True
        self.port, self.issuer, self.kids = info["port"], info["issuer"], info["kids"]
        self.startup_seconds = time.monotonic() - t0

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def restart(self, keys: list[dict[str, Any]] | None = None) -> None:
        """Stop, then start on the same port (same issuer), with ``keys`` if given."""
        self.stop()
        if keys is not None:
            self.keys = keys
        self.start()

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """The provider is down inside the block and up again (same port and keys) after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    # --- tokens ---------------------------------------------------------------------------------

    def token(
        self,
        username: str = "alice",
        *,
        rs: str = "urn:nats",
        ttl: int | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> str:
        """A real access token for ``username`` from the provider's token endpoint.

        ``rs``: the resource server (audience and algorithm; see provider.mjs). ``overrides``:
        ``{"set": {...}, "unset": [...]}`` applied by the provider before it signs.
        """
        data = {"grant_type": "urn:test:user-token", "username": username, "rs": rs}
        if ttl is not None:
            data["ttl"] = str(ttl)
        if overrides is not None:
            data["overrides"] = json.dumps(overrides)
        return self._token(data)

    def client_token(self) -> str:
        """A client-credentials token (a service, not a user: ``sub`` is the client id)."""
        return self._token({"grant_type": "client_credentials"})

    def _token(self, data: dict[str, str]) -> str:
        r = httpx.post(f"{self.issuer}/token", data=data, auth=CLIENT, timeout=5)
        if r.status_code != 200:
            raise RuntimeError(f"token endpoint: HTTP {r.status_code}: {r.text}")
        return str(r.json()["access_token"])

    def jwks(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.issuer}/jwks", timeout=5).json())


def _require_provider() -> None:
    require(available(), "node + npm oidc-provider", "run bash scripts/test.sh (npm ci in tests/js)")


def _new_provider(keys: list[dict[str, Any]]) -> OidcProvider:
    provider = OidcProvider(workdir=Path(tempfile.mkdtemp(prefix="trustkit-oidc-")), keys=keys)
    try:
        provider.start()
    except BaseException:
        shutil.rmtree(provider.workdir, ignore_errors=True)
        raise
    return provider


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    """The session's provider: keys k1 (RSA) and e1 (P-256). Tests must not stop or restart it."""
    _require_provider()
    provider = _new_provider([rsa_jwk("k1"), ec_jwk("e1")])
    try:
        yield provider
    finally:
        provider.stop()
        shutil.rmtree(provider.workdir, ignore_errors=True)


@pytest.fixture
def oidc_provider_factory() -> Iterator[Callable[..., OidcProvider]]:
    """``factory(keys=None)`` → a private provider (default keys: k1 RSA), stopped at teardown."""
    _require_provider()
    made: list[OidcProvider] = []

    def factory(keys: list[dict[str, Any]] | None = None) -> OidcProvider:
        provider = _new_provider(keys if keys is not None else [rsa_jwk("k1")])
        made.append(provider)
        return provider

    try:
        yield factory
    finally:
        for provider in made:
            provider.stop()
            shutil.rmtree(provider.workdir, ignore_errors=True)
