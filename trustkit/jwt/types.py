"""Shared claim parts: permissions, limits, signing keys, imports/exports, mappings, callout block.

Field order and omit rules follow nats-io/jwt v2 (``types.go``, ``account_claims.go``,
``signingkeys.go``, ``exports.go``, ``imports.go``). Constructor defaults mirror Go's ``New…``
helpers (limits start at -1 = unlimited); decoding mirrors ``json.Unmarshal`` into a zero struct.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from trustkit.jwt.model import (
    CIDRS,
    INTMAP,
    B,
    Custom,
    Field,
    I,
    L,
    Model,
    Obj,
    ObjList,
    ObjMap,
    Ptr,
    S,
    extra_field,
    fail,
)
from trustkit.subject import _problem as subject_problem

if TYPE_CHECKING:
    from trustkit.jwt.validation import ValidationResults

NO_LIMIT = -1

STREAM = "stream"
SERVICE = "service"

#: Connection types a user JWT may allow (Go ``jwt.ConnectionType*``).
CONNECTION_TYPES = frozenset(
    {"STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS", "IN_PROCESS"}
)

RESPONSE_TYPES = frozenset({"Singleton", "Stream", "Chunked"})


# --- permissions ----------------------------------------------------------------------------


@dataclass(slots=True)
class Permission(Model):
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (Field("allow", L), Field("deny", L))

    def empty(self) -> bool:
        return not self.allow and not self.deny


@dataclass(slots=True)
class ResponsePermission(Model):
    """``allow_responses``: ``max`` messages within ``ttl`` nanoseconds (both always written)."""

    max: int = 0
    ttl: int = 0  # nanoseconds (Go time.Duration)
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (Field("max", I, omitempty=False), Field("ttl", I, omitempty=False))


_PERMISSION_FIELDS = (
    Field("pub", Obj(Permission)),
    Field("sub", Obj(Permission)),
    Field("resp", Ptr(ResponsePermission)),
)


@dataclass(slots=True)
class Permissions(Model):
    """Account ``default_permissions``: pub, sub and an optional response permission."""

    pub: Permission = field(default_factory=Permission)
    sub: Permission = field(default_factory=Permission)
    resp: ResponsePermission | None = None
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = _PERMISSION_FIELDS


@dataclass(slots=True)
class TimeRange(Model):
    start: str = ""
    end: str = ""
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (Field("start", S), Field("end", S))


@dataclass(slots=True)
class UserPermissionLimits(Model):
    """Go ``UserPermissionLimits``: a user's permissions and limits; also a scoped key template."""

    pub: Permission = field(default_factory=Permission)
    sub: Permission = field(default_factory=Permission)
    resp: ResponsePermission | None = None
    src: list[str] = field(default_factory=list)
    times: list[TimeRange] = field(default_factory=list)
    times_location: str = ""
    subs: int = NO_LIMIT
    data: int = NO_LIMIT
    payload: int = NO_LIMIT
    bearer_token: bool = False
    proxy_required: bool = False
    allowed_connection_types: list[str] = field(default_factory=list)
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (
        *_PERMISSION_FIELDS,
        Field("src", CIDRS),
        Field("times", ObjList(TimeRange)),
        Field("times_location", S),
        Field("subs", I),
        Field("data", I),
        Field("payload", I),
        Field("bearer_token", B),
        Field("proxy_required", B),
        Field("allowed_connection_types", L),
    )


# --- account limits -------------------------------------------------------------------------

_JS_FIELDS = (
    Field("mem_storage", I),
    Field("disk_storage", I),
    Field("streams", I),
    Field("consumer", I),
    Field("max_ack_pending", I),
    Field("mem_max_stream_bytes", I),
    Field("disk_max_stream_bytes", I),
    Field("max_bytes_required", B),
)


@dataclass(slots=True)
class JetStreamLimits(Model):
    """One JetStream tier (``R1``, ``R3``…). 0 storage = JetStream disabled; -1 = unlimited."""

    mem_storage: int = 0
    disk_storage: int = 0
    streams: int = 0
    consumer: int = 0
    max_ack_pending: int = 0
    mem_max_stream_bytes: int = 0
    disk_max_stream_bytes: int = 0
    max_bytes_required: bool = False
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = _JS_FIELDS

    def enabled(self) -> bool:
        return self.mem_storage != 0 or self.disk_storage != 0


