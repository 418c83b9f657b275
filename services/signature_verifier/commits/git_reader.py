"""The git adapter: reads commits from the bare mirrors with pygit2.

Synchronous (libgit2 blocks): the handlers run it in a thread. A ``pygit2.Repository`` is not
safe to share between threads, so :class:`MirrorRepos` lends each thread a handle of its own
from a small pool per mirror, and drops the pool when the mirror's directory was replaced
(another inode: the fetcher swapped it in) or a read failed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import msgspec
import pygit2
from pygit2.enums import DiffFind, DiffOption, RepositoryOpenFlag

from contracts.rpc.signatures import CommitFile, CommitStats, GitPerson
from services.signature_verifier.commits.domain import history
from services.signature_verifier.commits.domain.arguments import MIN_PREFIX, revision
from services.signature_verifier.commits.domain.errors import (
    AmbiguousSha,
    CommitNotFound,
    MirrorUnreadable,
)
from services.signature_verifier.commits.domain.views import (
    Signed,
    author_matches,
    decode,
    person,
)
from services.signature_verifier.domain.commits import MalformedCommit, split_commit

T = TypeVar("T")
# Handles kept per mirror between requests (more are opened under load, then closed).
IDLE_HANDLES = 4
# GitHub lists at most 3000 files of a commit; the stats still count every file.
MAX_FILES = 3000
_STATUSES = frozenset("AMDRCT")


class CommitRecord(msgspec.Struct, frozen=True, kw_only=True):
    sha: str
    message: str
    author: GitPerson
    signed: Signed | None


class CommitDetail(msgspec.Struct, frozen=True, kw_only=True):
    record: CommitRecord
    committer: GitPerson
    parents: list[str]
    tree_sha: str
    files: list[CommitFile]
    stats: CommitStats


class ListSpec(msgspec.Struct, frozen=True, kw_only=True):
    sha: str | None
    default_branch: str | None
    path: str | None
    author: str | None
    since: int | None
    until: int | None
    skip: int
    limit: int


# ---- handles ---------------------------------------------------------------------------------
_Identity = tuple[int, int]


class MirrorRepos:
    """Repository handles per mirror directory, one per thread at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[Path, tuple[_Identity, list[pygit2.Repository]]] = {}

    def read(self, path: Path, work: Callable[[pygit2.Repository | None], T]) -> T:
        """``work`` on a handle of the mirror at ``path`` (None: not fetched yet)."""
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return work(None)
        identity = (stat.st_dev, stat.st_ino)
        handle = self._take(path, identity)
        if handle is None:
            try:
                handle = pygit2.Repository(str(path), RepositoryOpenFlag.NO_SEARCH)
            except pygit2.GitError:
                return work(None)  # created, not yet a repository: the first fetch runs
        try:
            result = work(handle)
        except pygit2.GitError as exc:
            # A handle that failed may hold a replaced pack; it is not returned to the pool.
            raise MirrorUnreadable(f"the git mirror could not be read: {exc}") from exc
        self._give(path, identity, handle)
        return result

    def _take(self, path: Path, identity: _Identity) -> pygit2.Repository | None:
        with self._lock:
            pooled = self._idle.get(path)
            if pooled is None or pooled[0] != identity:
                self._idle.pop(path, None)
                return None
            return pooled[1].pop() if pooled[1] else None

    def _give(self, path: Path, identity: _Identity, handle: pygit2.Repository) -> None:
        with self._lock:
            pooled = self._idle.setdefault(path, (identity, []))
            if pooled[0] == identity and len(pooled[1]) < IDLE_HANDLES:
                pooled[1].append(handle)


