"""The pure domain of webhook-fanout: signatures, request formats, retry schedule, event
matching and receiver URL rules. Synchronous, no I/O, no clock, no randomness: times, ids
and random bytes are passed in."""
