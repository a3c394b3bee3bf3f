"""NATS JWT v2: one module per claim type, a Go-byte-exact encoder, a verifying decoder."""

from trustkit.jwt.account import ALL_USERS, AccountClaims, is_revoked
from trustkit.jwt.activation import ActivationClaims
from trustkit.jwt.authorization import (
    AUTH_REQUEST_AUDIENCE,
    AuthorizationRequestClaims,
    AuthorizationResponseClaims,
    ClientInformation,
    ClientTLS,
    ConnectOptions,
    ServerID,
)
from trustkit.jwt.claims import LIB_VERSION, Claims
from trustkit.jwt.codec import MAX_TOKEN_SIZE
from trustkit.jwt.decoder import decode, peek_unverified
from trustkit.jwt.generic import GenericClaims
from trustkit.jwt.operator import OperatorClaims
from trustkit.jwt.types import (
    NO_LIMIT,
    SERVICE,
    STREAM,
    AccountLimits,
    Export,
    ExternalAuthorization,
    Import,
    JetStreamLimits,
    MsgTrace,
    Permission,
    Permissions,
    ResponsePermission,
    ServiceLatency,
    TimeRange,
    UserPermissionLimits,
    UserScope,
    WeightedMapping,
)
from trustkit.jwt.user import UserClaims
from trustkit.jwt.validation import ValidationIssue, ValidationResults

__all__ = [
    "ALL_USERS",
    "AUTH_REQUEST_AUDIENCE",
    "LIB_VERSION",
    "MAX_TOKEN_SIZE",
    "NO_LIMIT",
    "SERVICE",
    "STREAM",
    "AccountClaims",
    "AccountLimits",
    "ActivationClaims",
    "AuthorizationRequestClaims",
    "AuthorizationResponseClaims",
    "Claims",
    "ClientInformation",
    "ClientTLS",
    "ConnectOptions",
    "Export",
    "ExternalAuthorization",
    "GenericClaims",
    "Import",
    "JetStreamLimits",
    "MsgTrace",
    "OperatorClaims",
    "Permission",
    "Permissions",
    "ResponsePermission",
    "ServerID",
    "ServiceLatency",
    "TimeRange",
    "UserClaims",
    "UserPermissionLimits",
    "UserScope",
    "ValidationIssue",
    "ValidationResults",
    "WeightedMapping",
    "decode",
    "is_revoked",
    "peek_unverified",
]
