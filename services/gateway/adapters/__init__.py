"""I/O of the gateway: PostgreSQL read model and bookkeeping, the stream, advisory locks."""
