"""License policy documents: validation with JSON paths, org + project merge, evaluation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.scanner.domain.license_policy import (
    LicensePolicyDocument,
    LicensePolicyInvalid,
    ProjectLicensePolicy,
    canonical_license,
    decode_policy,
    decode_project_policy,
    effective_policy,
    evaluate_licenses,
    policy_document,
)
from services.scanner.domain.licenses import Waiver
from services.scanner.domain.model import Component, License

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def problems(data: bytes, *, project: bool = False) -> list[tuple[str, str]]:
    with pytest.raises(LicensePolicyInvalid) as caught:
        (decode_project_policy if project else decode_policy)(data)
    assert caught.value.code == "license_policy_invalid"
    assert caught.value.status == 422
    return [(e["location"], e["message"]) for e in caught.value.extra["errors"]]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("MIT", "MIT"),
        ("mit", "MIT"),
        (" Apache-2.0 ", "Apache-2.0"),
        ("GPL-2.0+", "GPL-2.0-or-later"),
        ("gpl-2.0-only with classpath-exception-2.0", "GPL-2.0-only WITH Classpath-exception-2.0"),
        ("LicenseRef-acme-eula", "LicenseRef-acme-eula"),
    ],
)
def test_canonical_entries(text: str, canonical: str) -> None:
    assert canonical_license(text) == canonical


def test_every_problem_is_reported_with_its_path() -> None:
    found = problems(
        body(
            allowed=["MIT", "mit", "Apach-2.0"],
            conditional=["MIT OR Apache-2.0", "NOASSERTION"],
            forbidden=["MIT", "Acme Proprietary", "LicenseRef-a b"],
        )
    )
    locations = [location for location, _ in found]
    assert locations == [
        "$.allowed[1]",
        "$.allowed[2]",
        "$.conditional[0]",
        "$.conditional[1]",
        "$.forbidden[0]",
        "$.forbidden[1]",
        "$.forbidden[2]",
    ]
    messages = dict(found)
    assert "already listed at $.allowed[0]" in messages["$.allowed[1]"]
    assert "did you mean 'Apache-2.0'" in messages["$.allowed[2]"]
    assert "is an expression" in messages["$.conditional[0]"]
    assert "one category" in messages["$.forbidden[0]"]
    assert "LicenseRef-" in messages["$.forbidden[1]"]


def test_shape_errors_say_where() -> None:
    # Where, not msgspec's wording of what (it changes between releases).
    [(location, message)] = problems(body(allowed=["MIT", ""]))
    assert location == "$.allowed[1]" and message
    [(location, message)] = problems(body(allowed=["MIT"], surprise=1))
    assert (location, "surprise" in message) == ("$", True)
    [(location, message)] = problems(body(default="maybe"))
    assert location == "$.default"
    [(location, message)] = problems(b"{not json")
    assert location == "$" and "not valid JSON" in message
    [(location, _)] = problems(body(allowed=["x" * 201]))
    assert location == "$.allowed[0]"
    [(location, _)] = problems(body(allowed=[f"LicenseRef-{i}" for i in range(2001)]))
    assert location == "$.allowed"


def test_project_override_wins_per_license_and_inherits_fallbacks() -> None:
    org = decode_policy(
        body(
            allowed=["MIT", "Apache-2.0"],
            conditional=["LGPL-2.1-only"],
            forbidden=["GPL-3.0-only", "AGPL-3.0-only"],
            default="conditional",
            no_license="forbidden",
        )
    )
    project = decode_project_policy(
        body(allowed=["GPL-3.0-only"], forbidden=["mit"], unknown="forbidden")
    )
    policy = effective_policy(org, project)
    assert policy.categories == {
        "MIT": "forbidden",
        "Apache-2.0": "allowed",
        "LGPL-2.1-only": "conditional",
        "GPL-3.0-only": "allowed",
        "AGPL-3.0-only": "forbidden",
    }
    assert (policy.default, policy.unknown, policy.no_license) == (
        "conditional",
        "forbidden",
        "forbidden",
    )
    shown = policy_document(policy)
    assert shown.forbidden == ["AGPL-3.0-only", "MIT"]
    assert shown.allowed == ["Apache-2.0", "GPL-3.0-only"]


def test_no_org_policy_means_everything_is_unknown() -> None:
    policy = effective_policy(None)
    assert policy.categories == {}
    assert (policy.default, policy.unknown, policy.no_license) == ("unknown",) * 3
    assert effective_policy(LicensePolicyDocument(), ProjectLicensePolicy()) == policy


def test_evaluate_components_with_waivers() -> None:
    policy = effective_policy(
        LicensePolicyDocument(allowed=["MIT"], forbidden=["GPL-3.0-only"], default="conditional")
    )
    components = [
        Component(ref="a", name="a", licenses=(License(id="MIT"),)),
        Component(
            ref="b", name="b", purl="pkg:npm/b@1.0.0", licenses=(License(id="GPL-3.0-only"),)
        ),
        Component(ref="c", name="c", licenses=(License(id="GPL-3.0-only"),)),
        Component(ref="d", name="d", licenses=(License(expression="MIT OR GPL-3.0-only"),)),
        Component(ref="e", name="e"),
    ]
    waiver = Waiver(
        id="w1", license="GPL-3.0-only", purl="pkg:npm/b", expires_at=NOW + timedelta(days=1)
    )
    results = evaluate_licenses(components, policy, waivers=[waiver], now=NOW)
    assert [(r.component_ref, r.verdict.category) for r in results] == [
        ("a", "allowed"),
        ("b", "allowed"),
        ("c", "forbidden"),
        ("d", "allowed"),
        ("e", "unknown"),
    ]
    assert results[1].verdict.waived_by == ("w1",)
    later = evaluate_licenses(components, policy, waivers=[waiver], now=NOW + timedelta(days=2))
    assert later[1].verdict.category == "forbidden"


def test_only_the_first_unknown_entries_get_a_did_you_mean_hint() -> None:
    # A fuzzy match over every SPDX id costs milliseconds: 2,000 of them took the scanner
    # past the gateway's deadline (504). The first few entries still get their hint.
    from services.scanner.domain.license_policy import HINTS_MAX

    with pytest.raises(LicensePolicyInvalid) as caught:
        decode_policy(body(allowed=[f"Apache-2.{n}x" for n in range(HINTS_MAX + 5)]))
    messages = [problem.message for problem in caught.value.problems]
    assert len(messages) == HINTS_MAX + 5
    assert all("did you mean" in m for m in messages[:HINTS_MAX])
    assert not any("did you mean" in m for m in messages[HINTS_MAX:])
