"""``gatehouse gate``'s pure parts: verdicts, exit codes, waiting, and the three formats."""

from __future__ import annotations

import io
import json
import urllib.error
from email.message import Message
from typing import Any

import pytest

from services.cli import build_parser
from services.gate.command import (
    OUTAGE_PAUSE_CAP_SECONDS,
    OUTAGE_RETRIES,
    REQUEST_TIMEOUT_MIN_SECONDS,
    REQUEST_TIMEOUT_SECONDS,
    GateError,
    _http_error,
    gate,
    retry_after_seconds,
)
from services.gate.verdict import Verdict, conclude, markdown, render, still_pending

SHA = "0123456789abcdef0123456789abcdef01234567"


def view(decision: str, *codes: str) -> dict[str, Any]:
    return {
        "repo": "acme/web",
        "commit": SHA,
        "decision": decision,
        "blockers": [{"code": c, "message": f"{c}, 50% sure\nreally", "ref": "r1"} for c in codes],
        "blocker_total": len(codes),
        "revision": 2,
        "policy_version": 1,
        "evaluated_at": "2026-01-01T00:00:00Z",
    }


class Script:
    """Answers (or errors) in order, on a fake clock that sleeps instantly."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.now = 0.0
        self.asked = 0
        self.timeouts: list[float] = []
        self.pauses: list[float] = []

    def ask(self, *, timeout: float) -> dict[str, Any]:
        self.asked += 1
        self.timeouts.append(timeout)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)

    def run(self, *, wait: float) -> Verdict:
        def sleep(seconds: float) -> None:
            self.pauses.append(seconds)
            self.now += seconds

        return gate(
            self,  # type: ignore[arg-type]
            wait=wait,
            interval=1.0,
            log=lambda _: None,
            clock=lambda: self.now,
            sleep=sleep,
        )


def test_exit_codes_and_pending() -> None:
    assert conclude(view("SHIP"), waited=True).exit_code == 0
    assert conclude(view("NO_SHIP", "vulnerability"), waited=True).exit_code == 1
    assert conclude(view("NO_SHIP", "evidence_pending"), waited=False).exit_code == 1
    assert conclude(view("NO_SHIP", "evidence_pending"), waited=True).outcome == "timeout"
    assert still_pending(view("NO_SHIP", "no_evidence", "evidence_pending"))
    assert not still_pending(view("NO_SHIP", "evidence_pending", "vulnerability"))
    assert not still_pending(view("SHIP"))


def test_waits_while_pending_then_answers() -> None:
    script = Script(
        view("NO_SHIP", "no_evidence"),
        view("NO_SHIP", "evidence_pending"),
        view("NO_SHIP", "vulnerability"),
    )
    verdict = script.run(wait=10)
    assert (verdict.outcome, script.asked) == ("NO_SHIP", 3)


def test_times_out_when_evidence_never_comes_and_retries_transient_errors() -> None:
    script = Script(view("NO_SHIP", "evidence_pending"))
    verdict = script.run(wait=5)
    assert verdict.exit_code == 2 and "evidence_pending" in verdict.message
    assert 5 <= script.asked <= 7
    flaky = Script(GateError("503", retryable=True), view("SHIP"))
    assert flaky.run(wait=5).exit_code == 0
    refused = Script(GateError("HTTP 404 repo_not_found", retryable=False), view("SHIP"))
    verdict = refused.run(wait=5)
    assert (verdict.exit_code, refused.asked) == (2, 1)
    assert Script(GateError("503", retryable=True)).run(wait=0).exit_code == 2


def test_one_question_without_wait_gets_the_full_request_timeout() -> None:
    """The default (no --wait) used to allow one second, too little for a CI runner far
    from the gateway (TLS handshake included)."""
    once = Script(view("SHIP"))
    assert once.run(wait=0).exit_code == 0
    assert once.timeouts == [REQUEST_TIMEOUT_SECONDS]
    waiting = Script(view("NO_SHIP", "evidence_pending"))
    waiting.run(wait=30)
    assert waiting.timeouts[0] == REQUEST_TIMEOUT_SECONDS
    assert min(waiting.timeouts) >= REQUEST_TIMEOUT_MIN_SECONDS


def test_head_not_seen_yet_is_waited_for_an_unknown_repo_is_not() -> None:
    def refusal(code: str) -> urllib.error.HTTPError:
        body = json.dumps({"status": 404, "code": code, "detail": "x"}).encode()
        return urllib.error.HTTPError("http://g", 404, "Not Found", Message(), io.BytesIO(body))

    head = _http_error(refusal("head_unknown"))
    assert head.retryable and "head_unknown" in str(head)
    assert not _http_error(refusal("repo_not_found")).retryable
    assert Script(head, view("SHIP")).run(wait=5).exit_code == 0


def test_formats() -> None:
    blocked = conclude(view("NO_SHIP", "vulnerability", "forbidden_license"), waited=False)
    text = render(blocked, "text")
    assert text[0].startswith(f"NO_SHIP acme/web@{SHA}") and len(text) == 3
    github = [line for line in render(blocked, "github") if line.startswith("::")]
    assert github == [
        "::error title=Gatehouse NO_SHIP%3A vulnerability::vulnerability: vulnerability, "
        "50%25 sure%0Areally [r1]",
        "::error title=Gatehouse NO_SHIP%3A forbidden_license::forbidden_license: "
        "forbidden_license, 50%25 sure%0Areally [r1]",
    ]
    shipped = render(conclude(view("SHIP"), waited=False), "github")
    assert shipped[-1].startswith("::notice title=Gatehouse%3A SHIP::")
    document = json.loads(render(blocked, "json")[0])
    assert document["outcome"] == "NO_SHIP" and document["exit_code"] == 1
    assert document["decision"]["blockers"][0]["code"] == "vulnerability"
    failed = Verdict(outcome="error", message="HTTP 401 invalid_token: no", problem={"a": 1})
    assert json.loads(render(failed, "json")[0])["problem"] == {"a": 1}
    assert render(failed, "github")[-1] == (
        "::error title=Gatehouse gate error::HTTP 401 invalid_token: no"
    )


def test_step_summary_markdown() -> None:
    blocked = conclude(view("NO_SHIP", "vulnerability"), waited=False)
    blocked.view["blockers"][0]["message"] = "a | b\nc"  # type: ignore[index]
    text = markdown(blocked)
    assert text.startswith("### Gatehouse release gate: ⛔ NO_SHIP")
    assert "| vulnerability | a \\| b c | r1 |" in text
    assert "timed out" in markdown(conclude(view("NO_SHIP", "no_evidence"), waited=True))


@pytest.mark.parametrize(
    "argv",
    [
        ["--repo", "nope", "--commit", SHA],
        ["--repo", "a/b", "--commit", "xyz"],
        ["--repo", "a/b", "--commit", SHA, "--wait", "-1"],
        ["--repo", "a/b", "--commit", SHA, "--format", "xml"],
        ["--commit", SHA],
        ["--repo", "a/b", "--commit", SHA, "--url", "gatehouse.example.com"],
        ["--repo", "a/b", "--commit", SHA, "--wait", "60", "--interval", "0"],
        ["--repo", "a/b", "--commit", SHA, "--url", "ftp://gatehouse.example.com"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["gate", "--url", "http://x", "--token", "t", *argv])
    assert exited.value.code == 2
    assert "gatehouse gate" in capsys.readouterr().err


def unavailable(retry_after: str | None = "1") -> urllib.error.HTTPError:
    body = json.dumps({"status": 503, "code": "database_unavailable", "detail": "x"}).encode()
    headers = Message()
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return urllib.error.HTTPError("http://g", 503, "Service Unavailable", headers, io.BytesIO(body))


def test_an_outage_without_wait_is_asked_again_a_bounded_number_of_times() -> None:
    """A database restart answers 503 for about a second: a gate without --wait must not
    fail the CI job for it (it did: 503 was final without --wait)."""
    outage = _http_error(unavailable())
    assert outage.outage and outage.retry_after == 1.0
    brief = Script(outage, view("SHIP"))
    assert (brief.run(wait=0).exit_code, brief.asked) == (0, 2)
    assert brief.pauses == [1.0]
    lasting = Script(outage)
    verdict = lasting.run(wait=0)
    assert (verdict.exit_code, lasting.asked) == (2, 1 + OUTAGE_RETRIES)
    assert "database_unavailable" in verdict.message
    # Not an outage: an unknown head without --wait is not asked again.
    head = Script(GateError("HTTP 404 head_unknown", retryable=True))
    assert (head.run(wait=0).exit_code, head.asked) == (2, 1)


def test_retry_after_is_honoured_while_waiting_and_capped_after() -> None:
    slow = Script(_http_error(unavailable("7")), view("SHIP"))
    assert slow.run(wait=30).exit_code == 0
    assert slow.pauses == [7.0]
    # Past the end of --wait, an outage is still retried, each pause capped.
    late = Script(_http_error(unavailable("120")), view("SHIP"))
    assert late.run(wait=5).exit_code == 0
    assert late.pauses == [OUTAGE_PAUSE_CAP_SECONDS]
    without = Script(_http_error(unavailable(None)), view("SHIP"))
    assert without.run(wait=5).exit_code == 0
    assert without.pauses == [1.0]  # the interval


def test_retry_after_seconds_or_http_date() -> None:
    import datetime as dt

    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("3", now=now) == 3.0
    assert retry_after_seconds("Thu, 01 Jan 2026 12:00:10 GMT", now=now) == 10.0
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert retry_after_seconds("soon", now=now) is None
    assert retry_after_seconds(None, now=now) is None
