"""Package URLs: a fast reader for the hot path and a builder over ``packageurl-python``.

SBOMs carry one purl per component, and a 10,000-component document must parse in a small
multiple of msgspec's decode time; ``PackageURL.from_string`` costs ~17 µs a call, which alone
would be several times that budget. ``parse_purl`` implements the purl specification's parsing
steps with ``str.partition`` and decodes percent-escapes only when there are any; a unit test
holds it to ``packageurl-python``'s answers. Lockfile readers build purls with the library.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import msgspec
from packageurl import PackageURL

from .model import ECOSYSTEM_BY_PURL_TYPE

_TYPE = re.compile(r"[a-z][a-z0-9.+-]*")
_COMMON_TYPES = frozenset(
    (
        "npm",
        "pypi",
        "maven",
        "golang",
        "cargo",
        "gem",
        "composer",
        "nuget",
        "deb",
        "rpm",
        "apk",
        "generic",
        "github",
        "docker",
        "oci",
        "conan",
        "swift",
        "hex",
        "pub",
        "cocoapods",
    )
)


class Purl(msgspec.Struct, frozen=True, gc=False):
    type: str
    namespace: str | None
    name: str
    version: str | None
    qualifiers: tuple[tuple[str, str], ...]  # sorted by key
    subpath: str | None

    @property
    def ecosystem(self) -> str | None:
        """The OSV ecosystem of this package type, or None when OSV has none for it."""
        return ECOSYSTEM_BY_PURL_TYPE.get(self.type)

    @property
    def package(self) -> str:
        """The package name as the ecosystem's registry (and OSV) spells it."""
        if not self.namespace:
            return self.name
        if self.type == "maven":
            return f"{self.namespace}:{self.name}"
        return f"{self.namespace}/{self.name}"

    @property
    def identity(self) -> str:
        """Canonical text: equal for purls that differ only in escaping or qualifier order."""
        text = f"pkg:{self.type}/"
        if self.namespace:
            text += self.namespace + "/"
        text += self.name
        if self.version is not None:
            text += "@" + self.version
        if self.qualifiers:
            text += "?" + "&".join(f"{k}={v}" for k, v in self.qualifiers)
        if self.subpath:
            text += "#" + self.subpath
        return text


class InvalidPurl(ValueError):
    """The text is not a package URL; the message says which rule it breaks."""


def _decode(text: str) -> str:
    return unquote(text) if "%" in text else text


def parse_purl(text: str) -> Purl:
    """Parse ``pkg:type/namespace/name@version?qualifiers#subpath`` (purl-spec parsing rules).

    Raises ``InvalidPurl``. Type-specific normalisation follows the spec where it changes
    identity: ``pypi`` names are lower-cased with ``_`` as ``-``; ``github``/``bitbucket``
    namespace and name are lower-cased.
    """
    remainder, _, subpath = text.strip().partition("#")
    remainder, _, qualifier_text = remainder.partition("?")
    scheme, colon, remainder = remainder.partition(":")
    if not colon or scheme.lower() != "pkg":
        raise InvalidPurl("a purl starts with 'pkg:'")
    remainder = remainder.strip("/")
    purl_type, slash, remainder = remainder.partition("/")
    purl_type = purl_type.lower()
    if not slash or (purl_type not in _COMMON_TYPES and not _TYPE.fullmatch(purl_type)):
        raise InvalidPurl("a purl has a type made of letters, digits, '.', '+' or '-'")
    head, at, version_text = remainder.rpartition("@")
    if at and "/" not in version_text:
        remainder = head
        version: str | None = _decode(version_text) or None
    else:
        version = None
    namespace_text, _, name_text = remainder.strip("/").rpartition("/")
    name = _decode(name_text).strip()
    if not name:
        raise InvalidPurl("a purl has a name")
    namespace = (
        "/".join(_decode(s) for s in namespace_text.split("/") if s) if namespace_text else None
    ) or None
    qualifiers: tuple[tuple[str, str], ...] = ()
    if qualifier_text:
        pairs = []
        for item in qualifier_text.split("&"):
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise InvalidPurl(f"qualifier {item!r} is not key=value")
            if value:
                pairs.append((key.lower(), _decode(value)))
        qualifiers = tuple(sorted(pairs))
    if purl_type == "pypi":
        name = name.lower().replace("_", "-")
    elif purl_type in ("github", "bitbucket"):
        name = name.lower()
        namespace = namespace.lower() if namespace else None
    return Purl(
        type=purl_type,
        namespace=namespace,
        name=name,
        version=version,
        qualifiers=qualifiers,
        subpath=(_decode(subpath).strip("/") or None) if subpath else None,
    )


def build_purl(
    purl_type: str,
    name: str,
    version: str | None,
    *,
    namespace: str | None = None,
    qualifiers: dict[str, str] | None = None,
) -> str:
    """A purl string from its parts, escaped and normalised by ``packageurl-python``."""
    return str(
        PackageURL(
            type=purl_type,
            namespace=namespace,
            name=name,
            version=version,
            qualifiers=qualifiers or None,
        ).to_string()
    )


def split_package(purl_type: str, package: str) -> tuple[str | None, str]:
    """(namespace, name) of a registry package name, the inverse of ``Purl.package``."""
    if purl_type == "maven" and ":" in package:
        group, _, artifact = package.partition(":")
        return group, artifact
    if purl_type in ("npm", "golang", "composer") and "/" in package:
        namespace, _, name = package.rpartition("/")
        return namespace, name
    return None, package
