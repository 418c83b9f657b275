"""The verifier's child-process side: verify a chunk of commits of one mirror against the key
set of one version.

Each chunk carries the key set's version and material; a child parses the keys only when
the version it holds differs (parsed keys stay cached per process), and keeps the
repositories it opened. Commit objects are read here, from the bare mirror, so only oids
and verdicts cross the process boundary.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import msgspec
import pygit2
from cryptography.exceptions import UnsupportedAlgorithm
from pgpy.errors import PGPError

from services.signature_verifier.domain.commits import MalformedCommit, split_commit
from services.signature_verifier.domain.model import KeyEmail, SigningKey
from services.signature_verifier.domain.verify import KeyRing
from shared.logging import get_logger

log = get_logger(__name__)
# What parsing a stored key raises: the SSH parser raises ValueError (binascii.Error is one),
# pgpy anything from its own PGPError to ValueError, IndexError, KeyError or TypeError on
# bytes it does not understand, cryptography UnsupportedAlgorithm for an unknown curve.
KEY_PARSE_ERRORS: tuple[type[Exception], ...] = (
    PGPError,
    UnsupportedAlgorithm,
    ValueError,
    IndexError,
    KeyError,
    TypeError,
    NotImplementedError,
)


class Material(msgspec.Struct, frozen=True, array_like=True):
    key_store_id: int
    kind: str
    text: str
    emails: tuple[tuple[str, bool], ...]


class Verdict(msgspec.Struct, frozen=True, array_like=True):
    oid: str
    # None: the object is gone from the mirror (or is not a commit): drop it from the index.
    reason: str | None
    kind: str | None = None
    issuer: str | None = None
    matched_key: int | None = None


_ring: tuple[int, KeyRing] | None = None
_repos: dict[str, pygit2.Repository] = {}


def ring_of(material: Sequence[Material]) -> KeyRing:
    ring = KeyRing()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key in material:
            signing = SigningKey(
                key_store_id=str(key.key_store_id),
                kind="ssh" if key.kind == "ssh" else "openpgp",
                key_ids=(),
                account_emails=tuple(KeyEmail(email=e, verified=v) for e, v in key.emails),
            )
            try:
                if key.kind == "ssh":
                    ring.add_ssh(signing, key.text)
                else:
                    ring.add_openpgp(signing, key.text)
            # Validated on upload; a key that no longer parses (a pgpy upgrade reading it
            # differently) answers for nothing, and says so.
            except KEY_PARSE_ERRORS as exc:
                log.warning(
                    "signing_key_unparsable",
                    key_store_id=key.key_store_id,
                    kind=key.kind,
                    error=type(exc).__name__,
                )
    return ring


def _ring_for(version: int, material: Sequence[Material]) -> KeyRing:
    global _ring
    if _ring is None or _ring[0] != version:
        _ring = (version, ring_of(material))
    return _ring[1]


def _repository(path: str) -> pygit2.Repository:
    repo = _repos.get(path)
    if repo is None:
        repo = _repos[path] = pygit2.Repository(path)
    return repo


def verify_one(repo: pygit2.Repository, oid: str, ring: KeyRing) -> Verdict:
    try:
        kind, raw = repo.odb.read(oid)
    except (KeyError, ValueError, pygit2.GitError):
        return Verdict(oid, None)
    if kind != pygit2.enums.ObjectType.COMMIT:
        return Verdict(oid, None)
    try:
        signed = split_commit(raw)
    except MalformedCommit:
        return Verdict(oid, "malformed_signature")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outcome = ring.verify(signed)
    return Verdict(
        oid,
        outcome.reason,
        kind=signed.kind,
        issuer=outcome.signer_key_id,
        matched_key=int(outcome.matched_key) if outcome.matched_key else None,
    )


def verify_chunk(
    version: int, material: Sequence[Material], path: str, oids: Sequence[str]
) -> list[Verdict]:
    """The verdicts on ``oids`` of the mirror at ``path`` (run in a child process)."""
    ring = _ring_for(version, material)
    # A mirror that cannot be opened fails the chunk (the job retries), it does not empty
    # the index.
    repo = _repository(path)
    return [verify_one(repo, oid, ring) for oid in oids]


def warm() -> int:
    """Imported and ready: the pool's children load pgpy before the first chunk."""
    import pgpy  # noqa: F401

    return 0


# How often a child looks whether the service that started it is still there.
PARENT_CHECK_SECONDS = 1.0


def watch_parent(parent: int) -> None:
    """The pool's initializer: a child whose service died (SIGKILL gives the pool no chance
    to stop it) exits instead of lingering, blocked on a queue nobody writes to."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
