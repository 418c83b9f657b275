"""The release gate's bench figures (g) and (h) from synthetic numbers (pure)."""

from __future__ import annotations

from tests.bench.gate_bench import latency_figure, read_figure


def _round(who: str, rps: float, p99: float, errors: int = 0) -> dict[str, object]:
    return {"who": who, "rps": rps, "p50_ms": p99 / 2, "p99_ms": p99, "requests": 1000,
            "errors": errors, "statuses": {"200": 1000}}  # fmt: skip


def test_read_figure_needs_the_baseline_rate_and_a_20ms_p99() -> None:
    rounds = [_round("baseline", 1000, 9), _round("gateway", 1100, 12)]
    figure = read_figure(rounds, connections=32)
    assert figure.status == "measured" and figure.ratio == 1.1 and figure.passed
    slow = read_figure([_round("baseline", 1000, 9), _round("gateway", 900, 25)], connections=32)
    assert slow.passed is False
    assert [t.passed for t in slow.targets] == [False, False, True]
    broken = read_figure(
        [_round("baseline", 1000, 9), {"who": "gateway", "statuses": {"503": 9}}], connections=32
    )
    assert broken.status == "not_measured" and "503" in broken.reason


def test_latency_figure_bounds_both_p99s_at_250ms() -> None:
    ok = latency_figure([0.05, 0.08], [0.02, 0.04])
    assert ok.passed and ok.subject["scan_p99_ms"] <= 80 and ok.subject["samples"] == 2
    late = latency_figure([0.05, 0.4], [0.02, 0.04])
    assert late.passed is False
    assert latency_figure([], []).status == "not_measured"
