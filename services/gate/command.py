"""``gatehouse gate --url URL --token TOKEN --repo owner/name --commit SHA [--wait SECONDS]
[--format text|json|github]``: ask ``GET /api/v1/releases/decision`` and exit 0 on SHIP, 1 on
NO_SHIP, 2 on error or timeout.

With ``--wait`` the gate asks again every ``--interval`` seconds while the evidence of the
commit is missing or pending (for HEAD: while no push was seen), and while the gateway is
unreachable or answers 429, 502, 503 or 504 (after the ``Retry-After`` it sends, when it
sends one). Even without ``--wait``, an unreachable gateway or one of those statuses is asked
again up to :data:`OUTAGE_RETRIES` times: a database or bus restart takes about a second and
must not fail a CI job. The token may come from ``GATEHOUSE_TOKEN`` (kept out of the process
list), the URL from ``GATEHOUSE_URL``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.utils
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import msgspec

from contracts.events.scans import Repo
from contracts.rpc.release_decision import CommitRef
from services.gate.verdict import (
    FAILED,
    FORMATS,
    Verdict,
    conclude,
    markdown,
    render,
    still_pending,
)
from shared.service import VERSION

DEFAULT_INTERVAL_SECONDS = 2.0
MIN_INTERVAL_SECONDS = 0.1
# One request never waits longer than this, whatever --wait says.
REQUEST_TIMEOUT_SECONDS = 10.0
# Near the end of --wait a request still gets this long: a CI runner far from the gateway
# needs a TLS handshake and a round trip or two.
REQUEST_TIMEOUT_MIN_SECONDS = 3.0
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# --commit HEAD before the push webhook arrived: the head is evidence still to come.
RETRYABLE_CODES = frozenset({"head_unknown"})
# An outage (unreachable, 429/502/503/504) is asked again this many times even without
# --wait (or once --wait is over), each pause at most OUTAGE_PAUSE_CAP_SECONDS.
OUTAGE_RETRIES = 3
OUTAGE_PAUSE_CAP_SECONDS = 5.0


class GateError(Exception):
    """The gateway could not give an answer; ``retryable`` when asking again may help,
    ``outage`` when the gateway or what is behind it is unavailable for a moment, and
    ``retry_after`` the seconds it asked to wait (``Retry-After``)."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        outage: bool = False,
        retry_after: float | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.outage = outage
        self.retry_after = retry_after
        self.problem = problem


def _converter(type_: Any, what: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        try:
            return str(msgspec.convert(text, type_))
        except msgspec.ValidationError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None

    return convert


def _base_url(text: str) -> str:
    """http(s) only: anything else would fail every question, and --wait would keep
    asking."""
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http(s) URL, e.g. https://gatehouse.example.com"
        )
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _interval(text: str) -> float:
    """Not below a tenth of a second: at 0 a long --wait would ask (and retry 429s) in a
    tight loop."""
    value = _seconds(text)
    if value < MIN_INTERVAL_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_INTERVAL_SECONDS:g} seconds")
    return value


def add_parser(sub: Any) -> None:
    """Registers ``gate`` on the ``gatehouse`` command's subparsers."""
    g = sub.add_parser(
        "gate",
        help="exit 0 if a commit may ship (SHIP), 1 if not, 2 on error or timeout",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument(
        "--url",
        type=_base_url,
        default=os.environ.get("GATEHOUSE_URL"),
        help="the gateway's base URL (default $GATEHOUSE_URL)",
    )
    g.add_argument(
        "--token",
        default=os.environ.get("GATEHOUSE_TOKEN"),
        help="an API token with any read role (default $GATEHOUSE_TOKEN)",
    )
    g.add_argument("--repo", required=True, type=_converter(Repo, "owner/name"))
    g.add_argument(
        "--commit",
        required=True,
        type=_converter(CommitRef, "a commit id (7-64 hex digits) or HEAD"),
    )
    g.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="keep asking this long while evidence is pending (default 0: ask once)",
    )
    g.add_argument(
        "--interval",
        type=_interval,
        default=DEFAULT_INTERVAL_SECONDS,
        metavar="SECONDS",
        help="pause between questions while waiting (default %(default)s)",
    )
    g.add_argument("--format", choices=FORMATS, default="text", help="output (default text)")
    g.set_defaults(func=run)


