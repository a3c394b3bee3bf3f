"""Unit tests of the pure callout policy: identity + rules → permissions, limits, account, expiry."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callout.identity import Identity
from callout.policy import (
    ALWAYS_DENIED_PUB,
    ALWAYS_DENIED_SUB,
    DEFAULT_MAX_LIFETIME,
    Decision,
    Policy,
    PolicyError,
    Reason,
)
from trustkit.errors import CalloutError
from trustkit.jwt.types import NO_LIMIT
from trustkit.jwt.user import UserClaims
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.trust import compile_permissions

NOW = 1_800_000_000


def ident(
    subject: str = "alice",
    *,
    name: str | None = None,
    groups: tuple[str, ...] = (),
    attributes: dict[str, str] | None = None,
    expires_at: int | None = None,
) -> Identity:
    return Identity(
        subject=subject,
        name=subject if name is None else name,
        groups=groups,
        attributes=attributes or {},
        expires_at=expires_at,
        source="test",
    )


def policy(*rules: dict[str, Any], **top: Any) -> Policy:
    return Policy.from_dict({**top, "rules": list(rules)})


def allowed(decision: Decision) -> Decision:
    assert decision.allowed, decision.reason_code
    assert decision.reason_code == Reason.ALLOWED
    return decision


def refused(decision: Decision, reason: str) -> None:
    assert not decision.allowed
    assert decision.reason_code == reason
    assert decision.expires_at == 0
    assert decision.account is None
    perms = compile_permissions(decision.permissions)
    assert not perms.can_publish("anything")
    assert not perms.can_subscribe("anything")


OPS = {"id": "ops", "groups": ["ops"], "pub": {"allow": ["ops.>"]}, "sub": {"allow": ["ops.>"]}}


# --- default deny -------------------------------------------------------------------------------


def test_empty_policy_denies_everyone() -> None:
    refused(Policy.from_dict({}).decide(ident(groups=("ops",)), NOW), Reason.NO_MATCHING_RULE)


def test_no_matching_rule_denies() -> None:
    refused(policy(OPS).decide(ident(groups=("dev",)), NOW), Reason.NO_MATCHING_RULE)


def test_rule_without_allow_list_denies_that_direction() -> None:
    """An empty allow list means "anything" to nats-server; the policy turns it into deny ``>``."""
    d = allowed(policy({"id": "r", "users": ["alice"], "sub": {"allow": ["in.>"]}}).decide(ident(), NOW))
    assert d.permissions.pub.allow == []
    assert d.permissions.pub.deny == [">"]
    perms = compile_permissions(d.permissions)
    assert not perms.can_publish("in.x")
    assert not perms.can_publish("anything.at.all")
    assert perms.can_subscribe("in.x")
    assert not perms.can_subscribe("out.x")


def test_deny_only_rule_still_denies_everything_else() -> None:
    d = allowed(policy({"id": "r", "users": ["alice"], "pub": {"deny": ["secret"]}}).decide(ident(), NOW))
    assert not compile_permissions(d.permissions).can_publish("public")


# --- matching ---------------------------------------------------------------------------------


def test_match_by_group() -> None:
    d = allowed(policy(OPS).decide(ident(groups=("dev", "ops")), NOW))
    assert d.rule == "ops"
    perms = compile_permissions(d.permissions)
    assert perms.can_publish("ops.deploy")
    assert not perms.can_publish("dev.x")


def test_match_by_user_is_on_subject_not_name() -> None:
    p = policy({"id": "alice", "users": ["alice"], "pub": {"allow": ["a"]}})
    assert p.decide(ident("alice", name="Someone Else"), NOW).allowed
    # a display name the user may control must not pick a rule
    refused(p.decide(ident("mallory", name="alice"), NOW), Reason.NO_MATCHING_RULE)


def test_everyone_must_be_explicit() -> None:
    p = policy({"id": "all", "everyone": True, "pub": {"allow": ["pub.>"]}})
    assert allowed(p.decide(ident("anybody"), NOW)).rule == "all"
    with pytest.raises(PolicyError, match="'users', 'groups' or 'everyone = true'"):
        policy({"id": "all", "pub": {"allow": ["pub.>"]}})


def test_first_match_wins() -> None:
    p = policy(
        {"id": "alice", "users": ["alice"], "pub": {"allow": ["alice.>"]}},
        OPS,
        {"id": "all", "everyone": True, "pub": {"allow": ["public.>"]}},
    )
    assert p.decide(ident("alice", groups=("ops",)), NOW).rule == "alice"
    assert p.decide(ident("bob", groups=("ops",)), NOW).rule == "ops"
    assert p.decide(ident("carol"), NOW).rule == "all"
    d = p.decide(ident("alice", groups=("ops",)), NOW)
    assert not compile_permissions(d.permissions).can_publish("ops.x"), "rules are not merged"


def test_default_rule_ids() -> None:
    p = policy({"users": ["a"], "pub": {"allow": ["x"]}}, {"users": ["b"], "pub": {"allow": ["x"]}})
    assert [r.id for r in p.rules] == ["rules[0]", "rules[1]"]
    assert p.decide(ident("b"), NOW).rule == "rules[1]"


# --- templates --------------------------------------------------------------------------------


def test_name_subject_and_attribute_templates() -> None:
    p = policy(
        {
            "id": "t",
            "everyone": True,
            "pub": {"allow": ["user.{{name}}.>", "id.{{ subject }}", "tenant.{{attr.tenant}}.*"]},
            "sub": {"allow": ["_INBOX.{{name}}.>"], "deny": ["user.{{name}}.private"]},
        }
    )
    d = allowed(p.decide(ident("uid-42", name="alice", attributes={"tenant": "acme"}), NOW))
    assert d.permissions.pub.allow == ["user.alice.>", "id.uid-42", "tenant.acme.*"]
    assert d.permissions.sub.allow == ["_INBOX.alice.>"]
    assert d.permissions.sub.deny == ["user.alice.private", *ALWAYS_DENIED_SUB]


def test_group_template_expands_over_the_rules_own_groups_only() -> None:
    p = policy({"id": "teams", "groups": ["red", "blue"], "pub": {"allow": ["team.{{group}}.>"]}})
    d = allowed(p.decide(ident(groups=("admins", "blue", "red")), NOW))
    # one subject per matched group, in the rule's order; "admins" is not the rule's to grant
    assert d.permissions.pub.allow == ["team.red.>", "team.blue.>"]


def test_group_template_needs_rule_groups() -> None:
    with pytest.raises(PolicyError, match=r"\{\{group\}\} needs the rule to list 'groups'"):
        policy({"id": "x", "users": ["a"], "pub": {"allow": ["team.{{group}}"]}})


def test_group_template_for_a_user_matched_rule_grants_nothing() -> None:
    p = policy({"id": "x", "users": ["alice"], "groups": ["red"], "pub": {"allow": ["team.{{group}}.>"]}})
    d = allowed(p.decide(ident("alice"), NOW))
    assert d.permissions.pub.allow == []
    assert d.permissions.pub.deny == [">"]


def test_template_in_the_middle_of_a_token() -> None:
    p = policy({"id": "x", "everyone": True, "pub": {"allow": ["u-{{name}}-x.y"]}})
    d = allowed(p.decide(ident(), NOW))
    assert d.permissions.pub.allow == ["u-alice-x.y"]


@pytest.mark.parametrize(
    "bad_name",
    ["bob.x", "*", ">", "a*b", "x>", "", "two words", "tab\there", "new\nline", "nul\x00", "del\x7f"],
)
def test_expansion_that_is_not_one_token_refuses(bad_name: str) -> None:
    """``user.{{name}}.>`` with the name ``bob.x`` would land in bob's space: refuse, do not drop."""
    p = policy({"id": "u", "everyone": True, "pub": {"allow": ["user.{{name}}.>"]}})
    d = p.decide(ident("id-1", name=bad_name), NOW)
    refused(d, Reason.TEMPLATE_INVALID)
    assert d.rule == "u"


