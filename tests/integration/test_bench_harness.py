"""The benchmark's arithmetic and report, on synthetic numbers (no servers), so `make bench`
cannot silently rot between the runs that actually measure."""

from __future__ import annotations

import msgspec
import pytest

from contracts.envelope import decode_event
from tests.bench import report
from tests.bench.__main__ import parse_args
from tests.bench.scenarios import (
    AUDIT_RATIO_MIN,
    READ_P99_MS_MAX,
    audit_figure,
    cpu_share,
    project_created_messages,
    read_figure,
    visibility_figure,
)


def test_percentile_interpolates_between_ranks() -> None:
    assert report.percentile([4, 1, 3, 2], 50) == 2.5
    assert report.percentile([1, 2, 3, 4], 0) == 1
    assert report.percentile([1, 2, 3, 4], 100) == 4
    assert report.percentile(list(range(1, 102)), 99) == 100
    with pytest.raises(ValueError):
        report.percentile([], 50)
    with pytest.raises(ValueError):
        report.percentile([1.0], 101)


def test_latency_summary_is_in_milliseconds() -> None:
    summary = report.summarize_latencies([0.001, 0.002, 0.003, 0.010])
    assert summary.count == 4
    assert summary.p50_ms == 2.5
    assert summary.max_ms == 10.0
    assert summary.mean_ms == 4.0


def test_paired_ratio_is_the_median_of_round_ratios() -> None:
    assert report.paired_ratio([100, 200, 300], [200, 200, 200]) == 1.0
    assert report.paired_ratio([100, 200], [200, 200]) == 0.75
    with pytest.raises(ValueError):
        report.paired_ratio([1.0], [])
    with pytest.raises(ValueError):
        report.ratio(1.0, 0.0)


def test_targets_and_verdicts() -> None:
    assert report.check("x", op=">=", threshold=0.5, actual=0.5).passed is True
    assert report.check("x", op=">=", threshold=0.5, actual=0.49).passed is False
    assert report.check("x", op="<=", threshold=25, actual=25.1).passed is False
    assert report.check("x", op="<=", threshold=25, actual=None).passed is None
    ok = report.check("a", op=">=", threshold=1, actual=2)
    bad = report.check("b", op=">=", threshold=1, actual=0)
    unknown = report.check("c", op=">=", threshold=1, actual=None)
    assert report.verdict([ok]) is True
    assert report.verdict([ok, bad]) is False
    assert report.verdict([ok, unknown]) is None
    assert report.verdict([]) is None


def _http_row(who: str, rps: float, p99: float, *, errors: int = 0) -> dict[str, object]:
    return {
        "who": who,
        "requests": int(rps * 5) + errors,
        "errors": errors,
        "statuses": {"200": int(rps * 5)},
        "seconds": 5.0,
        "rps": rps,
        "p50_ms": p99 / 3,
        "p99_ms": p99,
    }


def test_read_figure_compares_with_the_interleaved_baseline() -> None:
    rounds = [
        _http_row("baseline", 2000, 20),
        _http_row("gateway", 1200, 20),
        _http_row("gateway", 1000, 24),
        _http_row("baseline", 2000, 21),
        _http_row("baseline", 4000, 19),
        _http_row("gateway", 1000, 30),
    ]
    figure = read_figure(rounds, connections=32)
    assert figure.status == "measured"
    assert figure.ratio == 0.5  # median of 0.6, 0.5, 0.25
    assert figure.subject["rps"] == 1000
    assert figure.baseline is not None and figure.baseline["rps"] == 2000
    assert figure.subject["p99_ms"] == 24
    assert figure.passed is True
    slow = [dict(r, p99_ms=READ_P99_MS_MAX + 1) if r["who"] == "gateway" else r for r in rounds]
    assert read_figure(slow, connections=32).passed is False


