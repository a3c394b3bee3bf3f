"""trustkit: decentralized NATS security — nkeys, JWT v2, creds and the chain of trust."""

__version__ = "0.1.0"
