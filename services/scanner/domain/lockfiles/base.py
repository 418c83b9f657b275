"""What lockfile readers share: the report type, component construction, hashes, names."""

from __future__ import annotations

import base64
import binascii
import tomllib
from collections.abc import Callable, Iterable
from typing import TypeVar

import msgspec

from ..depgraph import widest_scope
from ..errors import LockfileError
from ..model import (
    PURL_TYPE_BY_ECOSYSTEM,
    Component,
    Dependency,
    Hash,
    IngestWarning,
    License,
    Scope,
    package_key,
)
from ..purls import build_purl, split_package
from ..sbom.common import json_error
from .tree import FileTree

T = TypeVar("T")


class LockfileReport(msgspec.Struct, frozen=True, kw_only=True):
    """What one lockfile says: its packages, their graph and what was skipped."""

    path: str
    kind: str  # the lockfile's conventional name: "package-lock.json", "go.mod", ...
    ecosystem: str
    components: tuple[Component, ...]
    dependencies: tuple[Dependency, ...] = ()
    warnings: tuple[IngestWarning, ...] = ()


Reader = Callable[[str, bytes, FileTree], LockfileReport]


def lock_ref(ecosystem: str, name: str, version: str) -> str:
    """The document-local identity of a lockfile package: ``ecosystem:name@version`` with
    the name as the ecosystem compares it, so two lockfiles naming one package agree."""
    return f"{ecosystem}:{package_key(ecosystem, name)}@{version}"


_HASH_NAMES = {
    "sha1": "SHA-1",
    "sha256": "SHA-256",
    "sha384": "SHA-384",
    "sha512": "SHA-512",
    "md5": "MD5",
}


def prefixed_hash(text: str) -> Hash | None:
    """``sha256:abcd...`` (pip, poetry, uv, Pipfile.lock) as a ``Hash``."""
    algorithm, sep, value = text.strip().partition(":")
    alg = _HASH_NAMES.get(algorithm.lower())
    if not sep or alg is None or not value:
        return None
    return Hash(alg, value.lower())


def integrity_hashes(integrity: str | None) -> tuple[Hash, ...]:
    """npm Subresource-Integrity strings (``sha512-<base64>``, space separated) as hex."""
    hashes = []
    for item in (integrity or "").split():
        algorithm, sep, digest = item.partition("-")
        alg = _HASH_NAMES.get(algorithm.lower())
        if not sep or alg is None:
            continue
        try:
            hashes.append(Hash(alg, base64.b64decode(digest, validate=True).hex()))
        except (binascii.Error, ValueError):
            continue
    return tuple(hashes)


def package_component(
    ecosystem: str,
    name: str,
    version: str,
    *,
    scope: Scope,
    direct: bool | None,
    hashes: Iterable[Hash] = (),
    licenses: tuple[License, ...] = (),
    qualifiers: dict[str, str] | None = None,
) -> Component:
    """A component for a registry package named as its registry (and OSV) spell it."""
    purl_type = PURL_TYPE_BY_ECOSYSTEM[ecosystem]
    namespace, short_name = split_package(purl_type, name)
    return Component(
        ref=lock_ref(ecosystem, name, version),
        name=name,
        version=version,
        purl=build_purl(purl_type, short_name, version, namespace=namespace, qualifiers=qualifiers),
        ecosystem=ecosystem,
        package=name,
        hashes=tuple(dict.fromkeys(hashes)),
        licenses=licenses,
        scope=scope,
        direct=direct,
    )


def decode_json(path: str, data: bytes, kind: type[T]) -> T:
    """A JSON lockfile as ``kind``; a syntax or shape error names the file and JSON path."""
    try:
        return msgspec.json.decode(data, type=kind)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        error = json_error(exc, data, path)
        raise LockfileError(error.detail, location=f"{path}: {error.location}") from None


def decode_toml(path: str, data: bytes) -> dict[str, object]:
    """A TOML lockfile; a syntax error names the file and line."""
    try:
        return tomllib.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise LockfileError(f"{path} is not valid UTF-8", location=f"{path}:{line}") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib says "... (at line 3, column 7)"; keep its words, point at the file.
        raise LockfileError(f"{path} is not valid TOML: {exc}", location=path) from None


def convert(path: str, value: object, kind: type[T]) -> T:
    """Parsed TOML as ``kind`` (msgspec validation), errors named by file and key path."""
    try:
        return msgspec.convert(value, type=kind)
    except msgspec.ValidationError as exc:
        message = str(exc)
        where = message.rpartition(" - at ")[2].strip("`") if " - at " in message else "$"
        detail = message.rpartition(" - at ")[0] or message
        raise LockfileError(
            f"{path} does not match its format: {detail}", location=f"{path}: {where}"
        ) from None


def merge_components(a: Component, b: Component) -> Component:
    """One component for two sightings of the same package: the widest scope, direct when
    either says so, the union of hashes and licenses."""
    if a.direct or b.direct:
        direct: bool | None = True
    else:
        direct = a.direct if a.direct is not None else b.direct
    return msgspec.structs.replace(
        a,
        scope=widest_scope((a.scope, b.scope)),
        direct=direct,
        hashes=tuple(dict.fromkeys(a.hashes + b.hashes)),
        licenses=tuple(dict.fromkeys(a.licenses + b.licenses)),
    )
