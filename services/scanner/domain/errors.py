"""The scanner's error root and the ingestion errors.

Every error here is permanent: the same bytes will fail the same way on every retry, so a
consumer terminates the message and a scan fails with ``code`` and ``location`` as its reason.
"""

from __future__ import annotations

from typing import Any

from shared.errors import GatehouseError


class ScannerError(GatehouseError):
    """Root of every error the scanner's domain raises."""

    code, status, title = "scanner_error", 422, "Scanner error"


class IngestError(ScannerError):
    """An input document, lockfile or archive that cannot be read.

    ``location`` says where: a JSON path (``$.components[3].name``), ``line 12`` (with a
    column when known) or ``path/in/archive:line``.
    """

    code, status, title = "ingest_failed", 422, "Input cannot be read"

    def __init__(
        self,
        detail: str = "",
        *,
        code: str | None = None,
        location: str | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
    ):
        merged = dict(extra or {})
        if location is not None:
            merged["location"] = location
        super().__init__(detail, code=code, status=status, extra=merged)
        self.location = location

    def __str__(self) -> str:
        return f"{self.detail} (at {self.location})" if self.location else self.detail


class UnknownFormat(IngestError):
    """Neither CycloneDX nor SPDX; the detail names what was seen instead."""

    code, status, title = "sbom_unknown_format", 415, "Unknown SBOM format"


class UnsupportedSpecVersion(IngestError):
    code, status, title = "sbom_unsupported_version", 422, "Unsupported SBOM specification version"


class MalformedDocument(IngestError):
    """Syntax or shape error in an SBOM; ``location`` names the JSON path or line."""

    code, status, title = "sbom_malformed", 422, "Malformed SBOM"


class ForbiddenXml(IngestError):
    """DOCTYPE / entity declarations: refused outright (billion laughs, external entities)."""

    code, status, title = "sbom_xml_forbidden", 422, "Forbidden XML construct"


class LockfileError(IngestError):
    """A lockfile that cannot be parsed; ``location`` is ``path:line`` where known."""

    code, status, title = "lockfile_malformed", 422, "Malformed lockfile"


class ArchiveError(IngestError):
    """A refused upload archive. Codes: ``archive_invalid``, ``archive_path_traversal``,
    ``archive_symlink``, ``archive_encrypted``, ``archive_too_many_entries``,
    ``archive_too_large``, ``archive_bomb``."""

    code, status, title = "archive_invalid", 422, "Archive refused"


def archive_error(code: str, detail: str, *, location: str | None = None) -> ArchiveError:
    """An ``ArchiveError`` with its stable code; size refusals answer 413 like a big body."""
    status = 413 if code in ("archive_too_large", "archive_too_many_entries") else 422
    return ArchiveError(detail, code=code, status=status, location=location)