def test_bad_attribute_value_refuses() -> None:
    p = policy({"id": "t", "everyone": True, "sub": {"allow": ["t.{{attr.tenant}}.>"]}})
    refused(p.decide(ident(attributes={"tenant": "acme.*"}), NOW), Reason.TEMPLATE_INVALID)


def test_missing_attribute_in_allow_grants_nothing() -> None:
    p = policy({"id": "t", "everyone": True, "pub": {"allow": ["t.{{attr.tenant}}.>", "common"]}})
    d = allowed(p.decide(ident(), NOW))
    assert d.permissions.pub.allow == ["common"]


def test_missing_attribute_in_deny_refuses() -> None:
    """A deny that cannot be expanded would be silently dropped, widening the grant: refuse."""
    p = policy({"id": "t", "everyone": True, "pub": {"allow": [">"], "deny": ["t.{{attr.tenant}}.>"]}})
    refused(p.decide(ident(), NOW), Reason.TEMPLATE_INVALID)


def test_group_deny_without_matched_group_refuses() -> None:
    rule = {"id": "t", "users": ["alice"], "groups": ["red"], "pub": {"allow": [">"], "deny": ["{{group}}"]}}
    p = policy(rule)
    refused(p.decide(ident("alice"), NOW), Reason.TEMPLATE_INVALID)


def test_duplicates_are_removed() -> None:
    p = policy({"id": "x", "everyone": True, "pub": {"allow": ["a.{{name}}", "a.alice", "a.{{subject}}"]}})
    assert allowed(p.decide(ident(), NOW)).permissions.pub.allow == ["a.alice"]


