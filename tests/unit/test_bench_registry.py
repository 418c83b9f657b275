"""The registry bench's pieces: its wheels are real (pip installs one), its rounds and figure
from synthetic numbers, pip's temporary folder, the streamed content."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.bench.registry_common import STREAM_CHUNK_BYTES
from tests.bench.registry_pip import pip_figure, pip_round_row, pip_tmpdir
from tests.bench.registry_stream import Content
from tests.bench.wheels import WheelSpec, bench_specs, wheel_bytes, write_wheels


def test_wheels_carry_a_record_that_matches_their_files() -> None:
    spec = WheelSpec(name="gh-bench-pkg-007", version="1.0.0")
    assert spec.filename == "gh_bench_pkg_007-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(io.BytesIO(wheel_bytes(spec))) as archive:
        info = "gh_bench_pkg_007-1.0.0.dist-info"
        record = archive.read(f"{info}/RECORD").decode()
        rows = list(csv.reader(record.splitlines()))
        assert {row[0] for row in rows} == set(archive.namelist())
        for path, digest, size in rows:
            if path.endswith("RECORD"):
                assert digest == size == ""
                continue
            data = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode() and int(size) == len(data)
        metadata = archive.read(f"{info}/METADATA").decode()
        assert "Name: gh-bench-pkg-007\n" in metadata and "Version: 1.0.0\n" in metadata
    # Different seeds, different bytes: 50 wheels are 50 blobs.
    assert wheel_bytes(spec, seed=1) != wheel_bytes(spec, seed=2)


def test_pip_installs_a_bench_wheel(tmp_path: Path) -> None:
    [path] = write_wheels(tmp_path / "wheels", bench_specs(1))
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "-q"]
    done = subprocess.run(
        [*pip, "--disable-pip-version-check", "--target", str(target), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    module = (target / "gh_bench_pkg_000" / "__init__.py").read_text()
    assert 'VERSION = "1.0.0"' in module


def _run(seconds: float, server: float | None = 0.1) -> dict[str, float | None]:
    return {"seconds": seconds, "server_cpu_s": server, "pip_cpu_s": 0.5}


def test_a_round_sums_each_contenders_two_runs() -> None:
    row = pip_round_row({"baseline": [_run(1.0), _run(1.5)], "subject": [_run(1.0), _run(1.0)]}, 50)
    assert row["baseline"]["wheels_per_second"] == 40.0
    assert row["subject"]["wheels_per_second"] == 50.0
    assert row["subject"]["runs_s"] == [1.0, 1.0] and row["subject"]["pip_cpu_s"] == 1.0
    unknown = pip_round_row({"baseline": [_run(1.0, None), _run(1.0)]}, 50)
    assert unknown["baseline"]["server_cpu_s"] is None


def test_the_pip_figure_needs_pypiservers_throughput() -> None:
    def row(ours: float, theirs: float) -> dict[str, dict[str, float]]:
        return {"subject": {"wheels_per_second": ours}, "baseline": {"wheels_per_second": theirs}}

    passing = pip_figure([row(55, 50), row(40, 50), row(60, 50)], context={})
    assert passing.status == "measured" and passing.ratio == 1.1 and passing.passed
    failing = pip_figure([row(45, 50), row(49, 50), row(60, 50)], context={})
    assert failing.passed is False
    assert pip_figure([], context={}).status == "not_measured"


def test_pips_temporary_folder() -> None:
    work = Path("/tmp/gatehouse-bench-x/registry-abc")
    assert pip_tmpdir("", work) is None
    assert pip_tmpdir("/somewhere", work) == Path("/somewhere")
    auto = pip_tmpdir("auto", work)
    assert auto is None or auto.parent == Path("/dev/shm")


def test_streamed_content_is_stamped_per_round_and_chunk() -> None:
    block = bytes(range(256)) * (STREAM_CHUNK_BYTES // 256)
    content = Content(size=2 * STREAM_CHUNK_BYTES + 10, tag=3, block=block)
    chunks = [content.chunk(offset) for offset in content.chunks()]
    assert [len(c) for c in chunks] == [STREAM_CHUNK_BYTES, STREAM_CHUNK_BYTES, 10]
    assert len(set(chunks[:2])) == 2

    async def gathered() -> bytes:
        return b"".join([chunk async for chunk in content.stream()])

    data = asyncio.run(gathered())
    assert hashlib.sha256(data).hexdigest() == content.sha256()
    other_round = Content(size=content.size, tag=4, block=block)
    assert other_round.sha256() != content.sha256()
