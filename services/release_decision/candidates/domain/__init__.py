"""The pure rules of release candidates and deployments (no I/O, no clock)."""
