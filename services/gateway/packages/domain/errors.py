"""Problem codes of the package protocols (``shared.errors`` subclasses)."""

from __future__ import annotations

from shared.errors import BadRequest, GatehouseError


class InvalidDistribution(BadRequest):
    """A file name that is not a wheel or sdist, or a package name / version that is not
    acceptable."""

    code, title = "invalid_distribution", "Not an acceptable Python distribution"


class MetadataMismatch(BadRequest):
    code, title = "metadata_mismatch", "The package metadata disagrees with the file name"


class CorruptArchive(BadRequest):
    code, title = "corrupt_archive", "The archive cannot be read"


class ArchiveTooExpanded(BadRequest):
    code, title = "archive_too_expanded", "The archive expands beyond the limits"


class InvalidUploadForm(BadRequest):
    code, title = "invalid_upload", "The upload form is not acceptable"


class NotAcceptable(GatehouseError):
    code, status, title = "not_acceptable", 406, "No acceptable representation"


class RangeNotSatisfiable(GatehouseError):
    code, status, title = "range_not_satisfiable", 416, "Range not satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(
            f"the requested range lies outside the {size} bytes of the artifact",
            headers={"Content-Range": f"bytes */{size}"},
        )
