"""Callout policy: identity + rules → permissions, limits, account and expiry (STYLE rule 13).

Pure: no I/O, no clock (``now`` is an argument). :meth:`Policy.from_dict` reads a TOML/JSON-shaped
mapping once and refuses anything it does not understand, so a typo in a security rule is a load
error rather than a silently wider grant::

    max_lifetime = 3600          # seconds; ceiling for every issued user JWT (default 3600)
    account = "APP"              # optional default target account (config mode: an account name)

    [[rules]]
    id = "ops"                   # optional; names the rule in audit records (default "rules[i]")
    groups = ["ops"]             # matches if the identity is in any of these groups
    users = ["alice"]            # ... or if identity.subject is one of these (exact)
    # everyone = true            # ... or any authenticated identity (must be said explicitly)
    account = "OPS"              # optional, overrides the default account
    pub = { allow = ["ops.{{group}}.>", "user.{{subject}}.>"], deny = ["ops.secret.>"] }
    sub = { allow = ["_INBOX.>", "ops.>"] }
    resp = { max = 1, ttl = 30 } # allow replies to requests: max messages, ttl seconds (0: server default)
    limits = { subs = 100, data = -1, payload = 65536 }   # -1 = unlimited (the default)
    max_lifetime = 600           # optional, lowers the global ceiling for this rule

Rules are tried in order and the **first** match decides; no match is a refusal (default deny).

Default deny reaches into the permissions too: a user JWT without an allow list lets the user
publish or subscribe anywhere, so a rule without ``pub.allow`` (or ``sub.allow``) yields a
deny-all (``>``) for that direction. Replies granted by ``resp`` still pass (nats-server checks
tracked replies after the deny list). ``$SYS.REQ.USER.AUTH`` is always denied both ways, and the
server's reply inboxes ``$SYS._INBOX.>`` for subscribing: a client that could subscribe to them
in the callout account would receive other users' requests, plaintext passwords included when no
xkey is configured (nats-server only adds the *publish* deny).

Templates in subjects: ``{{name}}``, ``{{subject}}`` (the identity's), ``{{group}}`` (each of the
rule's own ``groups`` the identity is in: one subject per group) and ``{{attr.KEY}}`` (an
identity attribute). A value must be exactly one subject token: an empty value, or one with
``.``, ``*``, ``>`` or white space would change the subject's shape (``user.{{name}}.>`` with
the name ``bob.x`` lands in ``bob``'s space), so the whole decision is refused.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from callout.identity import Identity
from trustkit import subject as subjects
from trustkit.errors import CalloutError, SubjectError
from trustkit.jwt.types import NO_LIMIT, Permission, ResponsePermission, UserPermissionLimits

__all__ = [
    "ALWAYS_DENIED_PUB",
    "ALWAYS_DENIED_SUB",
    "DEFAULT_MAX_LIFETIME",
    "Decision",
    "Policy",
    "PolicyError",
    "Reason",
    "Rule",
]

#: Ceiling for a user JWT's lifetime when the policy names none (seconds).
DEFAULT_MAX_LIFETIME = 3600

#: Denied to every issued user, whatever the rules say: publishing auth requests (nats-server adds
#: this one itself in the callout account) ...
ALWAYS_DENIED_PUB = ("$SYS.REQ.USER.AUTH",)
#: ... and receiving them or their responses (the server's reply inbox is ``$SYS._INBOX.…``).
#: nats-server does not deny these: a callout user with ``sub >`` in the callout account sees
#: every request, CONNECT passwords included when no xkey is set (checked against 2.15.1).
ALWAYS_DENIED_SUB = ("$SYS.REQ.USER.AUTH", "$SYS._INBOX.>")

#: A template may not fan out into more subjects than this (a user in thousands of groups).
MAX_EXPANSIONS = 256

_NS_PER_S = 1_000_000_000


class PolicyError(CalloutError):
    """The policy document is invalid (raised by :meth:`Policy.from_dict`)."""

    code = "policy_invalid"


class Reason:
    """Stable ``Decision.reason_code`` values (for audit logs and metrics)."""

    ALLOWED = "allowed"
    NO_MATCHING_RULE = "no_matching_rule"
    IDENTITY_EXPIRED = "identity_expired"
    TEMPLATE_INVALID = "template_invalid"


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided. On a refusal ``permissions`` deny everything and ``expires_at`` is 0."""

    allowed: bool
    reason_code: str
    permissions: UserPermissionLimits
    account: str | None
    expires_at: int
    rule: str | None = None


