"""User rules: logins and e-mail addresses compare case-insensitively."""

from __future__ import annotations

from collections.abc import Sequence

from services.gateway.domain.errors import FieldInvalid


def login_key(login: str) -> str:
    return login.lower()


def email_key(email: str) -> str:
    """One address, one owner: compared without case (nobody relies on case-sensitive
    local parts in practice, and commit signatures are matched the same way)."""
    return email.strip().lower()


def check_distinct_emails(emails: Sequence[str]) -> None:
    keys = [email_key(email) for email in emails]
    if len(set(keys)) != len(keys):
        raise FieldInvalid("emails", "each e-mail address may be listed once")
