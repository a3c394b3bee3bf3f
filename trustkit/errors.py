"""The one exception tree of trustkit.

Every public function raises a :class:`TrustkitError` subclass on bad input. Each class has a
stable ``code`` (a short snake_case string) that the CLI maps to exit statuses and the broker to
``-ERR`` texts, each in one table. The message names what is wrong and never contains a secret.
"""

from __future__ import annotations


class TrustkitError(Exception):
    """Root of all trustkit errors. ``code`` is stable across releases."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


# --- keys -------------------------------------------------------------------------------------


class NKeyError(TrustkitError):
    """A malformed, mistyped or unusable nkey (messages mirror Go's ``nkeys:`` errors)."""

    code = "nkey_invalid"


class SignatureError(NKeyError):
    """An Ed25519 signature that does not verify."""

    code = "signature_invalid"


class SealError(NKeyError):
    """xkv1 seal/open failed (bad version, too short, cannot decrypt)."""

    code = "seal_invalid"


# --- subjects ---------------------------------------------------------------------------------


class SubjectError(TrustkitError):
    code = "subject_invalid"


# --- tokens -----------------------------------------------------------------------------------


class TokenError(TrustkitError):
    """A JWT that cannot be accepted."""

    code = "token_invalid"


class MalformedTokenError(TokenError):
    code = "token_malformed"


class TokenSignatureError(TokenError):
    code = "token_signature"


class IssuerError(TokenError):
    """The issuer's key type is not allowed for the claim type, or the chain does not hold."""

    code = "token_issuer"


class ClaimTypeError(TokenError):
    """The token is of another claim type than the caller expected."""

    code = "token_claim_type"


class UnsupportedVersionError(TokenError):
    """A v1 token, or one from a newer library."""

    code = "token_version"


class ClaimsInvalidError(TokenError):
    """Claims that fail validation (carries the ValidationResults)."""

    code = "claims_invalid"

    def __init__(self, message: str, *, results: object = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.results = results


class EncodeError(TokenError):
    """Claims that cannot be encoded (wrong subject or signer kind)."""

    code = "token_encode"


# --- creds ------------------------------------------------------------------------------------


class CredsError(TrustkitError):
    code = "creds_invalid"


# --- chain of trust ---------------------------------------------------------------------------


class AuthorizationError(TrustkitError):
    """A connection refused by the chain of trust. ``code`` says which check refused it.

    Codes: ``user_jwt_invalid``, ``user_expired``, ``user_not_yet_valid``, ``nonce_signature``,
    ``nonce_required``, ``account_unknown``, ``account_invalid``, ``account_expired``,
    ``account_not_yet_valid``, ``operator_untrusted``, ``issuer_not_account``,
    ``scoped_with_permissions``, ``strict_signing_keys``, ``user_revoked``, ``bearer_disallowed``,
    ``source_network``, ``time_window``, ``connection_type``, ``account_disabled``.
    """

    code = "authorization"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


# --- later layers (store, callout, broker) ----------------------------------------------------


class StoreError(TrustkitError):
    code = "store"


class NetworkError(TrustkitError):
    """A server could not be reached, or refused or did not answer a request."""

    code = "network"


class CalloutError(TrustkitError):
    code = "callout"


class BrokerError(TrustkitError):
    code = "broker"


# --- one table: error code → CLI exit status ----------------------------------------------------

#: Exit statuses of the ``trustkit`` CLI, by error class (most specific first). 0 = success,
#: 1 = unexpected internal error, 2 = usage (typer's own).
EXIT_STATUS: tuple[tuple[type[TrustkitError], int], ...] = (
    (StoreError, 3),
    (CredsError, 4),
    (TokenError, 4),
    (NKeyError, 4),
    (SubjectError, 4),
    (AuthorizationError, 5),
    (NetworkError, 7),
    (CalloutError, 6),
    (BrokerError, 6),
    (TrustkitError, 1),
)


def exit_status(error: TrustkitError) -> int:
    """The CLI exit status for ``error`` (see :data:`EXIT_STATUS`)."""
    for cls, status in EXIT_STATUS:
        if isinstance(error, cls):
            return status
    return 1  # pragma: no cover - TrustkitError is the last row