# ---- resolving -------------------------------------------------------------------------------
def lookup_commit(repo: pygit2.Repository, hex_id: str) -> pygit2.Commit:
    """The commit named by a full id or a prefix of at least 4 hex digits."""
    if len(hex_id) < MIN_PREFIX:
        raise CommitNotFound(f"no commit found for SHA {hex_id}")
    try:
        found = repo.get(hex_id)
    except pygit2.AmbiguousError as exc:
        raise AmbiguousSha(
            f"the SHA prefix {hex_id} names more than one object; give more digits",
            extra={"errors": [{"field": "$.sha", "message": "ambiguous prefix"}]},
        ) from exc
    except pygit2.InvalidError as exc:  # longer than this repository's ids
        raise CommitNotFound(f"no commit found for SHA {hex_id}") from exc
    if not isinstance(found, pygit2.Commit):
        raise CommitNotFound(f"no commit found for SHA {hex_id}")
    return found


def _start(repo: pygit2.Repository, spec: ListSpec) -> pygit2.Oid | None:
    """Where the listing starts; None when there is nothing to list yet."""
    if repo.is_empty:
        return None
    if spec.sha is None:
        if spec.default_branch is not None:
            ref = _reference(repo, f"refs/heads/{spec.default_branch}")
        else:
            ref = None if repo.head_is_unborn else repo.head
        return None if ref is None else _peel(repo, ref, spec.default_branch or "HEAD").id
    wanted = revision(spec.sha)
    for name in wanted.ref_names:
        ref = _reference(repo, name)
        if ref is not None:
            return _peel(repo, ref, spec.sha).id
    if wanted.hex_prefix is not None:
        return lookup_commit(repo, wanted.hex_prefix).id
    raise CommitNotFound(f"no commit found for SHA {spec.sha}")


def _reference(repo: pygit2.Repository, name: str) -> pygit2.Reference | None:
    if name != "HEAD" and not pygit2.reference_is_valid_name(name):
        return None
    try:
        if name == "HEAD":
            return None if repo.head_is_unborn else repo.head
        return repo.references.get(name)
    except (pygit2.InvalidError, KeyError):
        return None


def _peel(repo: pygit2.Repository, ref: pygit2.Reference, shown: str) -> pygit2.Commit:
    try:
        return repo[ref.resolve().target].peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.InvalidError) as exc:
        raise CommitNotFound(f"{shown} does not name a commit") from exc


# ---- reading ---------------------------------------------------------------------------------
def record(commit: pygit2.Commit) -> CommitRecord:
    encoding = commit.message_encoding
    author = commit.author
    return CommitRecord(
        sha=str(commit.id),
        message=decode(commit.raw_message, encoding),
        author=person(author.raw_name, author.raw_email, author.time, author.offset, encoding),
        signed=_signed(commit),
    )


def _signed(commit: pygit2.Commit) -> Signed | None:
    raw = commit.read_raw()
    if b"\ngpgsig" not in raw.split(b"\n\n", 1)[0]:
        return None
    try:
        split = split_commit(raw)
    except MalformedCommit:  # git still reads it: take libgit2's split
        signature, payload = commit.gpg_signature
        if signature is None or payload is None:
            return None
        return Signed(signature=decode(signature), payload=payload)
    if split.signature is None:
        return None
    return Signed(signature=split.signature, payload=split.payload)


def list_commits(repo: pygit2.Repository | None, spec: ListSpec) -> tuple[list[CommitRecord], bool]:
    """One page of ``git log`` from ``spec`` and whether another follows."""
    start = None if repo is None else _start(repo, spec)
    if repo is None or start is None:
        return [], False
    commits: dict[pygit2.Oid, pygit2.Commit] = {}

    def commit_of(oid: pygit2.Oid) -> pygit2.Commit:
        found = commits.get(oid)
        if found is None:
            loaded = repo[oid]
            if not isinstance(loaded, pygit2.Commit):  # a parent id naming no commit
                raise MirrorUnreadable(f"object {oid} is not a commit")
            found = commits[oid] = loaded
        return found

    def load(oid: pygit2.Oid) -> history.Node[pygit2.Oid]:
        commit = commit_of(oid)
        return history.Node(
            id=oid, commit_time=commit.commit_time, parents=tuple(commit.parent_ids)
        )

    path_state = None
    if spec.path is not None:
        path = spec.path
        states: dict[pygit2.Oid, history.PathState] = {}

        def path_state(oid: pygit2.Oid) -> history.PathState:
            if oid not in states:
                try:
                    entry = commit_of(oid).tree[path]
                    states[oid] = (str(entry.id), entry.filemode)
                except KeyError:
                    states[oid] = None
            return states[oid]

    items: list[CommitRecord] = []
    matched = 0
    nodes = history.walk(
        start, load=load, path_state=path_state, since=spec.since, until=spec.until
    )
    for node in nodes:
        commit = commit_of(node.id)
        if spec.author is not None:
            author = commit.author
            encoding = commit.message_encoding
            name, email = decode(author.raw_name, encoding), decode(author.raw_email, encoding)
            if not author_matches(spec.author, name, email):
                continue
        matched += 1
        if matched <= spec.skip:
            continue
        if len(items) == spec.limit:
            return items, True
        items.append(record(commit))
    return items, False