def test_read_figure_fails_when_the_gateway_answers_errors() -> None:
    rounds = [_http_row("baseline", 2000, 20), _http_row("gateway", 2000, 10, errors=500)]
    figure = read_figure(rounds, connections=32)
    assert figure.passed is False
    assert [t.what for t in figure.targets if t.passed is False] == ["non-200 responses"]


def test_read_figure_without_successes_is_not_measured() -> None:
    rounds = [
        _http_row("baseline", 2000, 20),
        {
            "who": "gateway",
            "requests": 10,
            "errors": 10,
            "statuses": {"401": 10},
            "seconds": 5.0,
            "rps": 0.0,
        },
    ]
    figure = read_figure(rounds, connections=32)
    assert figure.status == "not_measured"
    assert "401" in figure.reason
    assert figure.passed is None


def test_audit_figure_ratio_against_one_by_one_publishes() -> None:
    rounds = [
        {
            "round": n,
            "publish_per_s": 2000.0,
            "publish_async_per_s": 8000.0,
            "applied_per_s": applied,
            "events_timed": 10_000,
        }
        for n, applied in enumerate([900.0, 1200.0, 1000.0], start=1)
    ]
    figure = audit_figure(rounds)
    assert figure.ratio == 0.5
    assert figure.passed is (0.5 >= AUDIT_RATIO_MIN)
    assert figure.context["pipelined_ratio"] == 0.125
    assert figure.subject["events_timed"] == 30_000


def test_visibility_figure() -> None:
    figure = visibility_figure([0.010, 0.020, 0.030], [0.005] * 3, lost=0, poll_seconds=0.002)
    assert figure.subject["p50_ms"] == 20.0
    assert figure.passed is True
    assert visibility_figure([0.010], [0.005], lost=1, poll_seconds=0.002).passed is False
    nothing = visibility_figure([], [0.005], lost=3, poll_seconds=0.002)
    assert nothing.status == "not_measured" and nothing.passed is None


def test_cpu_share() -> None:
    shares = cpu_share(
        server_before=1.0, server_after=3.0, client_before=0.0, client_after=1.0, elapsed=2.0
    )
    assert shares == {"client_cores": 0.5, "server_cores": 1.0}
    assert "server_cores" not in cpu_share(
        server_before=None, server_after=None, client_before=0.0, client_after=1.0, elapsed=2.0
    )


def test_report_round_trips_and_summarises() -> None:
    measured = report.measured(
        "x",
        "(x) something",
        subject={"rps": 10.0},
        baseline={"rps": 20.0},
        ratio_value=0.5,
        ratio_meaning="x/y",
        targets=[report.check("ratio", op=">=", threshold=0.5, actual=0.5)],
    )
    missing = report.not_measured(
        "y",
        "(y) other",
        reason="services.audit.app cannot be imported yet",
        targets=[report.check("ratio", op=">=", threshold=0.5, actual=0.9)],
    )
    assert missing.targets[0].actual is None and missing.passed is None
    built = report.build_report(
        [measured, missing], environment={"cpu_count": 2}, parameters={"duration": 5.0}
    )
    assert built.passed is False and built.measured_all is False
    decoded = msgspec.json.decode(report.encode_report(built))
    assert decoded["schema"] == report.REPORT_SCHEMA
    assert [f["status"] for f in decoded["figures"]] == ["measured", "not_measured"]
    summary = report.render_summary(built)
    assert "[PASS] (x) something" in summary
    assert "not measured: services.audit.app cannot be imported yet" in summary
    assert "overall: INCOMPLETE" in summary
    complete = report.build_report([measured], environment={}, parameters={})
    assert complete.passed is True
    assert "overall: PASS" in report.render_summary(complete)


def test_bench_events_are_valid_catalog_events() -> None:
    subject, payload, msg_id = project_created_messages()
    event = decode_event(payload, sequence=1)
    assert subject == event.type == "project.created"
    assert event.id == msg_id
    assert project_created_messages()[2] != msg_id


def test_command_line_defaults() -> None:
    args = parse_args([])
    assert args.rounds >= 2 and args.duration > 0
    assert args.out.name == "bench-report.json"