@dataclass(frozen=True, kw_only=True)
class Question:
    url: str
    token: str

    def ask(self, *, timeout: float) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json",
                "User-Agent": f"gatehouse-gate/{VERSION}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise _http_error(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise GateError(
                f"cannot reach {self.url}: {reason}", retryable=True, outage=True
            ) from None
        except ValueError:
            raise GateError(
                "the gateway answered something that is not JSON", retryable=False
            ) from None
        if not isinstance(body, dict) or "decision" not in body:
            raise GateError("the gateway answered without a decision", retryable=False)
        return body


def _http_error(exc: urllib.error.HTTPError) -> GateError:
    problem: dict[str, Any] | None = None
    try:
        loaded = json.loads(exc.read() or b"null")
        problem = loaded if isinstance(loaded, dict) else None
    except ValueError:
        problem = None
    code = (problem or {}).get("code", "")
    detail = (problem or {}).get("detail", exc.reason)
    message = f"HTTP {exc.code}{' ' + code if code else ''}: {detail}"
    outage = exc.code in RETRYABLE_STATUSES
    return GateError(
        message,
        retryable=outage or code in RETRYABLE_CODES,
        outage=outage,
        retry_after=retry_after_seconds(
            exc.headers.get("Retry-After"), now=dt.datetime.now(dt.UTC)
        ),
        problem=problem,
    )


def retry_after_seconds(value: str | None, *, now: dt.datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delay-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def pause_after(error: GateError, *, interval: float) -> float:
    """How long to wait before asking again after ``error``: what the gateway asked for
    (Retry-After), else the interval."""
    if error.retry_after is None:
        return interval
    return max(error.retry_after, MIN_INTERVAL_SECONDS)


def decision_url(base: str, repo: str, commit: str) -> str:
    query = urllib.parse.urlencode({"repo": repo, "commit": commit})
    return f"{base.rstrip('/')}/api/v1/releases/decision?{query}"


def request_timeout(remaining: float, *, waiting: bool) -> float:
    """How long one question may take: without --wait the one question gets the full
    time; while waiting, what is left of the wait, within bounds."""
    if not waiting:
        return REQUEST_TIMEOUT_SECONDS
    return min(REQUEST_TIMEOUT_SECONDS, max(remaining, REQUEST_TIMEOUT_MIN_SECONDS))


def gate(
    question: Question,
    *,
    wait: float,
    interval: float,
    log: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict:
    deadline = clock() + wait
    outage_retries = OUTAGE_RETRIES
    while True:
        try:
            view = question.ask(timeout=request_timeout(deadline - clock(), waiting=wait > 0))
        except GateError as exc:
            pause = pause_after(exc, interval=interval)
            if exc.retryable and clock() + pause <= deadline:
                pass  # still waiting: ask again
            elif exc.outage and outage_retries > 0:
                outage_retries -= 1
                pause = min(pause, OUTAGE_PAUSE_CAP_SECONDS)
            else:
                return Verdict(outcome="error", message=str(exc), problem=exc.problem)
            log(f"gatehouse gate: {exc}; asking again in {pause:g}s")
            sleep(pause)
            continue
        if not still_pending(view) or clock() + interval > deadline:
            return conclude(view, waited=wait > 0)
        codes = ", ".join(sorted({b["code"] for b in view["blockers"]}))
        log(f"gatehouse gate: {codes}; asking again in {interval:g}s")
        sleep(interval)


def run(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    missing = [name for name in ("url", "token") if not getattr(args, name)]
    if missing:
        what = " and ".join(f"--{m} (or $GATEHOUSE_{m.upper()})" for m in missing)
        print(f"gatehouse gate: {what} is required", file=err)
        return FAILED
    question = Question(url=decision_url(args.url, args.repo, args.commit), token=args.token)
    verdict = gate(
        question,
        wait=args.wait,
        interval=args.interval,
        log=lambda line: print(line, file=err, flush=True),
    )
    for line in render(verdict, args.format):
        print(line, file=out)
    out.flush()
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if args.format == "github" and summary:
        try:
            with open(summary, "a", encoding="utf-8") as file:
                file.write(markdown(verdict) + "\n")
        except OSError as exc:  # the verdict stands; the summary is a courtesy
            print(f"gatehouse gate: cannot write the step summary: {exc}", file=err)
    return verdict.exit_code