# --- templates --------------------------------------------------------------------------------

_PLACEHOLDER_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_ATTR_RE = re.compile(r"attr\.([A-Za-z0-9_.-]+)")
_BAD_VALUE_RE = re.compile(r"[.*>\s\x00-\x1f\x7f]")
_BAD_ACCOUNT_RE = re.compile(r"[\s\x00-\x1f\x7f]")


class _Refused(Exception):
    """Internal: an expansion that must refuse the decision."""


def _placeholders(text: str) -> list[str]:
    return [m.group(1) for m in _PLACEHOLDER_RE.finditer(text)]


@dataclass(frozen=True, slots=True)
class _Template:
    text: str
    names: tuple[str, ...]  # distinct placeholder names, in order of first use

    @classmethod
    def parse(cls, where: str, text: Any, *, rule_has_groups: bool) -> _Template:
        if not isinstance(text, str):
            raise PolicyError(f"{where}: subjects must be strings, got {type(text).__name__}")
        names: list[str] = []
        for name in _placeholders(text):
            if name not in ("name", "subject", "group") and not _ATTR_RE.fullmatch(name):
                raise PolicyError(f"{where}: unknown template {{{{{name}}}}} in {text!r}")
            if name == "group" and not rule_has_groups:
                raise PolicyError(f"{where}: {{{{group}}}} needs the rule to list 'groups'")
            if name not in names:
                names.append(name)
        # a stray brace means a mistyped placeholder: it would otherwise become a literal token
        if "{{" in _PLACEHOLDER_RE.sub("", text) or "}}" in _PLACEHOLDER_RE.sub("", text):
            raise PolicyError(f"{where}: unbalanced template braces in {text!r}")
        # the shape must be a valid subject whatever one-token values are filled in
        try:
            subjects.validate(_PLACEHOLDER_RE.sub("x", text))
        except SubjectError as exc:
            raise PolicyError(f"{where}: {exc.message}") from None
        return cls(text, tuple(names))

    def expand(self, values: Mapping[str, Sequence[str]]) -> list[str]:
        """Every subject this template yields; raises ``_Refused`` on a value that is not a token."""
        if not self.names:
            return [self.text]
        choices = [values.get(n, ()) for n in self.names]
        count = math.prod(len(c) for c in choices)
        if count > MAX_EXPANSIONS:
            raise _Refused(f"{self.text!r} expands to {count} subjects (max {MAX_EXPANSIONS})")
        for name, vals in zip(self.names, choices, strict=True):
            for v in vals:
                if not isinstance(v, str) or v == "" or _BAD_VALUE_RE.search(v):
                    raise _Refused(f"{{{{{name}}}}} value is not a single subject token")
        out = []
        for combo in itertools.product(*choices):
            result = _fill(self.text, dict(zip(self.names, combo, strict=True)))
            if not subjects.is_valid(result):  # belt and braces: the values were checked above
                raise _Refused(f"{self.text!r} expands to an invalid subject")
            out.append(result)
        return out


def _fill(text: str, chosen: Mapping[str, str]) -> str:
    return _PLACEHOLDER_RE.sub(lambda m: chosen[m.group(1)], text)


# --- rules ------------------------------------------------------------------------------------


