"""A decision as GitHub shows it: a check run (conclusion and output) and the body of the
one Gatehouse comment on a pull request.

The comment starts with :data:`MARKER`, which is how an existing Gatehouse comment is
recognised; text from blockers is escaped so that it can neither forge the marker nor
break the table. Output is a pure function of the decision: the same decision renders the
same bytes, so an unchanged comment is not edited again.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import msgspec

from contracts.events.releases import Blocker, Decision
from services.release_decision.scm.domain.github import CHECK_NAME

MARKER = "<!-- gatehouse-decision -->"
# Blockers listed in full; the rest are counted (GitHub caps a comment at 65536 chars).
LISTED_MAX = 50
CELL_MAX = 300


class PostedDecision(msgspec.Struct, frozen=True, kw_only=True):
    """What is posted for a commit: its decision (revision 0: none recorded yet)."""

    repo: str
    commit: str
    decision: Decision
    blockers: tuple[Blocker, ...] = ()
    blocker_total: int = 0
    revision: int = 0
    policy_version: int = 0
    evaluated_at: dt.datetime | None = None


class CheckRunOutput(msgspec.Struct, frozen=True, kw_only=True):
    title: str
    summary: str


class CheckRun(msgspec.Struct, frozen=True, kw_only=True):
    """The body of ``POST /repos/{owner}/{repo}/check-runs`` (and of its PATCH)."""

    name: str
    head_sha: str
    status: str
    conclusion: str
    output: CheckRunOutput
    external_id: str


def undecided(repo: str, commit: str) -> PostedDecision:
    """A commit with no recorded decision: it may not ship, there is no evidence yet."""
    return PostedDecision(
        repo=repo,
        commit=commit,
        decision="NO_SHIP",
        blockers=(Blocker(code="no_evidence", message="No SBOM scan of this commit", ref="sbom"),),
        blocker_total=1,
    )


def _escape(text: str) -> str:
    text = " ".join(text.split())[:CELL_MAX]
    for plain, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|")):
        text = text.replace(plain, escaped)
    return text.replace("`", "'")


def headline(view: PostedDecision) -> str:
    if view.decision == "SHIP":
        return "SHIP"
    total = max(view.blocker_total, len(view.blockers))
    return f"NO_SHIP: {total} blocker{'s' if total != 1 else ''}"


def _table(view: PostedDecision) -> list[str]:
    if not view.blockers:
        return ["No blockers."]
    lines = ["| Blocker | Ref | Details |", "| --- | --- | --- |"]
    for blocker in view.blockers[:LISTED_MAX]:
        lines.append(
            f"| {_escape(blocker.code)} | {_escape(blocker.ref or '')} | "
            f"{_escape(blocker.message)} |"
        )
    total = max(view.blocker_total, len(view.blockers))
    if total > LISTED_MAX:
        lines.append("")
        lines.append(f"… and {total - LISTED_MAX} more.")
    return lines


def _facts(view: PostedDecision) -> str:
    parts = [f"Commit `{view.commit[:12]}`"]
    if view.revision:
        parts.append(f"decision revision {view.revision}")
        parts.append(f"policy version {view.policy_version}")
    else:
        parts.append("no decision recorded yet")
    if view.evaluated_at is not None:
        parts.append(f"evaluated {view.evaluated_at.astimezone(dt.UTC).isoformat()}")
    return " · ".join(parts)


def comment_body(view: PostedDecision) -> str:
    icon = "✅" if view.decision == "SHIP" else "⛔"
    lines = [
        MARKER,
        f"### {icon} Gatehouse release gate: {headline(view)}",
        "",
        _facts(view),
        "",
        *_table(view),
        "",
    ]
    return "\n".join(lines)


def body_digest(body: str) -> str:
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def check_run(view: PostedDecision) -> CheckRun:
    summary = "\n".join([_facts(view), "", *_table(view), ""])
    return CheckRun(
        name=CHECK_NAME,
        head_sha=view.commit,
        status="completed",
        conclusion="success" if view.decision == "SHIP" else "failure",
        output=CheckRunOutput(title=headline(view), summary=summary),
        external_id=f"{view.repo}@{view.commit}#r{view.revision}",
    )


def is_gatehouse_comment(body: str | None) -> bool:
    return bool(body) and str(body).startswith(MARKER)
