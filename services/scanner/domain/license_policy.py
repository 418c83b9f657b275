"""License policy documents: the org default (``PUT /api/v1/license-policy``) and a project's
override, validated, merged, and turned into the ``licenses.LicensePolicy`` that classifies.

A document lists licenses under ``allowed``, ``conditional`` and ``forbidden``: SPDX ids
(``MIT``; case and deprecated spellings are normalised, ``GPL-2.0+`` is
``GPL-2.0-or-later``), ids with an exception (``GPL-2.0-only WITH Classpath-exception-2.0``)
and ``LicenseRef-...`` ids. ``AND`` / ``OR`` expressions are refused: the classifier
evaluates expressions per license (``OR`` takes the most permissive branch, ``AND`` the most
restrictive), so a policy names single licenses. Free text that is not an SPDX id is refused
with the nearest id when there is one; an organisation's own license is a ``LicenseRef-``.

Three categories for what the lists do not name: ``default`` (an SPDX license on no list),
``unknown`` (a license SPDX does not know: an unrecognised name, a LicenseRef the policy
does not list) and ``no_license`` (a component that declares none). Each defaults to
``unknown``, which the gate treats as a warning, never as allowed.

Merge: a project override is the same document with every field optional. A license the
project lists takes the project's category (moved out of whatever org list held it); the
three fallback categories are the project's when it sets them, else the org's. Validation
reports every problem at once, each with its JSON path.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Annotated, TypeVar

import msgspec

from .errors import ScannerError
from .licenses import (
    Category,
    LicenseClassifier,
    LicensePolicy,
    LicenseVerdict,
    Waiver,
    _licensing,
    parse_license_text,
)
from .licenses import Leaf as _Leaf
from .model import Component

MAX_ENTRIES = 2000
LicenseText = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
LISTS: tuple[Category, ...] = ("allowed", "conditional", "forbidden")


class LicensePolicyDocument(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The org-wide license policy."""

    allowed: Annotated[list[LicenseText], msgspec.Meta(max_length=MAX_ENTRIES)] = []
    conditional: Annotated[list[LicenseText], msgspec.Meta(max_length=MAX_ENTRIES)] = []
    forbidden: Annotated[list[LicenseText], msgspec.Meta(max_length=MAX_ENTRIES)] = []
    default: Category = "unknown"
    unknown: Category = "unknown"
    no_license: Category = "unknown"


class ProjectLicensePolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A project's override: what it lists wins; unset fallbacks inherit the org's."""

    allowed: Annotated[list[LicenseText], msgspec.Meta(max_length=MAX_ENTRIES)] = []
    conditional: Annotated[list[LicenseText], msgspec.Meta(max_length=MAX_ENTRIES)] = []
    forbidden: Annotated[list[LicenseText], msgspec.Meta(max_length=MAX_ENTRIES)] = []
    default: Category | None = None
    unknown: Category | None = None
    no_license: Category | None = None


class PolicyProblem(msgspec.Struct, frozen=True):
    location: str
    message: str


class LicensePolicyInvalid(ScannerError):
    """Every problem of a policy document, each with its JSON path, in ``extra.errors``."""

    code, status, title = "license_policy_invalid", 422, "Invalid license policy"

    def __init__(self, problems: list[PolicyProblem]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(
            f"{first.location}: {first.message}{more}",
            extra={"errors": [msgspec.to_builtins(p) for p in problems]},
        )
        self.problems = problems


@lru_cache(maxsize=1)
def _known_ids() -> dict[str, str]:
    """Lower-cased SPDX license and exception keys -> their canonical spelling."""
    return {key.lower(): key for key in _licensing().known_symbols}


# "Did you mean" hints for the first unknown entries of a document only: each costs a fuzzy
# match over every SPDX id (milliseconds), and a document may list thousands of entries.
HINTS_MAX = 10


def canonical_license(text: str, *, suggest: bool = True) -> str:
    """The canonical key of one policy entry. Raises ``ValueError`` saying why not (with
    the closest SPDX id when ``suggest``)."""
    stripped = " ".join(text.split())
    if stripped.startswith("LicenseRef-"):
        if " " in stripped:
            raise ValueError("a LicenseRef id has no spaces")
        return stripped
    node = parse_license_text(stripped)
    if node is None:
        raise ValueError("is empty, NONE or NOASSERTION: not a license")
    if not isinstance(node, _Leaf):
        raise ValueError(
            "is an expression; a policy lists single licenses (OR and AND are evaluated "
            "per license: OR takes the most permissive branch, AND the most restrictive)"
        )
    if not node.known:
        hint = _did_you_mean(node.key.lower()) if suggest else ""
        raise ValueError("is not an SPDX license id (name your own license LicenseRef-...)" + hint)
    return node.text


@lru_cache(maxsize=256)
def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, list(_known_ids()), n=1, cutoff=0.8)
    return f"; did you mean {_known_ids()[close[0]]!r}?" if close else ""


def validate_policy(
    document: LicensePolicyDocument | ProjectLicensePolicy,
) -> dict[str, Category]:
    """The canonical license -> category map of a document; raises
    ``LicensePolicyInvalid`` listing every unknown, malformed or repeated entry."""
    problems: list[PolicyProblem] = []
    categories: dict[str, Category] = {}
    where: dict[str, str] = {}
    for category in LISTS:
        for index, text in enumerate(getattr(document, category)):
            location = f"$.{category}[{index}]"
            try:
                key = canonical_license(text, suggest=len(problems) < HINTS_MAX)
            except ValueError as exc:
                problems.append(PolicyProblem(location, f"{text[:80]!r} {exc}"))
                continue
            if key in categories:
                problems.append(
                    PolicyProblem(
                        location,
                        f"{key} is already listed at {where[key]}"
                        + (
                            ""
                            if categories[key] == category
                            else f" as {categories[key]}; a license has one category"
                        ),
                    )
                )
                continue
            categories[key] = category
            where[key] = location
    if problems:
        raise LicensePolicyInvalid(problems)
    return categories


def decode_policy(data: bytes) -> LicensePolicyDocument:
    """Decode and validate an org policy body (JSON). Raises ``LicensePolicyInvalid``."""
    return _decode(data, LicensePolicyDocument)


def decode_project_policy(data: bytes) -> ProjectLicensePolicy:
    return _decode(data, ProjectLicensePolicy)


_AT_PATH = re.compile(r" - at `(\$[^`]*)`$")
_Document = TypeVar("_Document", LicensePolicyDocument, ProjectLicensePolicy)


def _decode(data: bytes, kind: type[_Document]) -> _Document:
    try:
        document = msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _AT_PATH.search(text)
        location = match.group(1) if match else "$"
        raise LicensePolicyInvalid([PolicyProblem(location, _AT_PATH.sub("", text))]) from None
    except msgspec.DecodeError as exc:
        raise LicensePolicyInvalid([PolicyProblem("$", f"not valid JSON: {exc}")]) from None
    validate_policy(document)
    return document


def effective_policy(
    org: LicensePolicyDocument | None, project: ProjectLicensePolicy | None = None
) -> LicensePolicy:
    """The policy that classifies a project's components: the org's (or the empty default
    when none is set), overridden by the project's."""
    org = org or LicensePolicyDocument()
    categories = validate_policy(org)
    default, unknown, no_license = org.default, org.unknown, org.no_license
    if project is not None:
        categories.update(validate_policy(project))
        default = project.default or default
        unknown = project.unknown or unknown
        no_license = project.no_license or no_license
    return LicensePolicy(
        categories=categories, default=default, unknown=unknown, no_license=no_license
    )


def policy_document(policy: LicensePolicy) -> LicensePolicyDocument:
    """The document form of a policy (lists sorted), e.g. to show the effective one."""
    lists: dict[str, list[str]] = {name: [] for name in LISTS}
    for key, category in sorted(policy.categories.items(), key=lambda kv: kv[0].lower()):
        if category in lists:
            lists[category].append(key)
    return LicensePolicyDocument(
        allowed=lists["allowed"],
        conditional=lists["conditional"],
        forbidden=lists["forbidden"],
        default=policy.default,
        unknown=policy.unknown,
        no_license=policy.no_license,
    )


class LicenseResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One component's license verdict, as the gate, the licenses read and notices use."""

    component_ref: str
    name: str
    version: str | None = None
    purl: str | None = None
    verdict: LicenseVerdict


def evaluate_licenses(
    components: Iterable[Component],
    policy: LicensePolicy,
    *,
    waivers: Iterable[Waiver] = (),
    now: datetime,
) -> list[LicenseResult]:
    classifier = LicenseClassifier(policy, tuple(waivers))
    return [
        LicenseResult(
            component_ref=c.ref,
            name=c.name,
            version=c.version,
            purl=c.purl,
            verdict=classifier.classify(c.licenses, purl=c.purl, now=now),
        )
        for c in components
    ]
