"""The artifact registry's rules, pure: names, formats, quotas, which blocks match an
artifact, and the checks of a block's definition. No I/O and no clock: ``now`` is passed in.

* **Names.** PyPI compares package names PEP 503-normalized (``Foo_Bar.baz`` is
  ``foo-bar-baz``); the simple index lists them so, and name patterns match them so.
* **Blocks.** A block matches an artifact by digest, by purl (same package, and the purl's
  version or the block's ``vers:`` range when either is given), or by a glob on the name.
  A block limited to a format matches that format's artifacts only. A block whose
  ``blocked_until`` has passed is inactive: it matches nothing.
* **Quotas.** An upload that would take a repository past its byte quota is refused (413),
  past its artifact count (507); unlimited when the quota is None.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import re
import uuid
from collections.abc import Iterable
from typing import Literal

import msgspec

from services.scanner.domain.model import ECOSYSTEM_BY_PURL_TYPE, normalize_pypi_name
from services.scanner.domain.purls import InvalidPurl, build_purl, parse_purl
from services.scanner.domain.vers import InvalidVers, VersRange, parse_vers
from services.scanner.domain.versions import VersionError, parse_version

Format = Literal["pypi", "generic"]
Kind = Literal["wheel", "sdist", "file"]

KINDS_OF_FORMAT: dict[str, frozenset[str]] = {
    "pypi": frozenset({"wheel", "sdist"}),
    "generic": frozenset({"file"}),
}
# A name pattern: letters, digits, '.', '_', '-' and the wildcards '*' and '?'.
_PATTERN = re.compile(r"[A-Za-z0-9._*?-]{1,200}")


def normalize_name(name: str) -> str:
    """PEP 503: case-folded, runs of ``-``, ``_`` and ``.`` become one ``-``."""
    return normalize_pypi_name(name.strip())


def format_accepts(format_: str, kind: str) -> bool:
    return kind in KINDS_OF_FORMAT.get(format_, frozenset())


def pypi_purl(name: str, version: str | None) -> str:
    """The purl of a PyPI package (``pkg:pypi/<normalized name>@<version>``, escaped as the
    purl spec says: ``1.0+local`` is ``1.0%2Blocal``)."""
    return build_purl("pypi", normalize_name(name), version or None)


class FieldProblem(msgspec.Struct, frozen=True):
    field: str
    message: str


def check_artifact_path(path: str) -> list[FieldProblem]:
    """A path inside a repository: '/'-separated, relative, no empty, '.' or '..' segment,
    no backslash and no control character (the gateway checks first; this holds the line
    for any other caller)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in path) or "\\" in path:
        message = "no control characters or backslashes"
    elif path.startswith("/"):
        message = "a path inside the repository, not an absolute one"
    elif any(segment in ("", ".", "..") for segment in path.split("/")):
        message = "no empty, '.' or '..' segments"
    else:
        return []
    return [FieldProblem("$.path", message)]


