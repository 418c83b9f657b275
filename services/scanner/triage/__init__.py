"""Triage of findings (VEX states: one, in bulk, from a VEX document) and VEX export."""
