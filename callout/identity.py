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


__all__ = [
    "AmbiguousUser",
    "BackendConfigError",
    "BackendUnavailable",
    "Identity",
    "InvalidCredentials",
    "InvalidInput",
    "UnknownUser",
]
