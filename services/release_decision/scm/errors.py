"""Errors of the scm part, each with its problem code."""

from __future__ import annotations

from shared.errors import BadRequest, Unauthorized


class InvalidSignature(Unauthorized):
    code, title = "invalid_signature", "The webhook signature is missing or wrong"


class InvalidToken(Unauthorized):
    code, title = "invalid_token", "The webhook token is missing or wrong"


class MissingHeader(BadRequest):
    code, title = "missing_header", "A required webhook header is missing or malformed"


class BadTransport(BadRequest):
    code, title = "bad_webhook_transport", "The forwarded webhook body cannot be read"
