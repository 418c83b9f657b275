"""Repository names as the release-decision read models key them.

GitHub and GitLab compare ``owner/name`` without regard to case (``Acme/Shop`` and
``acme/shop`` are one repository), and so do the clients that ask Gatehouse: a push from
GitHub (``Acme/Shop``), a scan uploaded as ``acme/shop`` and a gate asking for ``ACME/shop``
must meet. Events keep the spelling their source used; the read models key repos in lower
case, and every query is lowered on the way in.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

P = TypeVar("P", bound=msgspec.Struct)


def repo_key(repo: str) -> str:
    return repo.lower()


def keyed(payload: P) -> P:
    """``payload`` with its ``repo`` (and ``repos``) as the read models key them."""
    changes: dict[str, object] = {}
    repo = getattr(payload, "repo", None)
    if isinstance(repo, str) and repo != repo.lower():
        changes["repo"] = repo.lower()
    repos = getattr(payload, "repos", None)
    if isinstance(repos, list) and any(r != r.lower() for r in repos):
        changes["repos"] = [r.lower() for r in repos]
    return msgspec.structs.replace(payload, **changes) if changes else payload