def _check_keys(where: str, raw: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")


def _mapping(where: str, raw: Any) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: expected a table/object, got {type(raw).__name__}")
    return raw


def _str_list(where: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        raise PolicyError(f"{where}: expected a list of strings")
    if not all(isinstance(x, str) and x for x in raw):
        raise PolicyError(f"{where}: expected a list of non-empty strings")
    return tuple(raw)


def _int(where: str, raw: Any, *, minimum: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
        raise PolicyError(f"{where}: expected an integer >= {minimum}")
    return raw


def _seconds(where: str, raw: Any, *, minimum: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw) or raw < minimum:
        raise PolicyError(f"{where}: expected a number of seconds >= {minimum}")
    return float(raw)


def _account(where: str, raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw or _BAD_ACCOUNT_RE.search(raw):
        raise PolicyError(f"{where}: expected an account name (no white space)")
    return raw


@dataclass(frozen=True, slots=True)
class _Direction:
    allow: tuple[_Template, ...]
    deny: tuple[_Template, ...]

    @classmethod
    def parse(cls, where: str, raw: Any, *, rule_has_groups: bool) -> _Direction:
        if raw is None:
            return cls((), ())
        raw = _mapping(where, raw)
        _check_keys(where, raw, {"allow", "deny"})
        return cls(
            tuple(
                _Template.parse(f"{where}.allow", t, rule_has_groups=rule_has_groups)
                for t in _str_list(f"{where}.allow", raw.get("allow"))
            ),
            tuple(
                _Template.parse(f"{where}.deny", t, rule_has_groups=rule_has_groups)
                for t in _str_list(f"{where}.deny", raw.get("deny"))
            ),
        )

    def build(self, values: Mapping[str, Sequence[str]], always_denied: Sequence[str]) -> Permission:
        allow = _dedupe(s for t in self.allow for s in t.expand(values))
        deny = _dedupe(s for t in self.deny for s in t.expand(values))
        if not allow:
            # no allow list means "anything" to nats-server: default deny says "nothing"
            return Permission(allow=[], deny=[">"])
        return Permission(allow=allow, deny=_dedupe([*deny, *always_denied]))


def _dedupe(items: Any) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule (build with :meth:`Policy.from_dict`)."""

    id: str
    users: frozenset[str]
    groups: tuple[str, ...]
    everyone: bool
    account: str | None
    pub: _Direction
    sub: _Direction
    resp: ResponsePermission | None
    subs: int
    data: int
    payload: int
    max_lifetime: int | None

    _KEYS = frozenset(
        {"id", "users", "groups", "everyone", "account", "pub", "sub", "resp", "limits", "max_lifetime"}
    )

    @classmethod
    def parse(cls, where: str, raw: Any) -> Rule:
        raw = _mapping(where, raw)
        _check_keys(where, raw, set(cls._KEYS))
        rid = raw.get("id", where)
        if not isinstance(rid, str) or not rid:
            raise PolicyError(f"{where}.id: expected a non-empty string")
        users = _str_list(f"{where}.users", raw.get("users"))
        groups = _str_list(f"{where}.groups", raw.get("groups"))
        everyone = raw.get("everyone", False)
        if not isinstance(everyone, bool):
            raise PolicyError(f"{where}.everyone: expected true or false")
        if not (users or groups or everyone):
            # a rule that matches nobody is a typo; one that matches everybody must say so
            raise PolicyError(f"{where}: a rule needs 'users', 'groups' or 'everyone = true'")
        has_groups = bool(groups)
        resp = None
        if raw.get("resp") is not None:
            r = _mapping(f"{where}.resp", raw["resp"])
            _check_keys(f"{where}.resp", r, {"max", "ttl"})
            resp = ResponsePermission(
                max=_int(f"{where}.resp.max", r.get("max", 1), minimum=1),
                ttl=round(_seconds(f"{where}.resp.ttl", r.get("ttl", 0), minimum=0) * _NS_PER_S),
            )
        limits = _mapping(f"{where}.limits", raw.get("limits", {}))
        _check_keys(f"{where}.limits", limits, {"subs", "data", "payload"})
        lifetime = raw.get("max_lifetime")
        return cls(
            id=rid,
            users=frozenset(users),
            groups=groups,
            everyone=everyone,
            account=_account(f"{where}.account", raw.get("account")),
            pub=_Direction.parse(f"{where}.pub", raw.get("pub"), rule_has_groups=has_groups),
            sub=_Direction.parse(f"{where}.sub", raw.get("sub"), rule_has_groups=has_groups),
            resp=resp,
            subs=_int(f"{where}.limits.subs", limits.get("subs", NO_LIMIT), minimum=NO_LIMIT),
            data=_int(f"{where}.limits.data", limits.get("data", NO_LIMIT), minimum=NO_LIMIT),
            payload=_int(f"{where}.limits.payload", limits.get("payload", NO_LIMIT), minimum=NO_LIMIT),
            max_lifetime=None if lifetime is None else _int(f"{where}.max_lifetime", lifetime, minimum=1),
        )

    def matched_groups(self, identity: Identity) -> tuple[str, ...]:
        mine = set(identity.groups)
        return tuple(g for g in self.groups if g in mine)

    def matches(self, identity: Identity) -> bool:
        return self.everyone or identity.subject in self.users or bool(self.matched_groups(identity))


def _deny_all() -> UserPermissionLimits:
    return UserPermissionLimits(pub=Permission(deny=[">"]), sub=Permission(deny=[">"]))


@dataclass(frozen=True, slots=True)
class Policy:
    """Ordered rules, first match wins, no match denies. Build with :meth:`from_dict`."""

    rules: tuple[Rule, ...]
    max_lifetime: int = DEFAULT_MAX_LIFETIME
    account: str | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Policy:
        """Compile a policy document. Raises :class:`PolicyError` naming the first problem."""
        raw = _mapping("policy", raw)
        _check_keys("policy", raw, {"max_lifetime", "account", "rules"})
        rules_raw = raw.get("rules", [])
        if isinstance(rules_raw, str | bytes) or not isinstance(rules_raw, Sequence):
            raise PolicyError("policy.rules: expected a list of rules")
        rules = tuple(Rule.parse(f"rules[{i}]", r) for i, r in enumerate(rules_raw))
        ids = [r.id for r in rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise PolicyError(f"policy.rules: duplicate id(s) {', '.join(map(repr, dupes))}")
        return cls(
            rules=rules,
            max_lifetime=_int(
                "policy.max_lifetime", raw.get("max_lifetime", DEFAULT_MAX_LIFETIME), minimum=1
            ),
            account=_account("policy.account", raw.get("account")),
        )

    def decide(self, identity: Identity, now: int) -> Decision:
        """The decision for ``identity`` at ``now`` (unix seconds). Never raises for any identity."""
        if identity.expires_at is not None and identity.expires_at <= now:
            return self._refuse(Reason.IDENTITY_EXPIRED)
        rule = next((r for r in self.rules if r.matches(identity)), None)
        if rule is None:
            return self._refuse(Reason.NO_MATCHING_RULE)
        values: dict[str, Sequence[str]] = {
            "name": (identity.name,),
            "subject": (identity.subject,),
            "group": rule.matched_groups(identity),
        }
        for key, value in identity.attributes.items():
            values[f"attr.{key}"] = (value,)
        try:
            pub = rule.pub.build(values, ALWAYS_DENIED_PUB)
            sub = rule.sub.build(values, ALWAYS_DENIED_SUB)
        except _Refused:
            return self._refuse(Reason.TEMPLATE_INVALID, rule.id)
        # the deny lists must not have lost an entry: a missing attribute drops a deny silently
        if _lost_deny(rule, values):
            return self._refuse(Reason.TEMPLATE_INVALID, rule.id)
        lifetime = self.max_lifetime
        if rule.max_lifetime is not None:
            lifetime = min(lifetime, rule.max_lifetime)
        expires_at = now + lifetime
        if identity.expires_at is not None:
            expires_at = min(expires_at, identity.expires_at)
        permissions = UserPermissionLimits(
            pub=pub,
            sub=sub,
            resp=None if rule.resp is None else ResponsePermission(rule.resp.max, rule.resp.ttl),
            subs=rule.subs,
            data=rule.data,
            payload=rule.payload,
        )
        return Decision(
            allowed=True,
            reason_code=Reason.ALLOWED,
            permissions=permissions,
            account=rule.account if rule.account is not None else self.account,
            expires_at=expires_at,
            rule=rule.id,
        )

    @staticmethod
    def _refuse(reason: str, rule: str | None = None) -> Decision:
        return Decision(False, reason, _deny_all(), None, 0, rule)


def _lost_deny(rule: Rule, values: Mapping[str, Sequence[str]]) -> bool:
    """True if a deny template expanded to nothing (a placeholder without a value)."""
    for direction in (rule.pub, rule.sub):
        for t in direction.deny:
            if any(not values.get(n) for n in t.names):
                return True
    return False
