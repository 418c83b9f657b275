"""(p) upload -> scanned -> downloadable in a ``quarantine_new`` repository (see
``tests.bench.registry_bench``)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid

import msgspec
import nats
from nats.aio.msg import Msg

from contracts.envelope import UnknownEventType, decode_event
from contracts.events.registry import ArtifactQuarantineReleased, ArtifactScanned
from shared.bus import Bus
from shared.settings import load_settings
from tests.bench import report
from tests.bench.harness import (
    BENCH_STREAM,
    BOOTSTRAP_TOKEN,
    HarnessError,
    Infra,
)
from tests.bench.registry_common import (
    QUARANTINE_TITLE,
    SCAN_WAIT_SECONDS,
    RegistryParameters,
    Stack,
    quarantine_targets,
)
from tests.bench.scan_bench import load_advisories
from tests.bench.wheels import WheelSpec, wheel_bytes


# ---- (p) upload -> scanned -> downloadable ----------------------------------------------------
def upload_form(spec: WheelSpec, content: bytes) -> tuple[bytes, str]:
    """The legacy upload form as twine posts it."""
    boundary = uuid.uuid4().hex
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": spec.name,
        "version": spec.version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "metadata_version": "2.1",
        "sha256_digest": hashlib.sha256(content).hexdigest(),
    }
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{spec.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def basic_auth(token: str) -> str:
    return "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()


class Releases:
    """``artifact.scanned`` and ``artifact.quarantine-released`` as they pass on the bus
    (a plain subscription: the bench only listens)."""

    def __init__(self) -> None:
        self.scanned: dict[str, str] = {}
        self._released: dict[str, asyncio.Event] = {}

    def released(self, artifact_id: str) -> asyncio.Event:
        return self._released.setdefault(artifact_id, asyncio.Event())

    async def on_message(self, msg: Msg) -> None:
        try:
            payload = decode_event(msg.data, sequence=0).payload
        except (msgspec.DecodeError, msgspec.ValidationError, UnknownEventType):
            return
        if isinstance(payload, ArtifactScanned):
            self.scanned[payload.id] = payload.verdict
        elif isinstance(payload, ArtifactQuarantineReleased):
            self.released(payload.id).set()


async def _released_sample(
    s: Stack, releases: Releases, url: str, spec: WheelSpec, *, wait: float
) -> float:
    """Seconds from the upload's start to the first 200 on its file URL."""
    content = wheel_bytes(spec)
    body, content_type = upload_form(spec, content)
    headers = {"Content-Type": content_type, "Authorization": basic_auth(BOOTSTRAP_TOKEN)}
    started = time.monotonic()
    async with s.http.post(f"{url}/", data=body, headers=headers) as r:
        answer = await r.json(content_type=None)
        if r.status != 200:
            raise HarnessError(f"the upload of {spec.filename} answered {r.status}: {answer}")
    artifact_id = str(answer["id"])
    if not answer.get("quarantined", False):
        raise HarnessError(f"{spec.filename} was not quarantined on upload: {answer}")
    try:
        await asyncio.wait_for(releases.released(artifact_id).wait(), timeout=wait)
    except TimeoutError:
        verdict = releases.scanned.get(artifact_id)
        if verdict is None:
            raise HarnessError(
                f"no artifact.scanned nor artifact.quarantine-released for {spec.filename} "
                f"within {wait:g}s of its upload to a quarantine_new repository: scan on upload "
                "is not in this build (branch scanup), so nothing releases the file"
            ) from None
        raise HarnessError(
            f"{spec.filename} was scanned ({verdict}) but not released within {wait:g}s"
        ) from None
    sha256 = str(answer["digest"]).removeprefix("sha256:")
    file_url = f"{url}/files/{sha256}/{spec.filename}"
    deadline = started + wait
    while True:
        async with s.http.get(file_url) as r:
            await r.read()
            if r.status == 200:
                return time.monotonic() - started
            if r.status != 451 or time.monotonic() > deadline:
                raise HarnessError(f"{file_url} answered {r.status} after its release")
        await asyncio.sleep(0.002)


async def quarantine_figure(s: Stack, infra: Infra, registry: RegistryParameters) -> report.Figure:
    slug = await s.new_repository("pypi", quarantine_new=True)
    url = s.pypi_url(slug)
    releases = Releases()
    settings = load_settings({}, nats_url=infra.nats_url, stream_name=BENCH_STREAM, service="bench")
    bus = await Bus.connect(settings, name="gatehouse-bench-registry")
    try:
        # A scan on upload looks the package up in the vulnerability database: not an empty one.
        print(
            f"  (p) importing the OSV advisories ({registry.advisories} synthetic, and the "
            "real ones when ../shared/data/osv is there) …",
            flush=True,
        )
        loaded = await load_advisories(bus, registry.advisories)
    finally:
        await bus.close()
    nc = await nats.connect(infra.nats_url, name="gatehouse-bench-registry")
    try:
        await nc.subscribe("artifact.>", cb=releases.on_message)
        await nc.flush()
        print("  (p) warming up (is there a scan on upload?) …", flush=True)
        run = uuid.uuid4().hex[:6]
        for n in range(3):
            spec = WheelSpec(name=f"gh-bench-q{run}-warm-{n}", version="1.0.0")
            await _released_sample(s, releases, url, spec, wait=SCAN_WAIT_SECONDS)
        samples = []
        for n in range(registry.uploads):
            spec = WheelSpec(name=f"gh-bench-q{run}-{n:04d}", version="1.0.0")
            samples.append(await _released_sample(s, releases, url, spec, wait=SCAN_WAIT_SECONDS))
    finally:
        await nc.close()
    summary = report.summarize_latencies(samples)
    print(
        f"  (p) {summary.count} uploads: p50 {summary.p50_ms:.0f} ms, p99 {summary.p99_ms:.0f} ms",
        flush=True,
    )
    return report.measured(
        "quarantine_release",
        QUARANTINE_TITLE,
        subject=msgspec.structs.asdict(summary),
        targets=quarantine_targets(summary.p99_ms),
        context={
            "uploads": len(samples),
            "upload": "multipart POST of a small wheel (the form twine posts), one at a time",
            "clock": "upload's first byte -> artifact.quarantine-released on the bus -> "
            "first 200 on the file URL (time.monotonic)",
            "advisories_loaded": {"real": loaded["real"], "synthetic": loaded["synthetic"]},
        },
    )