@dataclass(slots=True)
class AccountLimits(Model):
    """Go ``OperatorLimits`` flattened: NATS limits, account limits, JetStream limits, tiers."""

    subs: int = NO_LIMIT
    data: int = NO_LIMIT
    payload: int = NO_LIMIT
    imports: int = NO_LIMIT
    exports: int = NO_LIMIT
    wildcards: bool = True
    disallow_bearer: bool = False
    conn: int = NO_LIMIT
    leaf: int = NO_LIMIT
    mem_storage: int = 0
    disk_storage: int = 0
    streams: int = 0
    consumer: int = 0
    max_ack_pending: int = 0
    mem_max_stream_bytes: int = 0
    disk_max_stream_bytes: int = 0
    max_bytes_required: bool = False
    tiered_limits: dict[str, JetStreamLimits] = field(default_factory=dict)
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (
        Field("subs", I),
        Field("data", I),
        Field("payload", I),
        Field("imports", I),
        Field("exports", I),
        Field("wildcards", B),
        Field("disallow_bearer", B),
        Field("conn", I),
        Field("leaf", I),
        *_JS_FIELDS,
        Field("tiered_limits", ObjMap(JetStreamLimits)),
    )

    def jetstream_global(self) -> JetStreamLimits:
        return JetStreamLimits(
            self.mem_storage,
            self.disk_storage,
            self.streams,
            self.consumer,
            self.max_ack_pending,
            self.mem_max_stream_bytes,
            self.disk_max_stream_bytes,
            self.max_bytes_required,
        )

    def jetstream_enabled(self) -> bool:
        return self.jetstream_global().enabled() or any(t.enabled() for t in self.tiered_limits.values())


# --- signing keys ---------------------------------------------------------------------------

USER_SCOPE = "user_scope"


@dataclass(slots=True)
class UserScope(Model):
    """A scoped account signing key: users it signs get ``template`` instead of own permissions."""

    key: str = ""
    role: str = ""
    template: UserPermissionLimits = field(default_factory=UserPermissionLimits)
    description: str = ""
    kind: str = USER_SCOPE
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (
        Field("kind", S, omitempty=False),
        Field("key", S, omitempty=False),
        Field("role", S, omitempty=False),
        Field("template", Obj(UserPermissionLimits)),
        Field("description", S, omitempty=False),
    )


SigningKeyEntry = str | UserScope


def _dump_signing_keys(value: dict[str, UserScope | None]) -> list[Any]:
    return [value[k].to_json() if value[k] is not None else k for k in sorted(value)]  # type: ignore[union-attr]


def _load_signing_keys(key: str, raw: Any) -> dict[str, UserScope | None]:
    if raw is None:
        return {}
    out: dict[str, UserScope | None] = {}
    if isinstance(raw, dict):  # pre-array form: {"A…": "A…"}
        raw = list(raw.values())
    if not isinstance(raw, list):
        raise fail(key, "a list of keys or scopes")
    for item in raw:
        if isinstance(item, str):
            out[item] = None
        elif isinstance(item, dict):
            kind = item.get("kind")
            if kind != USER_SCOPE:
                raise fail(key, f"a list of keys or user_scope objects (got kind {kind!r})")
            scope = UserScope.from_json(item)
            # Go unmarshals into NewUserScope(), whose template limits start at -1 (unlimited):
            # absent subs/data/payload therefore mean unlimited, not 0
            template = item.get("template")
            present = template if isinstance(template, dict) else {}
            for name in ("subs", "data", "payload"):
                if present.get(name) is None:
                    setattr(scope.template, name, NO_LIMIT)
            out[scope.key] = scope
        else:
            raise fail(key, "a list of keys or scopes")
    return out


#: ``signing_keys``: map key → scope (None for a plain key); written as a sorted JSON array.
SIGNING_KEYS = Custom(_dump_signing_keys, _load_signing_keys, lambda v: not v)


# --- imports / exports ----------------------------------------------------------------------


def _dump_sampling(value: int) -> Any:
    return "headers" if value == 0 else value


def _load_sampling(key: str, raw: Any) -> int:
    if isinstance(raw, str) and raw.lower() == "headers":
        return 0
    if raw is None:
        return 0
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise fail(key, 'an integer percentage or "headers"')
    return raw


@dataclass(slots=True)
class ServiceLatency(Model):
    """``sampling`` 1..100 percent, or 0 meaning ``"headers"``; ``results`` subject."""

    sampling: int = 0
    results: str = ""
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (
        Field("sampling", Custom(_dump_sampling, _load_sampling), omitempty=False),
        Field("results", S, omitempty=False),
    )


@dataclass(slots=True)
class Export(Model):
    name: str = ""
    subject: str = ""
    type: str = ""
    token_req: bool = False
    revocations: dict[str, int] = field(default_factory=dict)
    response_type: str = ""
    response_threshold: int = 0  # nanoseconds
    service_latency: ServiceLatency | None = None
    account_token_position: int = 0
    advertise: bool = False
    allow_trace: bool = False
    description: str = ""
    info_url: str = ""
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (
        Field("name", S),
        Field("subject", S),
        Field("type", S),
        Field("token_req", B),
        Field("revocations", INTMAP),
        Field("response_type", S),
        Field("response_threshold", I),
        Field("service_latency", Ptr(ServiceLatency)),
        Field("account_token_position", I),
        Field("advertise", B),
        Field("allow_trace", B),
        Field("description", S),
        Field("info_url", S),
    )


