"""Gatehouse services: one package per service (domain, projection, handlers, adapters, app)."""
