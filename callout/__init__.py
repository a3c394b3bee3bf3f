"""trustkit-callout: the auth-callout service.

Identities from LDAP (later OIDC and device keys), a pure default-deny policy, and the
$SYS.REQ.USER.AUTH responder. See docs/status.md for what exists.
"""
