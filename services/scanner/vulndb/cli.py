"""``gatehouse vulndb import PATH`` and ``gatehouse vulndb epss PATH``.

The command talks to NATS (``GATEHOUSE_NATS_URL``): it stores the file as a blob and asks the
scanner to import it, exactly as the gateway does for an upload, and prints the import's
summary as JSON. A folder given to ``import`` is zipped first (its ``*.json`` files, any
depth).
"""

from __future__ import annotations

import getpass
import io
import zipfile
from pathlib import Path
from typing import Literal

import msgspec

from contracts.rpc.scanner_vulndb import (
    IMPORT_EPSS,
    IMPORT_OSV,
    IMPORT_TIMEOUT_SECONDS,
    SERVICE,
    EpssImportRequest,
    ImportSummary,
    OsvImportRequest,
)
from shared.blobs import BlobStore
from shared.bus import Bus
from shared.errors import ValidationFailed
from shared.rpc import CallContext, call
from shared.settings import Settings


def actor() -> str:
    """Who imported, as the import record shows it: ``cli:<operating-system user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "cli"


def zip_folder(folder: Path) -> bytes:
    """The ``*.json`` files under ``folder`` as a zip, paths relative to it, sorted."""
    buffer = io.BytesIO()
    files = sorted(p for p in folder.rglob("*.json") if p.is_file())
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        for path in files:
            out.writestr(path.relative_to(folder).as_posix(), path.read_bytes())
    return buffer.getvalue()


def _read(path: Path) -> bytes:
    if not path.exists():
        raise ValidationFailed(f"{path}: no such file or folder", code="path_not_found")
    return path.read_bytes()


def load(path: Path, *, kind: str) -> tuple[bytes, Literal["zip", "folder"]]:
    """The bytes to upload and their format: a folder given to ``import`` is zipped."""
    if kind == "osv" and path.is_dir():
        return zip_folder(path), "folder"
    return _read(path), "zip"


async def run_import(
    settings: Settings, data: bytes, *, kind: str, name: str, fmt: Literal["zip", "folder"]
) -> ImportSummary:
    """Store ``data`` as a blob and import it (``kind``: ``osv`` or ``epss``)."""
    request: msgspec.Struct
    bus = await Bus.connect(settings, name="gatehouse-cli-vulndb")
    try:
        blobs = await BlobStore.open(bus)
        digest = await blobs.put(data)
        if kind == "osv":
            request = OsvImportRequest(digest=digest, format=fmt, name=name)
            operation = IMPORT_OSV
        else:
            request = EpssImportRequest(digest=digest, name=name)
            operation = IMPORT_EPSS
        return await call(
            bus,
            SERVICE,
            operation,
            request,
            ImportSummary,
            ctx=CallContext(request_id="", actor=actor(), roles=("ADMIN",)),
            timeout=IMPORT_TIMEOUT_SECONDS,
        )
    finally:
        await bus.close()