@given(st.text(max_size=20))
def test_expansions_never_change_the_subject_shape(name: str) -> None:
    p = policy({"id": "u", "everyone": True, "pub": {"allow": ["user.{{name}}.>"]}})
    d = p.decide(ident("id-1", name=name), NOW)
    if not d.allowed:
        assert d.reason_code == Reason.TEMPLATE_INVALID
        return
    [subject] = d.permissions.pub.allow
    tokens = subject.split(".")
    assert len(tokens) == 3 and tokens[0] == "user" and tokens[2] == ">"
    assert tokens[1] == name and tokens[1] not in ("*", ">")


# --- always denied ------------------------------------------------------------------------------


def test_auth_subjects_are_always_denied() -> None:
    p = policy({"id": "all", "everyone": True, "pub": {"allow": [">"]}, "sub": {"allow": [">"]}})
    perms = compile_permissions(allowed(p.decide(ident(), NOW)).permissions)
    for subject in ALWAYS_DENIED_PUB:
        assert not perms.can_publish(subject)
    assert not perms.can_subscribe("$SYS.REQ.USER.AUTH")
    assert not perms.can_subscribe("$SYS._INBOX.abcd.efgh")
    assert perms.can_publish("anything.else")
    assert perms.can_subscribe("anything.else")


# --- responses and limits ---------------------------------------------------------------------


def test_response_permission_seconds_to_nanoseconds() -> None:
    p = policy({"id": "svc", "users": ["alice"], "sub": {"allow": ["svc.>"]}, "resp": {"max": 3, "ttl": 1.5}})
    d = allowed(p.decide(ident(), NOW))
    assert d.permissions.resp is not None
    assert (d.permissions.resp.max, d.permissions.resp.ttl) == (3, 1_500_000_000)
    perms = compile_permissions(d.permissions)
    assert perms.resp_max == 3
    assert not perms.can_publish("svc.x"), "responses only: no publish allow list"


def test_response_permission_defaults() -> None:
    p = policy({"id": "svc", "users": ["alice"], "resp": {}})
    resp = allowed(p.decide(ident(), NOW)).permissions.resp
    assert resp is not None and (resp.max, resp.ttl) == (1, 0)


def test_limits_default_to_unlimited() -> None:
    d = allowed(policy(OPS).decide(ident(groups=("ops",)), NOW))
    assert (d.permissions.subs, d.permissions.data, d.permissions.payload) == (NO_LIMIT,) * 3


def test_limits() -> None:
    p = policy({**OPS, "limits": {"subs": 10, "data": 0, "payload": 4096}})
    d = allowed(p.decide(ident(groups=("ops",)), NOW))
    assert (d.permissions.subs, d.permissions.data, d.permissions.payload) == (10, 0, 4096)


# --- expiry -------------------------------------------------------------------------------------


def test_default_lifetime() -> None:
    assert allowed(policy(OPS).decide(ident(groups=("ops",)), NOW)).expires_at == NOW + DEFAULT_MAX_LIFETIME


def test_lifetime_is_the_smallest_of_policy_rule_and_identity() -> None:
    p = policy({**OPS, "max_lifetime": 600}, max_lifetime=900)
    assert p.decide(ident(groups=("ops",)), NOW).expires_at == NOW + 600
    p = policy({**OPS, "max_lifetime": 6000}, max_lifetime=900)
    assert p.decide(ident(groups=("ops",)), NOW).expires_at == NOW + 900
    assert p.decide(ident(groups=("ops",), expires_at=NOW + 30), NOW).expires_at == NOW + 30
    assert p.decide(ident(groups=("ops",), expires_at=NOW + 9000), NOW).expires_at == NOW + 900


@pytest.mark.parametrize("expires_at", [NOW, NOW - 1, 1])
def test_expired_identity_refuses(expires_at: int) -> None:
    refused(policy(OPS).decide(ident(groups=("ops",), expires_at=expires_at), NOW), Reason.IDENTITY_EXPIRED)


# --- accounts -----------------------------------------------------------------------------------


def test_account_rule_overrides_default() -> None:
    dev = {"id": "dev", "groups": ["dev"], "account": "DEV", "pub": {"allow": ["x"]}}
    p = policy(OPS, dev, account="APP")
    assert p.decide(ident(groups=("ops",)), NOW).account == "APP"
    assert p.decide(ident(groups=("dev",)), NOW).account == "DEV"
    assert policy(OPS).decide(ident(groups=("ops",)), NOW).account is None


# --- the decision makes a valid user JWT --------------------------------------------------------


