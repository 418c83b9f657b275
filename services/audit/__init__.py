"""The audit service: an append-only, hash-chained log of every event on the stream."""
