"""What the gate concludes from the gateway's answers and how it says so (pure: no I/O).

Exit codes: 0 SHIP, 1 NO_SHIP, 2 error or timeout. The gate keeps asking while the only
blockers are missing or pending evidence (the scan of the commit has not finished, or has
not been queued yet) and ``--wait`` has time left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

SHIP, NO_SHIP, FAILED = 0, 1, 2
# Blockers that go away by themselves once the evidence arrives.
WAITABLE_CODES = frozenset({"evidence_pending", "no_evidence"})

Outcome = Literal["SHIP", "NO_SHIP", "timeout", "error"]
Format = Literal["text", "json", "github"]
FORMATS: tuple[Format, ...] = ("text", "json", "github")


def still_pending(view: dict[str, Any]) -> bool:
    blockers = view.get("blockers") or []
    return (
        view.get("decision") == "NO_SHIP"
        and bool(blockers)
        and all(b.get("code") in WAITABLE_CODES for b in blockers)
    )


@dataclass(frozen=True, kw_only=True)
class Verdict:
    outcome: Outcome
    view: dict[str, Any] | None = None
    # For errors and timeouts: what went wrong, in one line.
    message: str = ""
    problem: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        return {"SHIP": SHIP, "NO_SHIP": NO_SHIP}.get(self.outcome, FAILED)


def conclude(view: dict[str, Any], *, waited: bool) -> Verdict:
    """The verdict on the last answer: pending evidence after a ``--wait`` is a timeout."""
    if view.get("decision") == "SHIP":
        return Verdict(outcome="SHIP", view=view)
    if waited and still_pending(view):
        codes = ", ".join(sorted({b["code"] for b in view["blockers"]}))
        return Verdict(outcome="timeout", view=view, message=f"still {codes} when --wait ran out")
    return Verdict(outcome="NO_SHIP", view=view)


# ---- rendering --------------------------------------------------------------------------------
def _subject(view: dict[str, Any]) -> str:
    return f"{view.get('repo')}@{view.get('commit')}"


def _blocker_line(blocker: dict[str, Any]) -> str:
    ref = f" [{blocker['ref']}]" if blocker.get("ref") else ""
    return f"{blocker.get('code')}: {blocker.get('message')}{ref}"


def text(verdict: Verdict) -> list[str]:
    view = verdict.view
    lines: list[str] = []
    if view is not None:
        lines.append(
            f"{view.get('decision')} {_subject(view)} (revision {view.get('revision')}, "
            f"policy v{view.get('policy_version')}, evaluated {view.get('evaluated_at')})"
        )
        lines.extend(f"  - {_blocker_line(b)}" for b in view.get("blockers") or [])
        total = int(view.get("blocker_total") or 0)
        shown = len(view.get("blockers") or [])
        if total > shown:
            lines.append(f"  … and {total - shown} more")
    if verdict.outcome in ("timeout", "error"):
        lines.append(f"gatehouse gate: {verdict.outcome}: {verdict.message}")
    return lines


def _escape_data(value: str) -> str:
    """GitHub workflow-command message escaping."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def github(verdict: Verdict) -> list[str]:
    """The text lines, then one annotation per blocker (``::error``), or a notice on SHIP."""
    lines = text(verdict)
    view = verdict.view
    if verdict.outcome == "SHIP" and view is not None:
        title = _escape_property("Gatehouse: SHIP")
        lines.append(f"::notice title={title}::{_escape_data(_subject(view) + ' may ship')}")
        return lines
    for blocker in (view or {}).get("blockers") or []:
        title = _escape_property(f"Gatehouse NO_SHIP: {blocker.get('code')}")
        lines.append(f"::error title={title}::{_escape_data(_blocker_line(blocker))}")
    if verdict.outcome in ("timeout", "error"):
        title = _escape_property(f"Gatehouse gate {verdict.outcome}")
        lines.append(f"::error title={title}::{_escape_data(verdict.message)}")
    return lines


def _cell(value: Any) -> str:
    return str(value or "").replace("|", "\\|").replace("\n", " ")


def markdown(verdict: Verdict) -> str:
    """The step summary GitHub shows on the run's page (``$GITHUB_STEP_SUMMARY``)."""
    view = verdict.view or {}
    heading = {
        "SHIP": "✅ SHIP",
        "NO_SHIP": "⛔ NO_SHIP",
        "timeout": "⏳ timed out",
        "error": "⚠️ error",
    }[verdict.outcome]
    lines = [f"### Gatehouse release gate: {heading}", ""]
    if view:
        lines += [
            f"`{_subject(view)}`: revision {view.get('revision')}, policy "
            f"v{view.get('policy_version')}, evaluated {view.get('evaluated_at')}",
            "",
        ]
    blockers = view.get("blockers") or []
    if blockers:
        lines += ["| blocker | message | ref |", "|---|---|---|"]
        for b in blockers:
            cells = [_cell(b.get(key)) for key in ("code", "message", "ref")]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if verdict.message:
        lines += [verdict.message, ""]
    return "\n".join(lines)


def json_document(verdict: Verdict) -> str:
    return msgspec.json.encode(
        {
            "outcome": verdict.outcome,
            "exit_code": verdict.exit_code,
            "decision": verdict.view,
            "message": verdict.message or None,
            "problem": verdict.problem,
        }
    ).decode()


def render(verdict: Verdict, fmt: Format) -> list[str]:
    if fmt == "json":
        return [json_document(verdict)]
    if fmt == "github":
        return github(verdict)
    return text(verdict)