# ---- quotas ---------------------------------------------------------------------------------
class QuotaRefusal(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["bytes", "artifacts"]
    limit: int
    used: int
    attempted: int

    @property
    def status(self) -> int:
        # 413: this upload is too large for what is left; 507: the repository is full.
        return 413 if self.kind == "bytes" else 507

    def message(self) -> str:
        if self.kind == "bytes":
            return (
                f"the repository holds {self.used} of its {self.limit} bytes; this upload of "
                f"{self.attempted} bytes would take it to {self.used + self.attempted}"
            )
        return (
            f"the repository holds {self.used} of its {self.limit} artifacts; "
            "delete some or raise quota_artifacts"
        )


def quota_refusal(
    *,
    quota_bytes: int | None,
    quota_artifacts: int | None,
    used_bytes: int,
    artifact_count: int,
    size: int,
) -> QuotaRefusal | None:
    """Why an upload of ``size`` bytes may not be added, or None when it may."""
    if quota_bytes is not None and used_bytes + size > quota_bytes:
        return QuotaRefusal(kind="bytes", limit=quota_bytes, used=used_bytes, attempted=size)
    if quota_artifacts is not None and artifact_count + 1 > quota_artifacts:
        return QuotaRefusal(
            kind="artifacts", limit=quota_artifacts, used=artifact_count, attempted=1
        )
    return None


# ---- blocks ---------------------------------------------------------------------------------
class BlockRule(msgspec.Struct, frozen=True, kw_only=True):
    """What a block matches (its definition, without the messages)."""

    id: str
    purl: str | None = None
    versions: str | None = None
    digest: str | None = None
    name_pattern: str | None = None
    format: str | None = None
    blocked_until: dt.datetime | None = None
    # Creation order: of several matching blocks the oldest is named.
    created_seq: int = 0

    def active(self, now: dt.datetime) -> bool:
        return self.blocked_until is None or self.blocked_until > now


class ArtifactFacts(msgspec.Struct, frozen=True, kw_only=True):
    format: str
    digest: str
    path: str
    name: str | None = None
    version: str | None = None
    purl: str | None = None


class PackageRef(msgspec.Struct, frozen=True):
    """A package named by a purl: its identity key and its version, if any."""

    key: str
    version: str | None
    ecosystem: str | None


def purl_ref(purl: str) -> PackageRef | None:
    """The package a purl names (``pypi``: the PEP 503 name), or None when it is no purl."""
    try:
        parsed = parse_purl(purl)
    except InvalidPurl:
        return None
    name = normalize_name(parsed.name) if parsed.type == "pypi" else parsed.name
    namespace = f"{parsed.namespace}/" if parsed.namespace else ""
    return PackageRef(
        f"pkg:{parsed.type}/{namespace}{name}",
        parsed.version,
        ECOSYSTEM_BY_PURL_TYPE.get(parsed.type),
    )


def artifact_ref(facts: ArtifactFacts) -> PackageRef | None:
    """The package an artifact is: its purl, else (pypi) its name and version."""
    if facts.purl:
        found = purl_ref(facts.purl)
        if found is not None:
            return found if found.version or not facts.version else _with(found, facts.version)
    if facts.format == "pypi" and facts.name:
        return purl_ref(pypi_purl(facts.name, facts.version))
    return None


def _with(ref: PackageRef, version: str) -> PackageRef:
    return PackageRef(ref.key, version, ref.ecosystem)


def pattern_subject(facts: ArtifactFacts) -> str:
    """What a name pattern is matched against: the normalized name, else (a generic file
    without a name) the normalized last segment of its path."""
    return normalize_name(facts.name or facts.path.rsplit("/", 1)[-1])


@functools.lru_cache(maxsize=1024)
def _compiled_pattern(pattern: str) -> re.Pattern[str]:
    # The pattern is normalized as names are, wildcards kept: 'Evil_*' matches 'evil-pkg'.
    return re.compile(fnmatch.translate(normalize_name(pattern)))


def name_matches(pattern: str, name: str) -> bool:
    return _compiled_pattern(pattern).match(name) is not None


@functools.lru_cache(maxsize=1024)
def _range(text: str) -> VersRange | None:
    try:
        return parse_vers(text)
    except InvalidVers:
        return None  # refused when the block was made; an old one matches no version


def same_version(ecosystem: str | None, a: str, b: str) -> bool:
    if a == b:
        return True
    if ecosystem is None:
        return False
    try:
        return parse_version(ecosystem, a) == parse_version(ecosystem, b)
    except VersionError:
        return False


def block_matches(block: BlockRule, facts: ArtifactFacts) -> bool:
    """Whether ``block`` names the artifact (active or not: see :func:`matching_block`)."""
    if block.format is not None and block.format != facts.format:
        return False
    if block.digest is not None:
        return block.digest == facts.digest
    if block.name_pattern is not None:
        return name_matches(block.name_pattern, pattern_subject(facts))
    if block.purl is None:
        return False
    wanted, have = purl_ref(block.purl), artifact_ref(facts)
    if wanted is None or have is None or wanted.key != have.key:
        return False
    if wanted.version is not None:
        return have.version is not None and same_version(
            wanted.ecosystem, wanted.version, have.version
        )
    if block.versions is not None:
        found = _range(block.versions)
        return found is not None and have.version is not None and found.contains(have.version)
    return True


def matching_block(
    blocks: Iterable[BlockRule], facts: ArtifactFacts, *, now: dt.datetime
) -> BlockRule | None:
    """The oldest active block that names the artifact, or None."""
    found = [b for b in blocks if b.active(now) and block_matches(b, facts)]
    return min(found, key=lambda b: (b.created_seq, b.id)) if found else None


def check_block_definition(
    *,
    purl: str | None,
    versions: str | None,
    digest: str | None,
    name_pattern: str | None,
) -> list[FieldProblem]:
    """What is wrong with a block's definition (empty: nothing)."""
    given = [
        name
        for name, value in (("purl", purl), ("digest", digest), ("name_pattern", name_pattern))
        if value is not None
    ]
    if len(given) != 1:
        message = "give exactly one of purl, digest and name_pattern" + (
            f" (got {', '.join(given)})" if given else ""
        )
        fields = given or ["purl", "digest", "name_pattern"]
        return [FieldProblem(f"$.{name}", message) for name in fields]
    problems: list[FieldProblem] = []
    if versions is not None and purl is None:
        problems.append(FieldProblem("$.versions", "a version range limits a purl block only"))
    if purl is not None:
        ref = purl_ref(purl)
        if ref is None:
            problems.append(FieldProblem("$.purl", "not a package URL"))
        elif versions is not None:
            problems += check_versions(purl, versions)
    if name_pattern is not None and not _PATTERN.fullmatch(name_pattern):
        problems.append(
            FieldProblem(
                "$.name_pattern",
                "a glob of letters, digits, '.', '_', '-', '*' and '?' (up to 200 characters)",
            )
        )
    return problems


def check_versions(purl: str, versions: str) -> list[FieldProblem]:
    """A ``vers:`` range for a purl block: evaluable, in the purl's own scheme, and not
    beside a version in the purl."""
    ref = purl_ref(purl)
    if ref is None:
        return [FieldProblem("$.purl", "not a package URL")]
    if ref.version is not None:
        return [
            FieldProblem(
                "$.versions",
                "the purl already names a version: drop it from the purl or drop versions",
            )
        ]
    try:
        parsed = parse_vers(versions)
    except InvalidVers as exc:
        return [FieldProblem("$.versions", exc.detail)]
    purl_type = ref.key.removeprefix("pkg:").split("/", 1)[0]
    if purl_type in ECOSYSTEM_BY_PURL_TYPE and parsed.scheme != purl_type:
        return [
            FieldProblem(
                "$.versions",
                f"a {purl_type} purl takes a vers:{purl_type}/… range, not vers:{parsed.scheme}",
            )
        ]
    return []


# ---- quarantine -----------------------------------------------------------------------------
QUARANTINE_REASON = (
    "quarantined: the artifact is held until its scan passes or an admin releases it"
)


def quarantine_block_id(artifact_id: str) -> str:
    """The block-shaped id of an artifact's quarantine (the 451 envelope names a block id):
    the artifact id's 32 hex digits as a UUID, so it is stable and leads back to it."""
    return str(uuid.UUID(hex=artifact_id.removeprefix("art_")))


def artifact_id_of_quarantine(block_id: str) -> str:
    """The inverse of :func:`quarantine_block_id`."""
    return "art_" + uuid.UUID(block_id).hex
