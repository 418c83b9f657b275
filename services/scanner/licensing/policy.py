"""The license policy in force, between the contract's documents and the domain's rules.

* ``canonical_document`` validates a body (every SPDX id checked, each problem with its JSON
  path) and gives the document as it is stored and published: licenses in canonical SPDX
  spelling, the org policy's fallbacks filled in.
* ``PolicyContext`` is what classifies a project's components: the org policy and the
  project's override (each with its version) and the project's active waivers, at ``now``.
  The same context, rebuilt from the versions a snapshot was evaluated with, explains its
  categories later (the licenses read).
* ``check_if_match``: optimistic concurrency on a policy's version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from contracts.events.licensing import LicensePolicyDocument
from contracts.rpc.scanner_licensing import POLICY_BYTES_MAX, LicensePolicyBody
from services.scanner.domain import license_policy as domain
from services.scanner.domain.licenses import LicenseClassifier, LicensePolicy, Waiver
from shared.errors import PreconditionFailed, ValidationFailed

ORG_SCOPE = "org"


def scope_of(project_id: str | None) -> str:
    """The policy's key: ``org`` or ``project:<id>``."""
    return ORG_SCOPE if project_id is None else f"project:{project_id}"


def policy_id(project_id: str | None) -> str:
    return "license:org" if project_id is None else f"license:project:{project_id}"


class LicensePolicyInvalid(ValidationFailed):
    code, title = "license_policy_invalid", "Invalid license policy"


class LicensePolicyTooLarge(ValidationFailed):
    code, title = "license_policy_too_large", "The license policy is too large"


class VersionMismatch(PreconditionFailed):
    def __init__(self, current: int) -> None:
        super().__init__(
            "If-Match does not match the current ETag; read the policy again",
            extra={"current_etag": etag(current)},
        )


def etag(version: int) -> str:
    return f'"v{version}"'


def check_if_match(if_match: list[int] | None, current: int) -> None:
    """``if_match`` None: unconditional (no header, or ``*``)."""
    if if_match is not None and current not in if_match:
        raise VersionMismatch(current)


# ---- documents ------------------------------------------------------------------------------
def _domain_org(document: LicensePolicyDocument | None) -> domain.LicensePolicyDocument | None:
    if document is None:
        return None
    return domain.LicensePolicyDocument(
        allowed=list(document.allowed),
        conditional=list(document.conditional),
        forbidden=list(document.forbidden),
        default=document.default or "unknown",
        unknown=document.unknown or "unknown",
        no_license=document.no_license or "unknown",
    )


def _domain_project(
    document: LicensePolicyDocument | None,
) -> domain.ProjectLicensePolicy | None:
    if document is None:
        return None
    return domain.ProjectLicensePolicy(
        allowed=list(document.allowed),
        conditional=list(document.conditional),
        forbidden=list(document.forbidden),
        default=document.default,
        unknown=document.unknown,
        no_license=document.no_license,
    )


def canonical_document(body: LicensePolicyBody, *, org: bool) -> LicensePolicyDocument:
    """The document to store. Raises ``LicensePolicyInvalid`` listing every entry that is
    not a single SPDX license (or is listed twice), each at its JSON path."""
    lists: dict[str, list[str]] = {"allowed": [], "conditional": [], "forbidden": []}
    problems: list[dict[str, str]] = []
    for name, entries in (
        ("allowed", body.allowed),
        ("conditional", body.conditional),
        ("forbidden", body.forbidden),
    ):
        for index, text in enumerate(entries):
            try:
                suggest = len(problems) < domain.HINTS_MAX
                lists[name].append(domain.canonical_license(text, suggest=suggest))
            except ValueError as exc:
                problems.append(
                    {"field": f"$.{name}[{index}]", "message": f"{text[:80]!r} {exc}", "in": "body"}
                )
    if not problems:
        try:
            domain.validate_policy(  # repeats, within and across the lists
                domain.ProjectLicensePolicy(
                    allowed=lists["allowed"],
                    conditional=lists["conditional"],
                    forbidden=lists["forbidden"],
                )
            )
        except domain.LicensePolicyInvalid as exc:
            problems = [
                {"field": p.location, "message": p.message, "in": "body"} for p in exc.problems
            ]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise LicensePolicyInvalid(
            f"{problems[0]['field']}: {problems[0]['message']}{more}", extra={"errors": problems}
        )
    fallback = "unknown" if org else None
    document = LicensePolicyDocument(
        allowed=lists["allowed"],
        conditional=lists["conditional"],
        forbidden=lists["forbidden"],
        default=body.default or fallback,  # type: ignore[arg-type]
        unknown=body.unknown or fallback,  # type: ignore[arg-type]
        no_license=body.no_license or fallback,  # type: ignore[arg-type]
    )
    size = len(msgspec.json.encode(document))
    if size > POLICY_BYTES_MAX:
        raise LicensePolicyTooLarge(
            f"the policy is {size} bytes encoded; at most {POLICY_BYTES_MAX} are accepted",
            extra={"limit": POLICY_BYTES_MAX},
        )
    return document


def document_of(policy: LicensePolicy) -> LicensePolicyDocument:
    """A policy in document form (lists sorted): what the effective policy looks like."""
    shown = domain.policy_document(policy)
    return LicensePolicyDocument(
        allowed=shown.allowed,
        conditional=shown.conditional,
        forbidden=shown.forbidden,
        default=shown.default,
        unknown=shown.unknown,
        no_license=shown.no_license,
    )


DEFAULT_ORG_DOCUMENT = document_of(LicensePolicy())


# ---- what classifies ------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PolicyContext:
    """The org policy, the project's override and its waivers as of ``now``. Versions are 0
    for a policy never set; ``project_document`` is None without an override in force."""

    org_version: int = 0
    org_document: LicensePolicyDocument | None = None
    project_version: int = 0
    project_document: LicensePolicyDocument | None = None
    waivers: Sequence[Waiver] = field(default_factory=tuple)
    now: dt.datetime

    @property
    def project_override(self) -> bool:
        return self.project_document is not None

    @property
    def waiver_ids(self) -> list[str]:
        return sorted(w.id for w in self.waivers)

    def policy(self) -> LicensePolicy:
        return domain.effective_policy(
            _domain_org(self.org_document), _domain_project(self.project_document)
        )

    def classifier(self) -> LicenseClassifier:
        return LicenseClassifier(self.policy(), tuple(self.waivers))

    def effective_document(self) -> LicensePolicyDocument:
        return document_of(self.policy())
