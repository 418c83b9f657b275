"""Pure gateway rules: tokens, access checks, ETags, rate buckets, idempotency, resources.

No I/O, no clock, no randomness: time and random bytes are passed in.
"""
