"""The listing's ``path=`` and ``sha=`` as the walk needs them, checked before any git
object is read."""

from __future__ import annotations

import re

import msgspec

from services.signature_verifier.commits.domain.errors import InvalidPath

# git's shortest abbreviation (core.abbrev's floor) and the longest id (SHA-256).
MIN_PREFIX = 4
_HEX = re.compile(r"^[0-9a-fA-F]{4,64}$")


def repo_path(raw: str) -> str:
    """``raw`` as a '/'-separated path inside the repository, one trailing '/' dropped;
    InvalidPath (422) for anything that could name something else: '..' or '.' segments,
    an absolute path, empty segments, NUL, a backslash or other control characters."""

    def refuse(why: str) -> InvalidPath:
        return InvalidPath(f"path {why}", extra={"errors": [{"field": "$.path", "message": why}]})

    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in raw):
        raise refuse("contains a control character")
    # Backslashes are separators on Windows clients; git paths never need them here.
    if "\\" in raw:
        raise refuse("contains a backslash")
    if raw.startswith("/"):
        raise refuse("must be relative to the repository root")
    path = raw[:-1] if raw.endswith("/") else raw
    segments = path.split("/")
    if not path or any(not segment for segment in segments):
        raise refuse("has an empty segment")
    if any(segment in {".", ".."} for segment in segments):
        raise refuse("must not contain '.' or '..' segments")
    return path


class RevisionSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What ``sha=`` may name, in the order git tries: a ref (branch, tag, HEAD), then an
    object id or unambiguous prefix (only when it is hex of at least 4 digits)."""

    ref_names: tuple[str, ...]
    hex_prefix: str | None


def revision(raw: str) -> RevisionSpec:
    if raw == "HEAD":
        return RevisionSpec(ref_names=("HEAD",), hex_prefix=None)
    # Full names (refs/heads/main) as they are, short ones as git's rev-parse expands them.
    names = (
        (raw,)
        if raw.startswith("refs/")
        else (f"refs/heads/{raw}", f"refs/tags/{raw}", f"refs/{raw}")
    )
    return RevisionSpec(ref_names=names, hex_prefix=raw.lower() if _HEX.match(raw) else None)
