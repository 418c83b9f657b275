"""Safe artifact paths: the path of a generic artifact and the file name of a package.

A path names a blob in a repository; it is never joined to a filesystem path (blobs are
stored by digest), yet it is shown to people, put into URLs, purls and ``Content-
Disposition`` headers and matched by retention patterns, so only plain relative paths are
accepted: ``/``-separated, no empty, ``.`` or ``..`` segment (also not after one more
percent-decoding or Unicode compatibility folding: ``%2e%2e``, fullwidth dots), no absolute path
(a leading ``/`` or a drive letter), no backslash, NUL, control or bidi-override character,
bounded lengths. Anything else is a 400 ``invalid_artifact_path`` naming the rule broken.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse

from shared.errors import BadRequest

MAX_PATH_LENGTH = 1024  # characters, as contracts.events.registry.ArtifactPath
MAX_SEGMENT_LENGTH = 255  # bytes of UTF-8, the usual file-name limit
MAX_SEGMENTS = 32

_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_DRIVE = re.compile(r"^[A-Za-z]:")


class InvalidArtifactPath(BadRequest):
    code, title = "invalid_artifact_path", "The artifact path is not acceptable"

    def __init__(self, path: str, why: str) -> None:
        shown = path if len(path) <= 200 else path[:200] + "…"
        super().__init__(f"artifact path {shown!r}: {why}", extra={"path": shown, "reason": why})


def decode_url_path(raw: str) -> str:
    """A path as sent in a URL (percent-encoded), decoded once; 400 when its escapes do not
    decode to UTF-8."""
    try:
        return urllib.parse.unquote(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidArtifactPath(raw, "percent-escapes that are not UTF-8") from None


def check_artifact_path(path: str) -> str:
    """``path`` itself when it is a safe relative artifact path; 400 otherwise."""
    if not path:
        raise InvalidArtifactPath(path, "empty")
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidArtifactPath(path, f"longer than {MAX_PATH_LENGTH} characters")
    for char in path:
        if char == "\x00":
            raise InvalidArtifactPath(path, "contains a NUL character")
        if char == "\\":
            raise InvalidArtifactPath(path, "contains a backslash")
        category = unicodedata.category(char)
        # Cc: control characters; Cf: format characters (bidi overrides, zero widths), which
        # make a name read differently from what it is.
        if category in ("Cc", "Cf"):
            raise InvalidArtifactPath(path, f"contains the control character U+{ord(char):04X}")
    if path.startswith("/") or _DRIVE.match(path):
        raise InvalidArtifactPath(path, "is absolute")
    if _ESCAPE.search(path):
        # Decoded once by the URL already: an escape left over is a double encoding
        # (%252e%252e), a classic way past a check made before the last decoding.
        raise InvalidArtifactPath(path, "contains a percent-escape after decoding")
    segments = path.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise InvalidArtifactPath(path, f"more than {MAX_SEGMENTS} segments")
    for segment in segments:
        if not segment:
            raise InvalidArtifactPath(path, "has an empty segment ('//' or a trailing '/')")
        folded = unicodedata.normalize("NFKC", segment)
        if set(folded) <= {"."}:
            raise InvalidArtifactPath(path, f"has a segment {segment!r} made of dots only")
        if segment != segment.strip():
            raise InvalidArtifactPath(path, "has a segment with leading or trailing whitespace")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_LENGTH:
            raise InvalidArtifactPath(path, f"has a segment longer than {MAX_SEGMENT_LENGTH} bytes")
    return path


def check_filename(name: str) -> str:
    """``name`` itself when it is a safe single file name (a package's file); 400 otherwise."""
    check_artifact_path(name)
    if "/" in name:
        raise InvalidArtifactPath(name, "a file name cannot contain '/'")
    return name


def basename(path: str) -> str:
    """The last segment of a checked path."""
    return path.rsplit("/", 1)[-1]
