"""Auth-callout claims (Go ``authorization_claims.go``): the server's request, the service's response."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trustkit import nkeys
from trustkit.jwt.claims import Claims
from trustkit.jwt.model import Custom, Field, I, L, Model, Obj, Ptr, S, extra_field, fail
from trustkit.jwt.validation import ValidationResults
from trustkit.nkeys import PrefixByte

__all__ = [
    "AUTH_REQUEST_AUDIENCE",
    "AuthorizationRequestClaims",
    "AuthorizationResponseClaims",
    "ClientInformation",
    "ClientTLS",
    "ConnectOptions",
    "ServerID",
]

#: ``aud`` of every authorization request.
AUTH_REQUEST_AUDIENCE = "nats-authorization-request"


@dataclass(slots=True)
class ServerID(Model):
    name: str = ""
    host: str = ""
    id: str = ""
    version: str = ""
    cluster: str = ""
    tags: list[str] = field(default_factory=list)
    xkey: str = ""
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (
        Field("name", S, omitempty=False),
        Field("host", S, omitempty=False),
        Field("id", S, omitempty=False),
        Field("version", S),
        Field("cluster", S),
        Field("tags", L),
        Field("xkey", S),
    )


@dataclass(slots=True)
class ClientInformation(Model):
    host: str = ""
    id: int = 0
    user: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    name_tag: str = ""
    kind: str = ""
    type: str = ""
    mqtt_id: str = ""
    nonce: str = ""
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (
        Field("host", S),
        Field("id", I),
        Field("user", S),
        Field("name", S),
        Field("tags", L),
        Field("name_tag", S),
        Field("kind", S),
        Field("type", S),
        Field("mqtt_id", S),
        Field("nonce", S),
    )


@dataclass(slots=True)
class ConnectOptions(Model):
    """What the client sent in CONNECT — credentials in plaintext (hence xkey encryption)."""

    jwt: str = ""
    nkey: str = ""
    sig: str = ""
    auth_token: str = ""
    user: str = ""
    password: str = field(default="", repr=False)
    name: str = ""
    lang: str = ""
    version: str = ""
    protocol: int = 0
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (
        Field("jwt", S),
        Field("nkey", S),
        Field("sig", S),
        Field("auth_token", S),
        Field("user", S),
        Field("pass", S, "password"),
        Field("name", S),
        Field("lang", S),
        Field("version", S),
        Field("protocol", I, omitempty=False),
    )

    def __repr__(self) -> str:  # never show secrets
        return f"ConnectOptions(user={self.user!r}, name={self.name!r}, lang={self.lang!r})"


def _load_chains(key: str, raw: Any) -> list[list[str]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(
        isinstance(c, list) and all(isinstance(x, str) for x in c) for c in raw
    ):
        raise fail(key, "a list of lists of strings")
    return [list(c) for c in raw]


@dataclass(slots=True)
class ClientTLS(Model):
    version: str = ""
    cipher: str = ""
    certs: list[str] = field(default_factory=list)
    verified_chains: list[list[str]] = field(default_factory=list)
    server_name: str = ""
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (
        Field("version", S),
        Field("cipher", S),
        Field("certs", L),
        Field("verified_chains", Custom(lambda v: [list(c) for c in v], _load_chains, lambda v: not v)),
        Field("server_name", S),
    )


@dataclass(slots=True, kw_only=True)
class AuthorizationRequestClaims(Claims):
    """Sent by the server (signed by its ``N…`` key) on ``$SYS.REQ.USER.AUTH``."""

    server_id: ServerID = field(default_factory=ServerID)
    user_nkey: str = ""
    client_info: ClientInformation = field(default_factory=ClientInformation)
    connect_opts: ConnectOptions = field(default_factory=ConnectOptions)
    client_tls: ClientTLS | None = None
    request_nonce: str = ""

    CLAIM_TYPE = "authorization_request"
    ISSUER_KINDS = frozenset({PrefixByte.SERVER})
    NATS_FIELDS = (
        Field("server_id", Obj(ServerID)),
        Field("user_nkey", S, omitempty=False),
        Field("client_info", Obj(ClientInformation)),
        Field("connect_opts", Obj(ConnectOptions)),
        Field("client_tls", Ptr(ClientTLS)),
        Field("request_nonce", S),
    )

    def _validate(self, vr: ValidationResults) -> None:
        if not self.user_nkey:
            vr.add_error("User nkey is required")
        elif not nkeys.is_valid_public_key(self.user_nkey, PrefixByte.USER):
            vr.add_error(f"User nkey {self.user_nkey!r} is not a valid user public key")


@dataclass(slots=True, kw_only=True)
class AuthorizationResponseClaims(Claims):
    """The callout's answer: ``sub`` = the request's ``user_nkey``, ``aud`` = the server ID."""

    jwt: str = ""
    error: str = ""
    issuer_account: str = ""

    CLAIM_TYPE = "authorization_response"
    ISSUER_KINDS = frozenset({PrefixByte.ACCOUNT})
    NATS_FIELDS = (
        Field("jwt", S),
        Field("error", S),
        Field("issuer_account", S),
    )

    def _validate(self, vr: ValidationResults) -> None:
        if not nkeys.is_valid_public_key(self.sub, PrefixByte.USER):
            vr.add_error("Subject must be a user public key")
        if not nkeys.is_valid_public_key(self.aud, PrefixByte.SERVER):
            vr.add_error("Audience must be a server public key")
        if not self.error and not self.jwt:
            vr.add_error("Error or Jwt is required")
        if self.error and self.jwt:
            vr.add_error("Only Error or Jwt can be set")
        if self.issuer_account and not nkeys.is_valid_public_key(self.issuer_account, PrefixByte.ACCOUNT):
            vr.add_error("issuer_account is not an account public key")
