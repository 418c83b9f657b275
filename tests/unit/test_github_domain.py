"""Pure rules of the GitHub / GitLab integration: signatures and tokens, reading payloads
into events, rendering a decision (check run and comment), GitHub's rate-limit headers."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.events.commits import CommitPushed
from contracts.events.releases import Blocker
from contracts.events.scm import CheckRerequested, DeliveryReceived, PullRequestUpdated
from services.release_decision.scm.adapters.github_client import rate_limit_wait
from services.release_decision.scm.domain import render
from services.release_decision.scm.domain.auth import (
    github_signature,
    github_signature_valid,
    gitlab_token_valid,
)
from services.release_decision.scm.domain.deliveries import (
    InvalidJson,
    InvalidPayload,
    Reading,
    checked,
)
from services.release_decision.scm.domain.github import CHECK_NAME, read_github
from services.release_decision.scm.domain.gitlab import read_gitlab
from services.release_decision.scm.errors import BadTransport
from services.release_decision.scm.handlers import inflate
from shared.errors import PayloadTooLarge

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def sha(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


# ---- authentication -------------------------------------------------------------------------
def test_signature_matches_githubs_documented_example() -> None:
    # https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    signature = github_signature("It's a Secret to Everybody", b"Hello, World!")
    assert signature == ("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")


def test_signature_checks() -> None:
    body = b'{"zen": "x"}'
    good = github_signature("s3cret", body)
    assert github_signature_valid("s3cret", body, good)
    assert github_signature_valid("s3cret", body, good.upper().replace("SHA256=", "sha256="))
    assert not github_signature_valid("s3cret", body + b" ", good)
    assert not github_signature_valid("other", body, good)
    assert not github_signature_valid("s3cret", body, None)
    assert not github_signature_valid("s3cret", body, "")
    assert not github_signature_valid("s3cret", body, "sha1=" + "0" * 40)
    assert not github_signature_valid("s3cret", body, "sha256=é")
    # No secret configured: nothing is authentic, not even a signature made with "".
    assert not github_signature_valid("", body, github_signature("", body))


def test_gitlab_token_checks() -> None:
    assert gitlab_token_valid("tok", "tok")
    assert not gitlab_token_valid("tok", "tok ")
    assert not gitlab_token_valid("tok", None)
    assert not gitlab_token_valid("", "")
    assert not gitlab_token_valid("tok", "ték")


# ---- GitHub payloads ----------------------------------------------------------------------
def _push(commits: list[str], *, after: str, ref: str = "refs/heads/main", **kw: object) -> bytes:
    return json.dumps(
        {
            "ref": ref,
            "after": after,
            "repository": {"full_name": "acme/app"},
            "commits": [{"id": c, "message": "m" * 5000, "author": {"name": "A"}} for c in commits],
            **kw,
        }
    ).encode()


def _read(event: str, body: bytes) -> object:
    return read_github(event, body, media_type="application/json", delivery_id="d-1", now=NOW)


def test_push_publishes_every_commit_with_the_head_last() -> None:
    a, b, c = sha("a"), sha("b"), sha("c")
    reading = read_github(
        "push", _push([a, b, c], after=c), media_type="application/json", delivery_id="d", now=NOW
    )
    events = reading.events
    assert all(isinstance(e, CommitPushed) for e in events)
    assert [(e.commit, e.head) for e in events] == [(a, False), (b, False), (c, True)]  # type: ignore[attr-defined]
    assert {e.branch for e in events} == {"main"}  # type: ignore[attr-defined]
    assert all(len(e.message) == 4096 for e in events)  # type: ignore[attr-defined]
    # The head is not among the listed commits (a branch created at an existing commit).
    d = sha("d")
    reading = read_github(
        "push", _push([a], after=d), media_type="application/json", delivery_id="d", now=NOW
    )
    assert [(e.commit, e.head) for e in reading.events] == [(a, False), (d, True)]  # type: ignore[attr-defined]


def test_push_of_a_tag_or_a_deletion_is_ignored() -> None:
    tag = read_github(
        "push",
        _push([sha("a")], after=sha("a"), ref="refs/tags/v1"),
        media_type="application/json",
        delivery_id="d",
        now=NOW,
    )
    assert tag.outcome == "ignored" and not tag.events
    gone = read_github(
        "push",
        _push([], after="0" * 40, deleted=True),
        media_type="application/json",
        delivery_id="d",
        now=NOW,
    )
    assert gone.outcome == "ignored" and gone.reason == "the branch was deleted"


def test_bad_payloads() -> None:
    with pytest.raises(InvalidJson):
        _read("push", b"{nope")
    with pytest.raises(InvalidPayload) as caught:
        _read("push", _push([sha("a")], after="NOT-A-SHA"))
    assert "$.after" in caught.value.detail
    with pytest.raises(InvalidPayload):
        _read(
            "push",
            json.dumps(
                {"ref": "refs/heads/x", "after": sha("a"), "repository": {"full_name": "no-slash"}}
            ).encode(),
        )
    with pytest.raises(InvalidJson):
        read_github(
            "push",
            b"other=1",
            media_type="application/x-www-form-urlencoded",
            delivery_id="d",
            now=NOW,
        )


def _pull(action: str, *, state: str = "open", merged: bool = False) -> bytes:
    return json.dumps(
        {
            "action": action,
            "pull_request": {
                "number": 12,
                "state": state,
                "merged": merged,
                "head": {"sha": sha("h"), "ref": "feat"},
                "base": {"sha": sha("b"), "ref": "main"},
            },
            "repository": {"full_name": "acme/app"},
        }
    ).encode()


@pytest.mark.parametrize(
    ("action", "state", "merged", "expected"),
    [
        ("opened", "open", False, "open"),
        ("synchronize", "open", False, "open"),
        ("closed", "closed", True, "merged"),
        ("closed", "closed", False, "closed"),
    ],
)
def test_pull_request_states(action: str, state: str, merged: bool, expected: str) -> None:
    [event] = _read("pull_request", _pull(action, state=state, merged=merged)).events  # type: ignore[attr-defined]
    assert isinstance(event, PullRequestUpdated)
    assert (event.state, event.number, event.head_sha, event.base_branch) == (
        expected,
        12,
        sha("h"),
        "main",
    )


def test_pull_requests_carry_when_github_changed_them() -> None:
    body = json.loads(_pull("synchronize"))
    body["pull_request"]["updated_at"] = "2026-11-25T12:00:05Z"
    [event] = _read("pull_request", json.dumps(body).encode()).events  # type: ignore[attr-defined]
    assert event.changed_at == dt.datetime(2026, 11, 25, 12, 0, 5, tzinfo=dt.UTC)
    for unreadable in ("yesterday", "2026-11-25T12:00:05", None):
        body["pull_request"]["updated_at"] = unreadable
        [event] = _read("pull_request", json.dumps(body).encode()).events  # type: ignore[attr-defined]
        assert event.changed_at is None


def test_unhandled_pull_request_actions_and_check_runs() -> None:
    labeled = _read("pull_request", _pull("labeled"))
    assert labeled.outcome == "ignored" and labeled.action == "labeled"  # type: ignore[attr-defined]
    body = {
        "action": "rerequested",
        "check_run": {
            "id": 5,
            "name": CHECK_NAME,
            "head_sha": sha("h"),
            "pull_requests": [{"number": 3}, {"number": 2}, {"number": 3}],
        },
        "repository": {"full_name": "acme/app"},
    }
    [event] = _read("check_run", json.dumps(body).encode()).events  # type: ignore[attr-defined]
    assert isinstance(event, CheckRerequested) and event.pull_numbers == [2, 3]
    body["action"] = "completed"
    assert _read("check_run", json.dumps(body).encode()).outcome == "ignored"  # type: ignore[attr-defined]


# ---- GitLab payloads ----------------------------------------------------------------------
def test_gitlab_push_and_merge_request() -> None:
    a, b = sha("a"), sha("b")
    push = {
        "object_kind": "push",
        "ref": "refs/heads/main",
        "after": b,
        "project": {"path_with_namespace": "acme/app"},
        "commits": [
            {"id": a, "message": "one"},
            {"id": b, "message": "two", "author": {"name": "Ada"}},
        ],
    }
    events = read_gitlab("Push Hook", json.dumps(push).encode(), delivery_id="u", now=NOW).events
    assert [(e.commit, e.head, e.source, e.author) for e in events] == [  # type: ignore[attr-defined]
        (a, False, "gitlab", ""),
        (b, True, "gitlab", "Ada"),
    ]
    nested = {**push, "project": {"path_with_namespace": "group/sub/app"}}
    reading = read_gitlab("Push Hook", json.dumps(nested).encode(), delivery_id="u", now=NOW)
    assert reading.outcome == "ignored" and "owner/name" in (reading.reason or "")
    merge = {
        "object_kind": "merge_request",
        "project": {"path_with_namespace": "acme/app"},
        "object_attributes": {
            "iid": 4,
            "state": "opened",
            "action": "update",
            "source_branch": "f",
            "target_branch": "main",
            "last_commit": {"id": b},
        },
    }
    [event] = read_gitlab(
        "Merge Request Hook", json.dumps(merge).encode(), delivery_id="u", now=NOW
    ).events
    assert isinstance(event, PullRequestUpdated)
    assert (event.provider, event.number, event.state, event.head_sha) == ("gitlab", 4, "open", b)
    assert read_gitlab("Tag Push Hook", b"{}", delivery_id="u", now=NOW).outcome == "ignored"


# ---- what the projections could not decode is refused before publishing --------------------
def test_bytes_that_are_not_utf8_are_not_json() -> None:
    with pytest.raises(InvalidJson):
        _read("ping", b'{"zen": "\xff"}')
    with pytest.raises(InvalidJson):
        read_gitlab("Push Hook", b"\xff\xfe", delivery_id="u", now=NOW)


def test_a_long_unhandled_action_is_recorded_cut_to_its_bound() -> None:
    for event, body in [
        ("issues", {"action": "x" * 300}),
        ("pull_request", json.loads(_pull("y" * 300))),
    ]:
        reading = _read(event, json.dumps(body).encode())
        assert reading.outcome == "ignored" and reading.action == body["action"][:100]  # type: ignore[attr-defined]
        DeliveryReceived(
            provider="github",
            delivery_id="d",
            event=event,
            action=reading.action,  # type: ignore[attr-defined]
            outcome="ignored",
            received_at=NOW,
        )
    merge = {
        "project": {"path_with_namespace": "acme/app"},
        "object_attributes": {
            "iid": 4,
            "state": "opened",
            "action": "z" * 300,
            "last_commit": {"id": sha("b")},
        },
    }
    reading = read_gitlab(
        "Merge Request Hook", json.dumps(merge).encode(), delivery_id="u", now=NOW
    )
    assert reading.action == "z" * 100
    assert checked(reading) is reading


def test_a_branch_longer_than_events_hold_is_refused() -> None:
    ref = "refs/heads/" + "b" * 256
    with pytest.raises(InvalidPayload) as caught:
        _read("push", _push([sha("a")], after=sha("a"), ref=ref))
    assert "$.ref" in caught.value.detail
    gitlab = {"ref": ref, "after": sha("a"), "project": {"path_with_namespace": "acme/app"}}
    with pytest.raises(InvalidPayload):
        read_gitlab("Push Hook", json.dumps(gitlab).encode(), delivery_id="u", now=NOW)
    # The longest branch an event holds is read.
    longest = _read("push", _push([sha("a")], after=sha("a"), ref=ref[:-1]))
    assert checked(longest).events[0].branch == "b" * 255  # type: ignore[attr-defined,union-attr]


def test_a_pull_number_beyond_what_is_kept_is_refused() -> None:
    """Numbers are kept as Postgres integers: a larger one was dead-lettered."""
    huge = json.loads(_pull("opened"))
    huge["pull_request"]["number"] = 2**31
    with pytest.raises(InvalidPayload) as caught:
        _read("pull_request", json.dumps(huge).encode())
    assert "$.pull_request.number" in caught.value.detail
    check = {
        "action": "rerequested",
        "check_run": {
            "name": CHECK_NAME,
            "head_sha": sha("h"),
            "pull_requests": [{"number": 2**40}],
        },
        "repository": {"full_name": "acme/app"},
    }
    with pytest.raises(InvalidPayload):
        _read("check_run", json.dumps(check).encode())
    merge = {
        "project": {"path_with_namespace": "acme/app"},
        "object_attributes": {"iid": 2**31, "state": "opened", "last_commit": {"id": sha("b")}},
    }
    with pytest.raises(InvalidPayload):
        read_gitlab("Merge Request Hook", json.dumps(merge).encode(), delivery_id="u", now=NOW)
    huge["pull_request"]["number"] = 2**31 - 1
    assert _read("pull_request", json.dumps(huge).encode()).outcome == "recorded"  # type: ignore[attr-defined]


def test_nul_characters_are_never_published() -> None:
    """Postgres text cannot hold U+0000: the projections refused such events."""
    body = json.loads(_pull("opened"))
    body["pull_request"]["title"] = "fix\u0000"
    with pytest.raises(InvalidPayload) as caught:
        checked(_read("pull_request", json.dumps(body).encode()))  # type: ignore[arg-type]
    assert "NUL" in caught.value.detail
    ignored_reading = _read("issues", json.dumps({"action": "op\u0000en"}).encode())
    assert ignored_reading.action == "op\ufffden"  # type: ignore[attr-defined]


def test_checked_refuses_an_event_that_would_not_decode() -> None:
    bad = CommitPushed(
        repo="acme/app",
        commit=sha("a"),
        branch="b" * 300,
        source="github",
        head=True,
        pushed_at=NOW,
    )
    with pytest.raises(InvalidPayload) as caught:
        checked(Reading(outcome="recorded", repo="acme/app", events=(bad,)))
    assert "commit.pushed" in caught.value.detail and "$.branch" in caught.value.detail


# ---- rendering ----------------------------------------------------------------------------
def _view(blockers: list[Blocker], **kw: object) -> render.PostedDecision:
    return render.PostedDecision(
        repo="acme/app",
        commit=sha("c"),
        decision="NO_SHIP" if blockers else "SHIP",
        blockers=tuple(blockers),
        blocker_total=len(blockers),
        revision=3,
        policy_version=2,
        evaluated_at=NOW,
        **kw,  # type: ignore[arg-type]
    )


def test_check_run_and_comment_of_a_decision() -> None:
    blocked = _view([Blocker(code="vulnerability", message="CVE-1 in x (HIGH)", ref="f-1")])
    run = render.check_run(blocked)
    assert (run.name, run.conclusion, run.status, run.output.title) == (
        CHECK_NAME,
        "failure",
        "completed",
        "NO_SHIP: 1 blocker",
    )
    assert "| vulnerability | f-1 | CVE-1 in x (HIGH) |" in run.output.summary
    body = render.comment_body(blocked)
    assert body.startswith(render.MARKER + "\n### ⛔ Gatehouse release gate: NO_SHIP")
    assert "decision revision 3 · policy version 2" in body
    ship = render.check_run(_view([]))
    assert ship.conclusion == "success" and ship.output.title == "SHIP"
    undecided = render.comment_body(render.undecided("acme/app", sha("c")))
    assert "no decision recorded yet" in undecided and "no_evidence" in undecided


def test_long_lists_are_cut() -> None:
    many = [Blocker(code="vulnerability", message=f"m{i}", ref=f"f-{i:03}") for i in range(120)]
    body = render.comment_body(_view(many))
    assert body.count("| vulnerability |") == render.LISTED_MAX
    assert "… and 70 more." in body and "NO_SHIP: 120 blockers" in body


@given(
    st.lists(
        st.builds(
            Blocker,
            code=st.sampled_from(["vulnerability", "forbidden_license", "no_evidence"]),
            message=st.text(max_size=400),
            ref=st.one_of(st.none(), st.text(max_size=80)),
        ),
        max_size=60,
    )
)
def test_comment_rendering_properties(blockers: list[Blocker]) -> None:
    view = _view(blockers)
    body = render.comment_body(view)
    # Deterministic, one marker (blocker text cannot forge it), one table row per blocker.
    assert body == render.comment_body(view)
    assert body.count(render.MARKER) == 1 and render.is_gatehouse_comment(body)
    rows = [line for line in body.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == (min(len(blockers), render.LISTED_MAX) + 1 if blockers else 0)
    assert len(body) < 65536


# ---- rate limits --------------------------------------------------------------------------
def test_rate_limit_headers() -> None:
    assert rate_limit_wait(200, {"x-ratelimit-remaining": "0"}, now=0) is None
    assert rate_limit_wait(429, {"retry-after": "3"}, now=0) == 3.0
    assert rate_limit_wait(403, {"retry-after": "2"}, now=0) == 2.0
    assert (
        rate_limit_wait(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "110"}, now=100)
        == 10.0
    )
    assert (
        rate_limit_wait(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "90"}, now=100)
        == 0.0
    )
    assert rate_limit_wait(429, {}, now=0) == 60.0
    # A 403 that is not about limits (no permission) is not waited out.
    assert rate_limit_wait(403, {"x-ratelimit-remaining": "4999"}, now=0) is None


# ---- the forwarded body -------------------------------------------------------------------
def test_inflate_is_bounded() -> None:
    body = b'{"zen": "x"}'
    assert inflate(zlib.compress(body), max_bytes=len(body)) == body
    bomb = zlib.compress(b"0" * 10_000_000)  # ~10 KB that would inflate to 10 MB
    with pytest.raises(PayloadTooLarge):
        inflate(bomb, max_bytes=1_000_000)
    with pytest.raises(BadTransport):
        inflate(b"not zlib", max_bytes=100)
