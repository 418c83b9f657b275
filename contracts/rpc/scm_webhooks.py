"""``svc.release-decision.github_webhook`` / ``gitlab_webhook``: inbound webhook deliveries,
forwarded by the gateway as received.

The gateway reads the body (bounded by ``webhook_max_body_bytes``) and passes it on
compressed (``body_zlib``, zlib): JSON shrinks several times, so a body at the limit still
fits one bus message. The signature (GitHub) or token (GitLab) is checked by the
release-decision service against the bytes exactly as they arrived.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

SERVICE = "release-decision"
GITHUB_WEBHOOK = "github_webhook"
GITLAB_WEBHOOK = "gitlab_webhook"

Header = Annotated[str, msgspec.Meta(max_length=1024)]


class GithubWebhookRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The delivery: ``X-GitHub-Event``, ``X-GitHub-Delivery``, ``X-Hub-Signature-256``,
    the media type (``application/json`` or ``application/x-www-form-urlencoded``) and the
    body."""

    event: Header | None = None
    delivery_id: Header | None = None
    signature: Header | None = None
    media_type: Header = "application/json"
    body_zlib: bytes


class GitlabWebhookRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The delivery: ``X-Gitlab-Event``, ``X-Gitlab-Event-UUID``, ``X-Gitlab-Token`` and
    the body."""

    event: Header | None = None
    delivery_id: Header | None = None
    token: Header | None = None
    body_zlib: bytes


class WebhookReply(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a delivery (also the HTTP body). ``status``: ``recorded`` (200),
    ``pong`` (200), ``duplicate`` (200: the delivery id was handled before, nothing was
    published again) or ``ignored`` (202, with the reason)."""

    status: Literal["recorded", "pong", "duplicate", "ignored"]
    duplicate: bool = False
    delivery_id: str
    event: str
    action: str | None = None
    reason: str | None = None
    published: Annotated[int, msgspec.Meta(description="Events published for it")] = 0
