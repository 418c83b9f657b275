"""Applying VEX statements to a project's findings.

A statement applies to a finding when one of its vulnerability ids is one of the finding's
(group id, advisory ids, aliases; compared case-insensitively) and one of its products
matches the finding's component:

* ``whole_product``: the document's subject, i.e. every finding; when the statement lists
  versions and the snapshot's release label is known, the label must be one of them.
* a purl: same package (ecosystem-normalised names for the ecosystems OSV knows, else type,
  namespace and name), qualifiers and subpath ignored; a purl with a version matches that
  version only (compared in the ecosystem's own order, so PyPI ``1.0`` is ``1.0.0``).
* a component ref: the finding's ``component_ref`` (BOM-links to the SBOM we exported).
* a name (and version): the component's package or document name.

``versions`` / ``ranges`` on a product narrow it further (exact versions, ``vers:`` ranges
evaluated with ``univers``; a range it cannot evaluate matches nothing). The last statement
that applies to a finding wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import msgspec
from univers.version_range import VersionRange

from .findings import Finding, VexState, finding_package
from .model import package_key
from .package_ids import PackageId, purl_package
from .purls import InvalidPurl, parse_purl
from .versions import VersionError, parse_version
from .vex import Triaged, TriageError, TriageState, transition
from .vex_import import VexProduct, VexStatement


class VexApplication(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The statement that decides a finding's state."""

    finding_id: str
    state: VexState
    justification: str | None = None
    detail: str = ""
    statement: str = ""  # the statement's JSON path in the document


def _same_version(ecosystem: str | None, a: str, b: str) -> bool:
    if a == b:
        return True
    if ecosystem:
        try:
            return parse_version(ecosystem, a) == parse_version(ecosystem, b)
        except VersionError:
            return False
    return False


def _in_vers_range(text: str, version: str) -> bool:
    try:
        version_range = VersionRange.from_string(text)  # type: ignore[no-untyped-call]
        return bool(version_range.version_class(version) in version_range)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError):
        return False  # univers refuses the range or the version: the range says nothing


def _version_scope(product: VexProduct, version: str | None, ecosystem: str | None) -> bool:
    if not product.versions and not product.ranges:
        return True
    if version is None:
        return False
    return any(_same_version(ecosystem, version, v) for v in product.versions) or any(
        _in_vers_range(r, version) for r in product.ranges
    )


def _purl_matches(text: str, finding: Finding, pid: PackageId | None) -> bool:
    try:
        wanted = parse_purl(text)
    except InvalidPurl:
        return False
    found = purl_package(text)
    if found is not None:
        if pid is None or found[0] != pid:
            return False
    else:
        if not finding.purl:
            return False
        try:
            have = parse_purl(finding.purl)
        except InvalidPurl:
            return False
        if (wanted.type, wanted.namespace, wanted.name) != (have.type, have.namespace, have.name):
            return False
    if wanted.version is None:
        return True
    version = finding.version
    if version is None and finding.purl:
        try:
            version = parse_purl(finding.purl).version
        except InvalidPurl:
            version = None
    return version is not None and _same_version(finding.ecosystem, wanted.version, version)


def _name_matches(product: VexProduct, finding: Finding) -> bool:
    name = (product.name or "").strip()
    if not name:
        return False
    candidates = {finding.component_name, finding.package} - {""}
    if finding.ecosystem:
        wanted = package_key(finding.ecosystem, name)
        matched = any(package_key(finding.ecosystem, c) == wanted for c in candidates)
    else:
        matched = any(c.casefold() == name.casefold() for c in candidates)
    if not matched:
        return False
    if product.version is None:
        return True
    return finding.version is not None and _same_version(
        finding.ecosystem, product.version, finding.version
    )


def product_matches(
    product: VexProduct,
    finding: Finding,
    *,
    pid: PackageId | None = None,
    product_version: str | None = None,
) -> bool:
    """Whether ``product`` names the component of ``finding`` (see the module docstring)."""
    if product.whole_product:
        if product_version is None or (not product.versions and not product.ranges):
            return True
        return _version_scope(product, product_version, None)
    if pid is None:
        pid = finding_package(finding)
    if product.purl is not None and _purl_matches(product.purl, finding, pid):
        matched = True
    elif product.ref is not None and product.ref == finding.component_ref:
        matched = True
    else:
        # A document component without a purl is known by its name (and version).
        matched = product.purl is None and _name_matches(product, finding)
    return matched and _version_scope(product, finding.version, finding.ecosystem)


def apply_statements(
    findings: Iterable[Finding],
    statements: Sequence[VexStatement],
    *,
    product_version: str | None = None,
) -> list[VexApplication]:
    """For each finding some statement applies to, the state the last such statement sets
    (in ``findings`` order). ``product_version`` is the snapshot's release label, if any."""
    by_id: dict[str, list[int]] = {}
    for index, statement in enumerate(statements):
        for vulnerability_id in statement.vulnerability_ids:
            by_id.setdefault(vulnerability_id.upper(), []).append(index)
    applications: list[VexApplication] = []
    for finding in findings:
        candidates = sorted(
            {i for v in finding.vulnerability_ids for i in by_id.get(v.upper(), ())}
        )
        if not candidates:
            continue
        pid = finding_package(finding)
        chosen: VexStatement | None = None
        for index in candidates:
            statement = statements[index]
            if any(
                product_matches(p, finding, pid=pid, product_version=product_version)
                for p in statement.products
            ):
                chosen = statement
        if chosen is not None:
            applications.append(
                VexApplication(
                    finding_id=finding.id,
                    state=chosen.state,
                    justification=chosen.justification,
                    detail=chosen.detail,
                    statement=chosen.location,
                )
            )
    return applications


ImportStatus = Literal["updated", "unchanged", "failed"]


class VexImportRow(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    finding_id: str
    status: ImportStatus
    from_state: VexState
    to_state: VexState
    statement: str = ""
    code: str | None = None
    detail: str | None = None
    triaged: Triaged | None = None  # what to record, for the rows that changed


def plan_vex_import(
    findings: Sequence[Finding],
    statements: Sequence[VexStatement],
    *,
    roles: Iterable[str],
    product_version: str | None = None,
) -> list[VexImportRow]:
    """Each applicable statement run through the triage rules for the importing principal:
    the rows to record (``updated``), those already in that state, and those the matrix or
    the reason rules refuse (``failed``, with the code; e.g. a statement that would move a
    ``fixed`` finding to ``not_affected``, or a ``not_affected`` statement with only an
    impact statement and no justification)."""
    role_set = frozenset(roles)
    by_id = {f.id: f for f in findings}
    rows: list[VexImportRow] = []
    for application in apply_statements(findings, statements, product_version=product_version):
        finding = by_id[application.finding_id]
        current = TriageState(
            state=finding.state,
            justification=finding.justification,
            detail=finding.detail,
            revision=finding.revision,
        )
        try:
            decided = transition(
                current,
                application.state,
                roles=role_set,
                justification=application.justification,
                detail=application.detail,
            )
        except TriageError as exc:
            rows.append(
                VexImportRow(
                    finding_id=finding.id,
                    status="failed",
                    from_state=finding.state,
                    to_state=application.state,
                    statement=application.statement,
                    code=exc.code,
                    detail=exc.detail,
                )
            )
            continue
        rows.append(
            VexImportRow(
                finding_id=finding.id,
                status="updated" if decided.changed else "unchanged",
                from_state=decided.from_state,
                to_state=decided.to_state,
                statement=application.statement,
                triaged=decided if decided.changed else None,
            )
        )
    return rows
