"""Gatehouse public contracts: the event envelope, event payloads and RPC messages.

Everything here is a plain msgspec Struct with no I/O, so it can be imported by any service
and by external subscribers.
"""
