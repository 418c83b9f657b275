"""Authenticating webhook deliveries: GitHub's ``X-Hub-Signature-256`` (HMAC-SHA256 of the
body with the shared secret) and GitLab's ``X-Gitlab-Token`` (the shared token itself).

Both compare in constant time. An empty configured secret authenticates nothing: a
deployment that has not set one must not accept unsigned deliveries.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_PREFIX = "sha256="


def github_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + mac


def github_signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    if not secret or not header:
        return False
    expected = github_signature(secret, body).encode()
    # GitHub sends lower-case hex; compare bytes so that non-ASCII input cannot raise.
    return hmac.compare_digest(expected, header.strip().lower().encode("utf-8", "replace"))


def gitlab_token_valid(expected: str, given: str | None) -> bool:
    if not expected or given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))
