"""The standard claims shared by every NATS JWT (Go ``ClaimsData`` + ``GenericFields``).

A claim type subclasses :class:`Claims`, names its ``CLAIM_TYPE``, the key kind of its subject,
the key kinds allowed to sign it, and lists its ``nats`` fields in Go order (``NATS_FIELDS``).
``encode`` writes the same bytes as Go's ``Encode`` for the same claims and ``iat``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from trustkit import nkeys
from trustkit.errors import EncodeError
from trustkit.jwt.codec import HEADER_B64, b64url_encode, go_json, jti_of, normalize_floats
from trustkit.jwt.model import NO_EXTRA, Field, I, S, compile_source, construct_source, fail, field_source
from trustkit.jwt.validation import ValidationResults
from trustkit.nkeys import KeyPair, PrefixByte

__all__ = ["CLAIM_CLASSES", "LIB_VERSION", "Claims"]

#: The JWT library version the claims are written for (``nats.version``).
LIB_VERSION = 2

#: claim type name (``"user"``…) → class; filled by subclasses.
CLAIM_CLASSES: dict[str, type[Claims]] = {}

C = TypeVar("C", bound="Claims")

_STD_KEYS = frozenset({"aud", "exp", "jti", "iat", "iss", "name", "nbf", "sub", "nats"})
_TAIL_KEYS = frozenset({"tags", "type", "version"})


_STD_FIELDS = tuple(Field(k, S) for k in ("aud", "jti", "iss", "name", "sub")) + tuple(
    Field(k, I) for k in ("exp", "iat", "nbf")
)


def _compile_from_payload(cls: type[Claims]) -> Any:
    """``(cls, payload) -> claims``: standard claims, the ``nats`` fields, tags and unknown keys."""
    env: dict[str, Any] = {"STD_KEYS": _STD_KEYS, "NATS_KNOWN": cls._NATS_KNOWN, "tags_load": _tags_load}
    body = ["    seen = 0", *field_source(_STD_FIELDS, "payload", "s", env)]
    body += [
        "    nats = payload.get('nats')",
        "    if nats is None: nats = {}",
        "    elif nats.__class__ is not dict: raise fail('nats', 'an object')",
        "    else: seen += 1",
        "    std_seen = seen",
        "    seen = ('tags' in nats) + ('type' in nats) + ('version' in nats)",
    ]
    assigned = {f.attr: f"s{i}" for i, f in enumerate(_STD_FIELDS)}
    if cls.NATS_FIELDS:
        body += field_source(cls.NATS_FIELDS, "nats", "n", env)
        assigned.update((f.attr, f"n{i}") for i, f in enumerate(cls.NATS_FIELDS))
    assigned["tags"] = "tags_load('tags', nats.get('tags'))"
    body += ["    " + line for line in construct_source(cls, assigned, "obj", env)]
    body += [
        # a key counted in seen is known: more keys than that means unknown ones to keep
        "    if len(payload) > std_seen:",
        "        obj.extra = unknown_keys(payload, STD_KEYS)",
    ]
    if cls.NATS_FIELDS:  # generic claims: ``nats`` is a plain map in Go too (no field matching)
        body += [
            "    if len(nats) > seen:",
            "        obj.nats_extra = unknown_keys(nats, NATS_KNOWN)",
        ]
    body += [
        "    return obj",
    ]
    return compile_source(f"from_payload_{cls.__name__}", "cls, payload", body, env)


def _tags_load(key: str, raw: Any) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise fail(key, "a list of strings")
    return list(raw)


@dataclass(slots=True, kw_only=True)
class Claims:
    """Standard JWT claims plus the ``tags`` every NATS claim type carries.

    Times are unix seconds. ``iat``, ``iss`` and ``jti`` are set by :meth:`encode`.
    ``extra`` / ``nats_extra`` hold unknown keys of the payload and of ``nats`` (round-tripped).
    ``token`` is the original string when the claims came from :func:`trustkit.jwt.decoder`.
    """

    sub: str = ""
    name: str = ""
    aud: str = ""
    exp: int = 0
    nbf: int = 0
    iat: int = 0
    iss: str = ""
    jti: str = ""
    tags: list[str] = field(default_factory=list)
    extra: Mapping[str, Any] = field(default=NO_EXTRA, compare=False, repr=False)
    nats_extra: Mapping[str, Any] = field(default=NO_EXTRA, compare=False, repr=False)
    token: str | None = field(default=None, compare=False, repr=False)

    CLAIM_TYPE: ClassVar[str] = ""
    #: kind of key ``sub`` must be (None: not checked)
    SUBJECT_KIND: ClassVar[PrefixByte | None] = None
    #: key kinds allowed to sign (Go ``ExpectedPrefixes``); empty = any
    ISSUER_KINDS: ClassVar[frozenset[PrefixByte]] = frozenset()
    NATS_FIELDS: ClassVar[tuple[Field, ...]] = ()
    _NATS_KNOWN: ClassVar[frozenset[str]] = frozenset()
    _FROM_PAYLOAD: ClassVar[Callable[[type[Any], dict[str, Any]], Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # no zero-argument super() here: dataclass(slots=True) rebuilds the class, which breaks it
        cls._NATS_KNOWN = frozenset(f.key for f in cls.NATS_FIELDS) | _TAIL_KEYS
        # the generated reader is compiled on first use (from_payload): cheap imports for the CLI
        if cls.CLAIM_TYPE:
            CLAIM_CLASSES[cls.CLAIM_TYPE] = cls

    # --- JSON ---------------------------------------------------------------------------------
    def standard_json(self) -> dict[str, Any]:
        """Go ``ClaimsData`` in order aud, exp, jti, iat, iss, name, nbf, sub (omitempty)."""
        out: dict[str, Any] = {}
        if self.aud:
            out["aud"] = self.aud
        if self.exp:
            out["exp"] = self.exp
        if self.jti:
            out["jti"] = self.jti
        if self.iat:
            out["iat"] = self.iat
        if self.iss:
            out["iss"] = self.iss
        if self.name:
            out["name"] = self.name
        if self.nbf:
            out["nbf"] = self.nbf
        if self.sub:
            out["sub"] = self.sub
        return out

    def nats_json(self) -> dict[str, Any]:
        """The ``nats`` object: type fields in Go order, then tags, type, version, then unknowns."""
        out: dict[str, Any] = {}
        for f in self.NATS_FIELDS:
            value = getattr(self, f.attr)
            if f.omitempty and f.codec.empty(value):
                continue
            out[f.key] = f.codec.dump(value)
        if self.tags:
            out["tags"] = list(self.tags)
        out["type"] = self.CLAIM_TYPE
        out["version"] = LIB_VERSION
        for k, v in self.nats_extra.items():
            if k not in out:
                out[k] = v
        return out

    def payload_json(self) -> dict[str, Any]:
        out = self.standard_json()
        for k, v in self.extra.items():
            if k not in out and k != "nats":
                out[k] = v
        out["nats"] = self.nats_json()
        return out

    def payload_bytes(self) -> bytes:
        return go_json(self.payload_json())

    @classmethod
    def from_payload(cls: type[C], payload: dict[str, Any]) -> C:
        """Build claims from a decoded payload object (no signature check: see ``decode``).

        The payload is consumed like :meth:`Model.from_json`'s ``data`` (lists are not copied)."""
        if payload.__class__ is not dict:
            raise fail("payload", "an object")
        obj: C = cls._reader()(cls, payload)
        return obj

    @classmethod
    def _reader(cls) -> Callable[[type[Any], dict[str, Any]], Any]:
        fn = cls.__dict__.get("_FROM_PAYLOAD")
        if fn is None:
            fn = staticmethod(_compile_from_payload(cls))
            cls._FROM_PAYLOAD = fn
        reader: Callable[[type[Any], dict[str, Any]], Any] = fn.__func__
        return reader

    # --- encoding -----------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Hook for Go's pre-encode normalisation (sorting exports/imports…)."""

    def encode(self, signer: KeyPair, *, iat: int) -> str:
        """Sign with ``signer`` as Go's ``Encode`` does: sets ``iss``, ``iat`` and ``jti``.

        ``iat`` is the issue time in unix seconds (the caller's clock: this module reads none).
        Raises :class:`EncodeError` if the subject or the signer is of the wrong key kind.
        """
        if not self.sub:
            raise EncodeError("subject is not set")
        if self.SUBJECT_KIND is not None and not nkeys.is_valid_public_key(self.sub, self.SUBJECT_KIND):
            raise EncodeError(f"expected subject to be {self.SUBJECT_KIND.label} public key")
        if self.ISSUER_KINDS and signer.kind not in self.ISSUER_KINDS:
            kinds = ", ".join(sorted(k.label for k in self.ISSUER_KINDS))
            raise EncodeError(
                f"{self.CLAIM_TYPE or 'generic'} claims cannot be signed by a {signer.kind.label} key"
                f" (expected {kinds})"
            )
        if not signer.has_seed:
            raise EncodeError("signer has no seed: cannot sign")
        if iat.__class__ is not int or not 0 < iat <= 2**63 - 1:
            raise EncodeError("iat must be positive unix seconds that fit in 64 bits")
        self._prepare()
        self.iss = signer.public_key
        self.iat = iat
        self.jti = ""
        self.jti = jti_of(go_json(self.standard_json()))
        self.extra = normalize_floats(self.extra)
        self.nats_extra = normalize_floats(self.nats_extra)
        signing_input = HEADER_B64 + "." + b64url_encode(self.payload_bytes())
        token = signing_input + "." + b64url_encode(signer.sign(signing_input.encode("ascii")))
        self.token = token
        return token

    # --- validation ---------------------------------------------------------------------------
    def validate(self, *, now: int, results: ValidationResults | None = None) -> ValidationResults:
        """Collect problems like Go's ``Validate``: errors, warnings and time checks."""
        vr = results if results is not None else ValidationResults()
        self._validate_times(vr, now)
        self._validate_subject(vr)
        self._validate(vr)
        return vr

    def _validate_subject(self, vr: ValidationResults) -> None:
        kind = self.SUBJECT_KIND
        if kind is not None and not nkeys.is_valid_public_key(self.sub, kind):
            vr.add_error(f"subject {self.sub!r} is not a valid {kind.label} public key")

    def _validate_times(self, vr: ValidationResults, now: int) -> None:
        if self.exp > 0 and now > self.exp:
            vr.add_time_check("claim is expired")
        if self.nbf > 0 and self.nbf > now:
            vr.add_time_check("claim is not yet valid")

    def _validate(self, vr: ValidationResults) -> None:
        """Type-specific checks (subclasses)."""

    # --- helpers ------------------------------------------------------------------------------
    def is_expired(self, now: int) -> bool:
        return self.exp > 0 and now > self.exp

    def is_not_yet_valid(self, now: int) -> bool:
        return self.nbf > 0 and self.nbf > now

    def is_self_signed(self) -> bool:
        return self.iss == self.sub
