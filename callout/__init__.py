"""trustkit-callout: the auth-callout service (issue #6; not implemented yet, see docs/status.md)."""