def commit_detail(repo: pygit2.Repository | None, hex_id: str) -> CommitDetail:
    if repo is None or repo.is_empty:
        raise CommitNotFound(f"no commit found for SHA {hex_id}")
    commit = lookup_commit(repo, hex_id)
    files, stats = _changes(repo, commit)
    committer = commit.committer
    encoding = commit.message_encoding
    return CommitDetail(
        record=record(commit),
        committer=person(
            committer.raw_name, committer.raw_email, committer.time, committer.offset, encoding
        ),
        parents=[str(p) for p in commit.parent_ids],
        tree_sha=str(commit.tree_id),
        files=files,
        stats=stats,
    )


def _changes(
    repo: pygit2.Repository, commit: pygit2.Commit
) -> tuple[list[CommitFile], CommitStats]:
    """The files the commit changed against its first parent (a merge too: what it brought
    to the branch it was merged into, as GitHub shows it), a root commit against the empty
    tree; renames and copies found as ``git show -M -C`` does."""
    flags = DiffOption.INCLUDE_TYPECHANGE
    if commit.parents:
        diff = repo.diff(commit.parents[0], commit, flags=flags)
    else:
        diff = commit.tree.diff_to_tree(flags=flags, swap=True)
    diff.find_similar(flags=DiffFind.FIND_RENAMES | DiffFind.FIND_COPIES)
    files: list[CommitFile] = []
    additions_total = deletions_total = 0
    for index, delta in enumerate(diff.deltas):
        status = delta.status_char()
        if status not in _STATUSES:
            continue
        patch = diff[index]
        binary = bool(patch is not None and patch.delta.is_binary)
        if status == "T":
            additions, deletions = _typechange_lines(repo, delta)
        else:
            _, additions, deletions = patch.line_stats if patch is not None else (0, 0, 0)
        additions_total += additions
        deletions_total += deletions
        if len(files) >= MAX_FILES:
            continue
        renamed = status in ("R", "C")
        side = delta.old_file if status == "D" else delta.new_file
        files.append(
            CommitFile(
                path=decode(side.raw_path),
                old_path=decode(delta.old_file.raw_path) if renamed else None,
                status=status,  # type: ignore[arg-type]
                additions=additions,
                deletions=deletions,
                binary=binary,
            )
        )
    return files, CommitStats(
        additions=additions_total,
        deletions=deletions_total,
        total=additions_total + deletions_total,
    )


def _typechange_lines(repo: pygit2.Repository, delta: pygit2.DiffDelta) -> tuple[int, int]:
    """A file that became a symlink (or back): libgit2's patch counts nothing, git's numstat
    counts the two contents' lines against each other."""
    old, new = repo.get(delta.old_file.id), repo.get(delta.new_file.id)
    if not isinstance(old, pygit2.Blob) or not isinstance(new, pygit2.Blob):
        return 0, 0  # a submodule's commit on one side: no lines
    patch = repo.diff(old, new)
    if patch.delta.is_binary:
        return 0, 0
    _, additions, deletions = patch.line_stats
    return additions, deletions
