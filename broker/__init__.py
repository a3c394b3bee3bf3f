"""trustkit-broker: the bundled NATS-protocol broker (issue #5; not implemented yet, see docs/status.md)."""
