"""The bare mirror on disk, with pygit2 (blocking: run in a thread).

A fetch never leaves a half-written mirror behind: the first one builds the repository in
a temporary directory beside its place and renames it there only once complete; later ones
fetch into the existing repository, where libgit2 writes the pack and its index first and
moves refs only after both are complete, so a fetch that fails (network, authentication, a
corrupt pack, a remote that disappeared, the deadline) leaves every ref as it was.

The token of a credential goes to libgit2 through the credentials callback only: the URL
stored in the mirror's config never carries one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
from pygit2.enums import CredentialType, FetchPrune

REMOTE = "origin"
REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
# Default branches guessed, in order, when the remote does not say which its HEAD is.
LIKELY_DEFAULTS = ("main", "master", "trunk", "develop")


class FetchFailed(Exception):
    """A fetch that did not complete; the message names why, without secrets."""


@dataclass
class Progress:
    """Shared with the fetching thread: the last transfer counters, and a stop flag."""

    values: dict[str, int] | None = None
    cancelled: bool = False
    updated: float = field(default=0.0)


@dataclass(frozen=True, kw_only=True)
class Fetched:
    branch: str | None  # None: the remote has no branch yet
    head: str | None
    progress: dict[str, int] | None
    # Branch and tag refs (and what HEAD names) before and after the fetch.
    refs_before: dict[str, str] = field(default_factory=dict)
    refs_after: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CommitInfo:
    sha: str
    author: str
    message: str
    committed_at: int  # seconds since the epoch
    offset_minutes: int


class _Callbacks(pygit2.RemoteCallbacks):
    def __init__(
        self, *, user: str | None, token: str | None, deadline: float, progress: Progress
    ) -> None:
        super().__init__()
        self._user = user
        self._token = token
        self._deadline = deadline
        self._progress = progress
        self._asked = 0

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> pygit2.UserPass | pygit2.KeypairFromAgent | pygit2.Username:
        self._check()
        self._asked += 1
        # libgit2 asks again after a refusal, forever: the second question is the answer.
        if self._asked > 1:
            raise FetchFailed("authentication failed (the remote refused the credential)")
        if allowed_types & CredentialType.USERPASS_PLAINTEXT:
            if not self._token:
                raise FetchFailed("the remote asks for credentials and the mirror names none")
            return pygit2.UserPass(self._user or "x-access-token", self._token)
        if allowed_types & CredentialType.SSH_KEY:
            return pygit2.KeypairFromAgent(username_from_url or "git")
        if allowed_types & CredentialType.USERNAME:
            return pygit2.Username(username_from_url or "git")
        raise FetchFailed("the remote asks for a kind of credential Gatehouse cannot give")

    def transfer_progress(self, stats: pygit2.remotes.TransferProgress) -> None:
        self._check()
        self._progress.values = {
            "received_objects": int(stats.received_objects),
            "total_objects": int(stats.total_objects),
            "indexed_deltas": int(stats.indexed_deltas),
            "total_deltas": int(stats.total_deltas),
            "received_bytes": int(stats.received_bytes),
        }
        self._progress.updated = time.monotonic()

    def sideband_progress(self, string: str) -> None:
        self._check()

    def _check(self) -> None:
        if self._progress.cancelled:
            raise FetchFailed("the fetch was stopped (timeout)")
        if time.monotonic() > self._deadline:
            raise FetchFailed("the fetch took longer than GATEHOUSE_GIT_FETCH_TIMEOUT_SECONDS")


def _scrub(message: str, secrets: tuple[str | None, ...]) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return " ".join(message.split())[:1000]


def fetch_mirror(
    path: Path,
    url: str,
    *,
    branch: str | None,
    user: str | None,
    token: str | None,
    deadline: float,
    progress: Progress,
) -> Fetched:
    """Fetch ``url`` into the bare mirror at ``path`` (created on the first fetch), set its
    HEAD to the default branch (``branch``, else the remote's HEAD) and say where it is."""
    fresh = not (path / "HEAD").exists()
    work = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp" if fresh else path
    try:
        if fresh:
            path.parent.mkdir(parents=True, exist_ok=True)
            repo = pygit2.init_repository(str(work), bare=True)
        else:
            repo = pygit2.Repository(str(path))
        refs_before = {} if fresh else listed_refs(repo)
        remote = _remote(repo, url)
        callbacks = _Callbacks(user=user, token=token, deadline=deadline, progress=progress)
        heads = remote.list_heads(callbacks=callbacks)
        resolved = branch or remote_default_branch(
            {h.name: str(h.oid) for h in heads if h.name},
            next((h.symref_target for h in heads if h.name == "HEAD"), None),
        )
        names = {h.name for h in heads}
        if resolved is not None and f"refs/heads/{resolved}" not in names:
            raise FetchFailed(f"the remote has no branch {resolved!r}")
        remote.fetch(callbacks=callbacks, prune=FetchPrune.PRUNE)
        head = None
        if resolved is not None:
            repo.references.create("HEAD", f"refs/heads/{resolved}", force=True)
            head = str(repo.references[f"refs/heads/{resolved}"].target)
        refs_after = listed_refs(repo)
        if fresh:
            os.replace(work, path)
        return Fetched(
            branch=resolved,
            head=head,
            progress=progress.values,
            refs_before=refs_before,
            refs_after=refs_after,
        )
    except FetchFailed as exc:
        raise FetchFailed(_scrub(str(exc), (token,))) from None
    except (pygit2.GitError, KeyError, ValueError, OSError) as exc:
        raise FetchFailed(_scrub(f"{type(exc).__name__}: {exc}", (token,))) from None
    finally:
        if fresh and work.exists():
            shutil.rmtree(work, ignore_errors=True)


def listed_refs(repo: pygit2.Repository) -> dict[str, str]:
    """What the commits API can list from: every branch and tag, and the branch HEAD names."""
    refs = {
        name: str(repo.references[name].target)
        for name in repo.references
        if name.startswith(("refs/heads/", "refs/tags/"))
    }
    with contextlib.suppress(KeyError, pygit2.GitError):
        refs["HEAD"] = str(repo.references["HEAD"].target)
    return refs


def _remote(repo: pygit2.Repository, url: str) -> pygit2.Remote:
    if REMOTE in set(repo.remotes.names()):
        if repo.remotes[REMOTE].url != url:
            repo.remotes.set_url(REMOTE, url)
    else:
        repo.remotes.create(REMOTE, url, REFSPECS[0])
    remote = repo.remotes[REMOTE]
    for refspec in REFSPECS:
        if refspec not in remote.fetch_refspecs:
            repo.remotes.add_fetch(REMOTE, refspec)
    return repo.remotes[REMOTE]


def remote_default_branch(refs: dict[str, str], head_target: str | None) -> str | None:
    """The branch the remote's HEAD names (its symref), else the one branch at HEAD's commit
    (the likeliest name first), else a likely name; None when it has no branch."""
    if head_target and head_target.startswith("refs/heads/"):
        return head_target.removeprefix("refs/heads/")
    branches = {
        n.removeprefix("refs/heads/"): o for n, o in refs.items() if n.startswith("refs/heads/")
    }
    if not branches:
        return None
    at_head = sorted(b for b, oid in branches.items() if oid == refs.get("HEAD"))
    for candidates in (at_head, sorted(branches)):
        for likely in LIKELY_DEFAULTS:
            if likely in candidates:
                return likely
        if candidates:
            return candidates[0]
    return None


def first_parent_chain(path: Path, head: str, *, stop: str | None, limit: int) -> list[CommitInfo]:
    """The head and its first-parent ancestors, newest first, ending at ``stop`` (included)
    or after ``limit + 1`` commits."""
    repo = pygit2.Repository(str(path))
    out: list[CommitInfo] = []
    commit = repo.get(head)
    while isinstance(commit, pygit2.Commit):
        out.append(
            CommitInfo(
                sha=str(commit.id),
                author=commit.author.name,
                message=commit.message,
                committed_at=commit.commit_time,
                offset_minutes=commit.commit_time_offset,
            )
        )
        if str(commit.id) == stop or len(out) > limit or not commit.parent_ids:
            break
        commit = repo.get(commit.parent_ids[0])
    return out


def is_ancestor(path: Path, old: str, new: str) -> bool:
    """Whether ``old`` is in ``new``'s history (False when ``old`` is gone)."""
    repo = pygit2.Repository(str(path))
    with contextlib.suppress(KeyError, ValueError, pygit2.GitError):
        if old == new:
            return True
        return bool(repo.descendant_of(new, old))
    return False


def remove_mirror(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
