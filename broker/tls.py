"""TLS for client connections, configured as nats-server configures it.

``tls { cert_file, key_file, ca_file, verify, timeout, handshake_first }`` in the server config
(nats-server ``parseTLS`` and ``GenTLSConfig`` in server/opts.go):

- ``cert_file`` + ``key_file``: the server's certificate chain and key (both required);
- ``ca_file``: CAs that sign client certificates (used when ``verify`` is on);
- ``verify: true``: a client certificate signed by ``ca_file`` (the system roots without it, as
  in Go) is required (Go ``RequireAndVerifyClientCert``);
- ``timeout``: seconds (or a duration such as ``"500ms"``) the TLS handshake may take, default 2;
  the authentication timeout then defaults to this plus one second, as in nats-server;
- ``handshake_first`` (also ``first``/``immediate``): the TLS handshake comes before INFO. Without
  it the server sends INFO in plaintext (``tls_required: true``) and the client upgrades at once,
  before it sends CONNECT: no credential ever crosses the wire in plaintext.

TLS 1.2 is the minimum, as in nats-server. Any other key (``cipher_suites``, ``pinned_certs``,
``verify_and_map``, an ``auto`` fallback for ``handshake_first``, …) is refused with an error that
names it, so a config never silently means less than it says.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustkit.errors import BrokerError

__all__ = ["TLSConfig", "TLSConfigError", "parse_tls", "tls_version"]

DEFAULT_TLS_TIMEOUT = 2.0  # nats-server const.go TLS_TIMEOUT


class TLSConfigError(BrokerError):
    code = "config"


@dataclass
class TLSConfig:
    """The ``tls`` block: what the broker runs TLS with."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    verify: bool = False
    timeout: float = DEFAULT_TLS_TIMEOUT
    handshake_first: bool = False
    _context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    def context(self) -> ssl.SSLContext:
        """The server-side SSL context (built once). Raises :class:`TLSConfigError`."""
        if self._context is None:
            self._context = self._build()
        return self._context

    def _build(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        for path in (self.cert_file, self.key_file, self.ca_file):
            if path is not None and not path.is_file():
                raise TLSConfigError(f"tls: cannot read {path}: no such file")
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as exc:
            raise TLSConfigError(
                f"tls: error loading the certificate/key pair {self.cert_file}, {self.key_file}: "
                f"{getattr(exc, 'reason', None) or exc}"
            ) from None
        if self.ca_file is not None:
            try:
                ctx.load_verify_locations(cafile=self.ca_file)
            except (ssl.SSLError, OSError) as exc:
                raise TLSConfigError(f"tls: failed to parse ca_file {self.ca_file}: {exc}") from None
        if self.verify:
            if self.ca_file is None:  # Go verifies against the system roots when ClientCAs is nil
                ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def _file(key: str, value: Any, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise TLSConfigError(f"error parsing tls config, expected {key!r} to be filename")
    return base / value


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TLSConfigError(f"error parsing tls config, expected {key!r} to be a boolean")
    return value


def _timeout(value: Any) -> float:
    """A number of seconds (``2``, ``0.5``) or a Go duration string (``"500ms"``, ``"2s"``)."""
    if isinstance(value, bool):
        raise TLSConfigError("error parsing tls config, 'timeout' wrong type")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
        if not m:
            raise TLSConfigError(f"error parsing tls config, 'timeout' {text!r} is not a duration")
        unit = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2) or "s"]
        seconds = float(m.group(1)) * unit
    if seconds < 0:
        raise TLSConfigError("error parsing tls config, 'timeout' must not be negative")
    return seconds or DEFAULT_TLS_TIMEOUT  # nats-server: 0 means the default


def _handshake_first(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.lower()
        if low in ("true", "on"):
            return True
        if low in ("false", "off"):
            return False
        raise TLSConfigError(
            f"tls {key}: {value!r} (a fallback to plaintext) is not supported by trustkit-broker; "
            "use true or false"
        )
    raise TLSConfigError(f"field {key!r} should be a boolean or a string")


def parse_tls(value: Any, base: Path) -> TLSConfig:
    """Read a ``tls { ... }`` block. Raises :class:`TLSConfigError` naming the offending key."""
    if not isinstance(value, dict):
        raise TLSConfigError("tls must be a block { cert_file, key_file, ... }")
    cert = key = ca = None
    verify = first = False
    timeout = DEFAULT_TLS_TIMEOUT
    for k, v in value.items():
        if k == "cert_file":
            cert = _file(k, v, base)
        elif k == "key_file":
            key = _file(k, v, base)
        elif k == "ca_file":
            ca = _file(k, v, base)
        elif k == "verify":
            verify = _bool(k, v)
        elif k == "timeout":
            timeout = _timeout(v)
        elif k in ("handshake_first", "first", "immediate"):
            first = _handshake_first(k, v)
        else:
            raise TLSConfigError(
                f"tls key {k!r} is not supported by trustkit-broker "
                "(run nats-server for it; see docs/broker.md)"
            )
    if cert is None:
        raise TLSConfigError("missing 'cert_file' in TLS configuration")
    if key is None:
        raise TLSConfigError("missing 'key_file' in TLS configuration")
    cfg = TLSConfig(cert, key, ca, verify=verify, timeout=timeout, handshake_first=first)
    cfg.context()  # load the files now: a bad certificate is a startup error, not a runtime one
    return cfg


def tls_version(ssl_object: ssl.SSLObject | None) -> str:
    """``1.3`` for TLSv1.3, as nats-server's monitoring prints it."""
    if ssl_object is None:
        return ""
    return (ssl_object.version() or "").removeprefix("TLSv")
