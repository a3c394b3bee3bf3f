"""What a callout backend hands to the policy: an :class:`Identity`, or a :class:`CalloutError`.

Backends only turn credentials into an identity (STYLE rule 13); permissions are the policy's job.
The error classes below have stable ``code`` values for logs and metrics. They are for the service,
not the client: the service answers every one of them with the same generic refusal (STYLE rule 12),
so a client cannot tell an unknown user from a wrong password.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from trustkit.errors import CalloutError


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated principal.

    ``subject`` is the stable key the policy matches on (for LDAP the entry's uid, not what the
    client typed). ``name`` is for display and audit. ``groups`` is sorted and free of duplicates.
    ``attributes`` is read-only. ``expires_at`` (unix seconds) caps the issued user JWT; ``None``
    means the backend sets no limit. ``source`` names the backend that vouched for the identity.
    """

    subject: str
    name: str
    groups: tuple[str, ...]
    attributes: Mapping[str, str] = field(hash=False)
    expires_at: int | None
    source: str

    def __post_init__(self) -> None:
        # Frozen all the way down: a policy must not be able to edit what a backend vouched for.
        object.__setattr__(self, "groups", tuple(sorted(set(self.groups))))
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))


class BackendUnavailable(CalloutError):
    """The identity backend is down, slow, misconfigured or overloaded: nobody can be vouched for."""

    code = "backend_unavailable"


class InvalidCredentials(CalloutError):
    """The user exists but the password (or other credential) is wrong."""

    code = "invalid_credentials"


class UnknownUser(CalloutError):
    """No user matches the given name."""

    code = "unknown_user"


class AmbiguousUser(CalloutError):
    """More than one entry matches the given name; default-deny refuses to pick one."""

    code = "ambiguous_user"


class InvalidInput(CalloutError):
    """The credentials are refused before any backend is asked (empty, too long, NUL bytes...)."""

    code = "invalid_input"


class BackendConfigError(CalloutError):
    """A backend configuration that cannot work; raised when the backend is built, never per call."""

    code = "backend_config"


# --- token backends (OIDC, device keys) ---------------------------------------------------------


class IdpUnavailable(BackendUnavailable):
    """The identity provider's discovery document or JWKS cannot be fetched (or is unusable) and no
    fresh cached copy is left: tokens cannot be checked, so they are refused (fail closed)."""

    code = "idp_unavailable"


class DeviceRegistryUnavailable(BackendUnavailable):
    """The device registry file is missing or invalid: no device can be vouched for (fail closed)."""

    code = "device_registry"


class TokenTooLarge(InvalidInput):
    """The presented token is longer than the configured maximum; refused before any parsing."""

    code = "token_too_large"


class TokenInvalid(CalloutError):
    """Base of the token refusals below (a token that is not acceptable, whatever the reason)."""

    code = "token_invalid"


class TokenMalformed(TokenInvalid):
    """Not a compact JWS with a JSON header and a JSON-object payload (garbage, JWE, ``crit``...)."""

    code = "token_malformed"


class TokenAlgorithm(TokenInvalid):
    """The header's ``alg`` is not allowed (``none``, HMAC, anything off the allow-list), or it does
    not fit the key the token names (algorithm confusion)."""

    code = "token_algorithm"


class TokenKeyUnknown(TokenInvalid):
    """No verification key matches the token's ``kid`` (also after one rate-limited JWKS refresh)."""

    code = "token_key_unknown"


class TokenSignature(TokenInvalid):
    """The signature does not verify with the key that should have made it (tampered, wrong key)."""

    code = "token_signature"


class TokenExpired(TokenInvalid):
    """``exp`` has passed (beyond the configured leeway)."""

    code = "token_expired"


class TokenNotYetValid(TokenInvalid):
    """``nbf`` or ``iat`` lies in the future (beyond the configured leeway)."""

    code = "token_not_yet_valid"


class TokenIssuer(TokenInvalid):
    """``iss`` is not the configured issuer."""

    code = "token_issuer"


class TokenAudience(TokenInvalid):
    """``aud`` names none of the configured audiences."""

    code = "token_audience"


class TokenClaims(TokenInvalid):
    """A required claim is missing or has the wrong type or shape (``sub``, ``exp``, ``jti``, groups...)."""

    code = "token_claims"


class TokenLifetime(TokenInvalid):
    """A device token whose lifetime (``exp - iat``) exceeds the configured maximum."""

    code = "token_lifetime"


class TokenReplayed(TokenInvalid):
    """A device token (``jti``) already used within its validity window."""

    code = "token_replayed"


class ReplayCacheFull(CalloutError):
    """The replay cache holds its maximum of live token ids (in total, or for this one device):
    the token cannot be remembered, so it is refused rather than accepted unprotected."""

    code = "replay_cache_full"


class DeviceUnknown(CalloutError):
    """The device id is not in the registry."""

    code = "device_unknown"


class DeviceDisabled(CalloutError):
    """The device is in the registry with ``enabled = false``."""

    code = "device_disabled"


__all__ = [
    "AmbiguousUser",
    "BackendConfigError",
    "BackendUnavailable",
    "DeviceDisabled",
    "DeviceRegistryUnavailable",
    "DeviceUnknown",
    "Identity",
    "IdpUnavailable",
    "InvalidCredentials",
    "InvalidInput",
    "ReplayCacheFull",
    "TokenAlgorithm",
    "TokenAudience",
    "TokenClaims",
    "TokenExpired",
    "TokenInvalid",
    "TokenIssuer",
    "TokenKeyUnknown",
    "TokenLifetime",
    "TokenMalformed",
    "TokenNotYetValid",
    "TokenReplayed",
    "TokenSignature",
    "TokenTooLarge",
    "UnknownUser",
]
