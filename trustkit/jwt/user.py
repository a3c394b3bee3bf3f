"""User claims (Go ``user_claims.go``): permissions, limits and who issued the user."""

from __future__ import annotations

from dataclasses import dataclass, field

from trustkit import nkeys
from trustkit.jwt.claims import Claims
from trustkit.jwt.model import CIDRS, B, Field, I, L, Obj, ObjList, Ptr, S
from trustkit.jwt.types import (
    NO_LIMIT,
    Permission,
    ResponsePermission,
    TimeRange,
    UserPermissionLimits,
    validate_permissions,
    validate_user_limits,
)
from trustkit.jwt.validation import ValidationResults
from trustkit.nkeys import PrefixByte

__all__ = ["UserClaims"]


@dataclass(slots=True, kw_only=True)
class UserClaims(Claims):
    """A user JWT. Defaults mirror Go's ``NewUserClaims`` (subs/data/payload unlimited).

    ``issuer_account`` must be set when an account *signing key* issues the user.
    """

    pub: Permission = field(default_factory=Permission)
    sub_perms: Permission = field(default_factory=Permission)
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
    issuer_account: str = ""

    CLAIM_TYPE = "user"
    SUBJECT_KIND = PrefixByte.USER
    ISSUER_KINDS = frozenset({PrefixByte.ACCOUNT})
    NATS_FIELDS = (
        Field("pub", Obj(Permission)),
        # the JSON key "sub" inside nats; the attribute cannot be ``sub`` (the JWT subject)
        Field("sub", Obj(Permission), "sub_perms"),
        Field("resp", Ptr(ResponsePermission)),
        Field("src", CIDRS),
        Field("times", ObjList(TimeRange)),
        Field("times_location", S),
        Field("subs", I),
        Field("data", I),
        Field("payload", I),
        Field("bearer_token", B),
        Field("proxy_required", B),
        Field("allowed_connection_types", L),
        Field("issuer_account", S),
    )

    # --- the permission/limit part as one value (scoped keys compare and replace it whole) ---
    @property
    def permission_limits(self) -> UserPermissionLimits:
        return UserPermissionLimits(
            pub=self.pub,
            sub=self.sub_perms,
            resp=self.resp,
            src=self.src,
            times=self.times,
            times_location=self.times_location,
            subs=self.subs,
            data=self.data,
            payload=self.payload,
            bearer_token=self.bearer_token,
            proxy_required=self.proxy_required,
            allowed_connection_types=self.allowed_connection_types,
        )

    def set_permission_limits(self, upl: UserPermissionLimits) -> None:
        self.pub, self.sub_perms, self.resp = upl.pub, upl.sub, upl.resp
        self.src, self.times, self.times_location = upl.src, upl.times, upl.times_location
        self.subs, self.data, self.payload = upl.subs, upl.data, upl.payload
        self.bearer_token, self.proxy_required = upl.bearer_token, upl.proxy_required
        self.allowed_connection_types = upl.allowed_connection_types

    def set_scoped(self) -> None:
        """Clear every permission and limit, as a user of a scoped signing key must be (Go ``SetScoped``)."""
        self.set_permission_limits(UserPermissionLimits.from_json({}))

    def has_empty_permissions(self) -> bool:
        """True if no permission or limit is set at all (what a scoped key's user must carry)."""
        return self.permission_limits.is_zero()

    def _validate(self, vr: ValidationResults) -> None:
        validate_permissions(vr, self.pub, self.sub_perms)
        if self.src or self.times or self.times_location or self.allowed_connection_types:
            validate_user_limits(vr, self.permission_limits)
        if self.issuer_account and not nkeys.is_valid_public_key(self.issuer_account, PrefixByte.ACCOUNT):
            vr.add_error("account_id is not an account public key")
