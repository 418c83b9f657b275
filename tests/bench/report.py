"""Pure arithmetic of the benchmark: percentiles, ratios, targets, the report and its summary.

Nothing here measures or touches I/O, so the smoke test can check it on synthetic numbers.
Speed is always judged as a RATIO of the subject to a baseline measured in the same run on the
same machine, because the machine is shared and noisy; absolute numbers are context only.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

REPORT_SCHEMA = "gatehouse-bench/1"

Op = Literal[">=", "<="]
Status = Literal["measured", "not_measured"]


class LatencySummary(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """One pass/fail condition: ``actual <op> threshold`` (``actual`` None: not measured)."""

    what: str
    op: Op
    threshold: float
    unit: str
    actual: float | None
    passed: bool | None


class Figure(msgspec.Struct, kw_only=True):
    key: str
    title: str
    status: Status
    reason: str = ""
    # What is compared: the subject's and the baseline's headline numbers (medians of rounds).
    subject: dict[str, Any] = {}
    baseline: dict[str, Any] | None = None
    baseline_description: str = ""
    ratio: float | None = None
    ratio_meaning: str = ""
    targets: list[Target] = []
    passed: bool | None = None
    rounds: list[dict[str, Any]] = []
    context: dict[str, Any] = {}


class Report(msgspec.Struct, kw_only=True):
    schema: str
    environment: dict[str, Any]
    parameters: dict[str, Any]
    figures: list[Figure]
    passed: bool
    measured_all: bool


# ---- statistics ------------------------------------------------------------------------------
def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's
    default), so p50 of an even count is the mean of the two middle values."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def summarize_latencies(seconds: Sequence[float]) -> LatencySummary:
    """Latency samples in seconds → a summary in milliseconds."""
    if not seconds:
        raise ValueError("no latency samples")
    ms = [s * 1000.0 for s in seconds]
    return LatencySummary(
        count=len(ms),
        p50_ms=round(percentile(ms, 50), 3),
        p90_ms=round(percentile(ms, 90), 3),
        p99_ms=round(percentile(ms, 99), 3),
        max_ms=round(max(ms), 3),
        mean_ms=round(statistics.fmean(ms), 3),
    )


def rate(count: int, elapsed_seconds: float) -> float:
    if elapsed_seconds <= 0:
        raise ValueError("elapsed time must be positive")
    return count / elapsed_seconds


def ratio(subject: float, baseline: float) -> float:
    if baseline <= 0:
        raise ValueError("baseline must be positive")
    return subject / baseline


def paired_ratio(subject_rounds: Sequence[float], baseline_rounds: Sequence[float]) -> float:
    """Median of per-round ratios. Rounds are interleaved (B, S, B, S, …), so pairing each
    subject round with the baseline round next to it cancels slow drifts of machine load."""
    if not subject_rounds or len(subject_rounds) != len(baseline_rounds):
        raise ValueError("need the same, non-zero number of subject and baseline rounds")
    return statistics.median(
        ratio(s, b) for s, b in zip(subject_rounds, baseline_rounds, strict=True)
    )


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


# ---- targets and figures ---------------------------------------------------------------------
def check(what: str, *, op: Op, threshold: float, actual: float | None, unit: str = "") -> Target:
    if actual is None:
        passed = None
    elif op == ">=":
        passed = actual >= threshold
    else:
        passed = actual <= threshold
    return Target(
        what=what,
        op=op,
        threshold=threshold,
        unit=unit,
        actual=None if actual is None else round(actual, 4),
        passed=passed,
    )


def verdict(targets: Sequence[Target]) -> bool | None:
    """All targets met → True; any missed → False; nothing measurable → None."""
    results = [t.passed for t in targets]
    if any(r is False for r in results):
        return False
    if results and all(r is True for r in results):
        return True
    return None


def measured(
    key: str,
    title: str,
    *,
    subject: dict[str, Any],
    targets: list[Target],
    baseline: dict[str, Any] | None = None,
    baseline_description: str = "",
    ratio_value: float | None = None,
    ratio_meaning: str = "",
    rounds: list[dict[str, Any]] | None = None,
    context: dict[str, Any] | None = None,
) -> Figure:
    return Figure(
        key=key,
        title=title,
        status="measured",
        subject=subject,
        baseline=baseline,
        baseline_description=baseline_description,
        ratio=None if ratio_value is None else round(ratio_value, 4),
        ratio_meaning=ratio_meaning,
        targets=targets,
        passed=verdict(targets),
        rounds=rounds or [],
        context=context or {},
    )


def not_measured(key: str, title: str, *, reason: str, targets: list[Target]) -> Figure:
    """A figure that could not be measured says why; it is never faked and never passes."""
    unmeasured = [msgspec.structs.replace(t, actual=None, passed=None) for t in targets]
    return Figure(
        key=key, title=title, status="not_measured", reason=reason, targets=unmeasured, passed=None
    )


def build_report(
    figures: list[Figure], *, environment: dict[str, Any], parameters: dict[str, Any]
) -> Report:
    measured_all = all(f.status == "measured" for f in figures)
    passed = measured_all and all(f.passed is True for f in figures)
    return Report(
        schema=REPORT_SCHEMA,
        environment=environment,
        parameters=parameters,
        figures=figures,
        passed=passed,
        measured_all=measured_all,
    )


def encode_report(report: Report) -> bytes:
    return msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n"


# ---- the human summary -----------------------------------------------------------------------
def _mark(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def _format_target(target: Target) -> str:
    actual = "-" if target.actual is None else f"{target.actual:g}{target.unit}"
    return (
        f"    [{_mark(target.passed)}] {target.what}: {actual} "
        f"(target {target.op} {target.threshold:g}{target.unit})"
    )


def _format_numbers(label: str, numbers: dict[str, Any] | None) -> str:
    if not numbers:
        return ""
    shown = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in numbers.items()
        if not isinstance(v, (dict, list))
    )
    return f"    {label}: {shown}"


def render_summary(report: Report) -> str:
    env = report.environment
    lines = [
        f"Gatehouse benchmark ({env.get('date', '?')}, {env.get('cpu_count', '?')} CPUs, "
        f"Python {env.get('python', '?')}, load avg at start {env.get('loadavg_start', '?')})",
        "",
    ]
    for figure in report.figures:
        lines.append(f"[{_mark(figure.passed)}] {figure.title}")
        if figure.status == "not_measured":
            reason = figure.reason.replace("\n", "\n      ")
            lines.append(f"    not measured: {reason}")
        else:
            numbers = [("subject ", figure.subject), ("baseline", figure.baseline)]
            lines.extend(_format_numbers(label, n) for label, n in numbers if n)
            if figure.ratio is not None:
                lines.append(f"    ratio: {figure.ratio:.3f} ({figure.ratio_meaning})")
        lines.extend(_format_target(t) for t in figure.targets)
        lines.append("")
    overall = "PASS" if report.passed else ("FAIL" if report.measured_all else "INCOMPLETE")
    lines.append(f"overall: {overall}")
    return "\n".join(lines)