def test_decision_makes_a_valid_user_jwt() -> None:
    p = policy(
        {**OPS, "resp": {"max": 1, "ttl": 5}, "limits": {"payload": 100}, "sub": {"allow": ["_INBOX.>"]}}
    )
    d = allowed(p.decide(ident(groups=("ops",)), NOW))
    user = KeyPair.generate(PrefixByte.USER)
    uc = UserClaims(sub=user.public_key, name="alice", aud="$G", exp=d.expires_at)
    uc.set_permission_limits(d.permissions)
    assert uc.validate(now=NOW).is_empty()


def test_decisions_do_not_share_mutable_state() -> None:
    p = policy(OPS)
    a = p.decide(ident(groups=("ops",)), NOW)
    a.permissions.pub.allow.append(">")
    assert p.decide(ident(groups=("ops",)), NOW).permissions.pub.allow == ["ops.>"]


# --- loading ------------------------------------------------------------------------------------


def test_toml_document() -> None:
    doc = tomllib.loads(
        """
        max_lifetime = 1800
        account = "APP"

        [[rules]]
        id = "ops"
        groups = ["ops"]
        pub = { allow = ["ops.{{group}}.>"], deny = ["ops.ops.secret"] }
        sub = { allow = ["_INBOX.>"] }
        resp = { max = 1, ttl = 30 }
        limits = { payload = 65536 }

        [[rules]]
        id = "readers"
        everyone = true
        sub = { allow = ["public.>"] }
        max_lifetime = 300
        """
    )
    p = Policy.from_dict(doc)
    d = allowed(p.decide(ident(groups=("ops",)), NOW))
    assert d.permissions.pub.allow == ["ops.ops.>"]
    assert d.permissions.pub.deny == ["ops.ops.secret", *ALWAYS_DENIED_PUB]
    assert d.account == "APP" and d.expires_at == NOW + 1800
    assert allowed(p.decide(ident("bob"), NOW)).expires_at == NOW + 300


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"rule": []}, "unknown key"),
        ({"max_lifetime": 0}, "max_lifetime"),
        ({"max_lifetime": True}, "max_lifetime"),
        ({"max_lifetime": "1h"}, "max_lifetime"),
        ({"account": "has space"}, "account"),
        ({"account": ""}, "account"),
        ({"rules": {"id": "x"}}, "list of rules"),
        ({"rules": ["x"]}, "expected a table"),
        ({"rules": [{"users": ["a"], "pub": {"allow": ["x"]}, "extra": 1}]}, "unknown key"),
        ({"rules": [{"users": ["a"], "pub": {"alow": ["x"]}}]}, "unknown key"),
        ({"rules": [{"users": ["a"], "pub": {"allow": "x"}}]}, "list of strings"),
        ({"rules": [{"users": ["a"], "pub": {"allow": [""]}}]}, "non-empty"),
        ({"rules": [{"users": ["a"], "pub": {"allow": [1]}}]}, "non-empty strings"),
        ({"rules": [{"users": "a", "pub": {"allow": ["x"]}}]}, "list of strings"),
        ({"rules": [{"users": ["a"], "everyone": "yes"}]}, "true or false"),
        ({"rules": [{"users": ["a"], "pub": {"allow": ["a..b"]}}]}, "empty token"),
        ({"rules": [{"users": ["a"], "pub": {"allow": ["a.>.b"]}}]}, "last token"),
        ({"rules": [{"users": ["a"], "pub": {"allow": ["a b"]}}]}, "white space"),
        ({"rules": [{"users": ["a"], "pub": {"allow": ["u.{{nmae}}"]}}]}, "unknown template"),
        ({"rules": [{"users": ["a"], "pub": {"allow": ["u.{{name}"]}}]}, "unbalanced"),
        ({"rules": [{"users": ["a"], "pub": {"allow": ["u.{{{{name}}}}"]}}]}, "unbalanced"),
        ({"rules": [{"users": ["a"], "limits": {"payload": -2}}]}, "limits.payload"),
        ({"rules": [{"users": ["a"], "limits": {"conn": 1}}]}, "unknown key"),
        ({"rules": [{"users": ["a"], "resp": {"max": 0}}]}, "resp.max"),
        ({"rules": [{"users": ["a"], "resp": {"ttl": -1}}]}, "resp.ttl"),
        ({"rules": [{"users": ["a"], "resp": {"ttl": float("nan")}}]}, "resp.ttl"),
        ({"rules": [{"users": ["a"], "max_lifetime": 0}]}, "max_lifetime"),
        ({"rules": [{"users": ["a"], "id": ""}]}, "id"),
        ({"rules": [{"id": "x", "users": ["a"]}, {"id": "x", "users": ["b"]}]}, "duplicate id"),
    ],
)
def test_invalid_documents(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message) as info:
        Policy.from_dict(doc)
    assert isinstance(info.value, CalloutError)
    assert info.value.code == "policy_invalid"


def test_not_a_mapping() -> None:
    with pytest.raises(PolicyError):
        Policy.from_dict([])  # type: ignore[arg-type]
