"""The legacy upload API's form (what ``twine upload`` posts), checked field by field.

``:action=file_upload`` with ``name``, ``version``, ``filetype`` (``bdist_wheel`` /
``sdist``), the ``content`` file part and its digests (``sha256_digest``, ``md5_digest``,
``blake2_256_digest``; each optional, each checked when sent). Other metadata fields
(``summary``, ``classifiers``, ``requires_dist``…) are accepted and ignored: the stored
file's own metadata is what counts. ``source_repo`` / ``source_commit`` name where the
file was built from (Gatehouse's provenance).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from contracts.events.registry import Provenance
from services.gateway.packages.domain.errors import InvalidUploadForm, MetadataMismatch
from services.gateway.packages.domain.filenames import DistFilename
from services.gateway.packages.domain.names import (
    canonical_version,
    is_valid_name,
    normalize_name,
    same_version,
)
from shared.errors import BadRequest

_FILETYPES = {"bdist_wheel": "wheel", "sdist": "sdist"}
_HEX = {"sha256_digest": 64, "md5_digest": 32, "blake2_256_digest": 64}
# Bounds of the non-file fields (a form is text; twine sends a few KiB of metadata).
MAX_FIELDS = 500
MAX_FIELD_BYTES = 256 * 1024
MAX_FORM_BYTES = 2 * 1024 * 1024


class DeclaredDigestMismatch(BadRequest):
    code, title = "digest_mismatch", "The content does not match its declared digest"


@dataclass(frozen=True, kw_only=True)
class UploadForm:
    name: str
    version: str
    filetype: str | None
    sha256: str | None
    md5: str | None
    blake2_256: str | None
    provenance: Provenance | None


def upload_form(fields: Mapping[str, list[str]]) -> UploadForm:
    """The form's fields as an :class:`UploadForm`; 400 ``invalid_upload`` naming the field."""
    action = _optional(fields, ":action")
    if action != "file_upload":
        raise InvalidUploadForm(
            f":action {action!r} is not supported; only file_upload is",
            extra={"field": ":action"},
        )
    protocol = _optional(fields, "protocol_version")
    if protocol not in (None, "1"):
        raise InvalidUploadForm(f"protocol_version {protocol!r} is not 1")
    name = _required(fields, "name")
    if not is_valid_name(name):
        raise InvalidUploadForm(f"name {name!r} is not a valid project name (PEP 508)")
    version = _required(fields, "version")
    if canonical_version(version) is None:
        raise InvalidUploadForm(f"version {version!r} is not a PEP 440 version")
    filetype = _optional(fields, "filetype")
    if filetype is not None and filetype not in _FILETYPES:
        raise InvalidUploadForm(f"filetype {filetype!r} is not bdist_wheel or sdist")
    digests = {key: _digest(fields, key) for key in _HEX}
    return UploadForm(
        name=name,
        version=version,
        filetype=filetype,
        sha256=digests["sha256_digest"],
        md5=digests["md5_digest"],
        blake2_256=digests["blake2_256_digest"],
        provenance=_provenance(fields),
    )


def check_matches_file(form: UploadForm, dist: DistFilename) -> None:
    """The form's name, version and filetype agree with the uploaded file's name."""
    if normalize_name(form.name) != dist.normalized_name:
        raise MetadataMismatch(
            f"the form names the project {form.name!r}, the file {dist.filename!r} is {dist.name!r}"
        )
    if not same_version(form.version, dist.version):
        raise MetadataMismatch(
            f"the form names version {form.version!r}, the file {dist.filename!r} "
            f"is {dist.version!r}"
        )
    if form.filetype is not None and _FILETYPES[form.filetype] != dist.kind:
        raise MetadataMismatch(f"filetype {form.filetype} does not fit {dist.filename!r}")


def check_declared_digests(
    form: UploadForm, *, sha256: str, md5: str | None, blake2_256: str | None
) -> None:
    """Every digest the form declares equals the one computed from the stored bytes (one
    not computed never equals)."""
    for label, declared, actual in (
        ("sha256_digest", form.sha256, sha256),
        ("md5_digest", form.md5, md5),
        ("blake2_256_digest", form.blake2_256, blake2_256),
    ):
        if declared is not None and declared != actual:
            raise DeclaredDigestMismatch(
                f"{label} is {declared}, the uploaded content's is {actual}",
                extra={"field": label, "declared": declared, "actual": actual},
            )


def _required(fields: Mapping[str, list[str]], key: str) -> str:
    value = _optional(fields, key)
    if value is None:
        raise InvalidUploadForm(f"the field {key} is required", extra={"field": key})
    return value


def _optional(fields: Mapping[str, list[str]], key: str) -> str | None:
    values = fields.get(key, [])
    if len(set(values)) > 1:
        raise InvalidUploadForm(f"the field {key} is sent more than once", extra={"field": key})
    value = values[0].strip() if values else ""
    if "\x00" in value:
        raise InvalidUploadForm(f"the field {key} contains a NUL character", extra={"field": key})
    return value or None


def _digest(fields: Mapping[str, list[str]], key: str) -> str | None:
    value = _optional(fields, key)
    if value is None:
        return None
    value = value.lower()
    if not re.fullmatch(rf"[0-9a-f]{{{_HEX[key]}}}", value):
        raise InvalidUploadForm(
            f"{key} must be {_HEX[key]} hexadecimal digits", extra={"field": key}
        )
    return value


def _provenance(fields: Mapping[str, list[str]]) -> Provenance | None:
    repo = _optional(fields, "source_repo")
    commit = _optional(fields, "source_commit")
    return provenance_of(repo, commit)


def provenance_of(repo: str | None, commit: str | None) -> Provenance | None:
    """Provenance from its two optional parts; 400 when one is malformed."""
    if repo is None and commit is None:
        return None
    try:
        return msgspec.convert({"repo": repo, "commit": commit}, Provenance)
    except msgspec.ValidationError as exc:
        raise InvalidUploadForm(f"provenance: {exc}") from None