@dataclass(slots=True)
class Import(Model):
    name: str = ""
    subject: str = ""
    account: str = ""
    token: str = ""
    to: str = ""
    local_subject: str = ""
    type: str = ""
    share: bool = False
    allow_trace: bool = False
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (
        Field("name", S),
        Field("subject", S),
        Field("account", S),
        Field("token", S),
        Field("to", S),
        Field("local_subject", S),
        Field("type", S),
        Field("share", B),
        Field("allow_trace", B),
    )


# --- mappings, callout, tracing ---------------------------------------------------------------


@dataclass(slots=True)
class WeightedMapping(Model):
    subject: str = ""
    weight: int = 0  # 0 = 100
    cluster: str = ""
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (Field("subject", S, omitempty=False), Field("weight", I), Field("cluster", S))

    def effective_weight(self) -> int:
        return 100 if self.weight == 0 else self.weight


@dataclass(slots=True)
class ExternalAuthorization(Model):
    """The account's auth-callout block; enabled iff ``auth_users`` is non-empty."""

    auth_users: list[str] = field(default_factory=list)
    allowed_accounts: list[str] = field(default_factory=list)
    xkey: str = ""
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (Field("auth_users", L), Field("allowed_accounts", L), Field("xkey", S))

    def enabled(self) -> bool:
        return bool(self.auth_users)


@dataclass(slots=True)
class MsgTrace(Model):
    dest: str = ""
    sampling: int = 0
    extra: Mapping[str, Any] = extra_field()

    JSON_FIELDS = (Field("dest", S), Field("sampling", I))


# --- validation of shared parts (Go Permission/Limits/TimeRange Validate) -------------------

_TIME_RE = re.compile(r"([01]?[0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]")


def validate_subject(vr: ValidationResults, subject: str, what: str = "subject") -> None:
    """Go ``Subject.Validate`` plus the empty-token rules of nats-server."""
    problem = subject_problem(subject, True) if isinstance(subject, str) else "subject must be a string"
    if problem is not None:
        vr.add_error(f"{what}: {problem}")


@lru_cache(maxsize=4096)
def _permission_problems(entries: tuple[str, ...], permit_queue: bool) -> tuple[str, ...]:
    """Errors for one allow/deny list (Go ``checkPermission``). Cached: a pure function of the
    list, and the same lists recur across users and across connects."""
    errors: list[str] = []
    for entry in entries:
        parts = entry.split(" ")
        if len(parts) > 2:
            errors.append(f'Permission Subject "{entry}" contains too many spaces')
            continue
        for part, what in zip(parts, ("permission subject", "permission queue"), strict=False):
            problem = subject_problem(part, True)
            if problem is not None:
                errors.append(f"{what}: {problem}")
        if len(parts) == 2 and not permit_queue:
            errors.append(f'Permission Subject "{entry}" is not allowed to contain queue')
    return tuple(errors)


def _validate_permission(vr: ValidationResults, perm: Permission, *, permit_queue: bool) -> None:
    if perm.allow or perm.deny:
        for message in _permission_problems((*perm.allow, *perm.deny), permit_queue):
            vr.add_error(message)


def validate_permissions(vr: ValidationResults, pub: Permission, sub: Permission) -> None:
    """Go ``Permissions.Validate``: subscribe entries may name a queue, publish entries may not."""
    _validate_permission(vr, sub, permit_queue=True)
    _validate_permission(vr, pub, permit_queue=False)


def validate_user_limits(vr: ValidationResults, upl: UserPermissionLimits) -> None:
    import ipaddress

    for cidr in upl.src:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            vr.add_error(f"invalid cidr {cidr!r} in user src limits")
        else:
            if "/" not in cidr:  # Go's net.ParseCIDR requires a prefix length
                vr.add_error(f"invalid cidr {cidr!r} in user src limits")
    for tr in upl.times:
        if tr.start == "":
            vr.add_error("time ranges start must contain a start")
        elif not _TIME_RE.fullmatch(tr.start):
            vr.add_error(f"start in time range is invalid {tr.start!r}")
        if tr.end == "":
            vr.add_error("time ranges end must contain an end")
        elif not _TIME_RE.fullmatch(tr.end):
            vr.add_error(f"end in time range is invalid {tr.end!r}")
    if upl.times_location:
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(upl.times_location)
        except (ValueError, OSError, KeyError):
            vr.add_error(f"could not parse iana time zone by name: {upl.times_location!r}")
    for ct in upl.allowed_connection_types:
        if ct not in CONNECTION_TYPES:
            vr.add_warning(f"unknown connection type {ct!r}")
