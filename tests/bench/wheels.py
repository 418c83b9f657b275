"""Small, valid, installable wheels written directly (no build backend: 50 of them in well
under a second), for the registry benchmark.

Each is what ``bdist_wheel`` makes of a one-module project: the module, and a
``.dist-info`` with ``METADATA`` (2.1), ``WHEEL`` (pure, ``py3-none-any``) and a
``RECORD`` listing every file with its urlsafe-base64 sha256 and size. ``pip install``
checks ``RECORD`` and the tags, so pip, twine and pypiserver all take them as real wheels
(``tests/unit/test_bench_registry.py`` installs one).
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path

# A module of about 16 KiB (compressible to a third): the size of a small pure-Python wheel.
MODULE_BYTES = 16 * 1024
_EPOCH = (2024, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class WheelSpec:
    name: str  # the distribution name as written (normalized: lower case, dashes)
    version: str

    @property
    def module(self) -> str:
        return self.name.replace("-", "_")

    @property
    def filename(self) -> str:
        return f"{self.module}-{self.version}-py3-none-any.whl"


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _module_source(spec: WheelSpec, seed: int) -> bytes:
    rng = random.Random(seed)
    payload = "".join(rng.choice("0123456789abcdef") for _ in range(MODULE_BYTES))
    lines = [payload[i : i + 64] for i in range(0, len(payload), 64)]
    text = f'"""{spec.name} {spec.version}: a Gatehouse benchmark package."""\n\n'
    text += f'VERSION = "{spec.version}"\n'
    text += "DATA = (\n" + "".join(f'    "{line}"\n' for line in lines) + ")\n"
    return text.encode()


def wheel_bytes(spec: WheelSpec, *, seed: int = 0) -> bytes:
    info = f"{spec.module}-{spec.version}.dist-info"
    files = {
        f"{spec.module}/__init__.py": _module_source(spec, seed),
        f"{info}/METADATA": (
            "Metadata-Version: 2.1\n"
            f"Name: {spec.name}\n"
            f"Version: {spec.version}\n"
            "Summary: A Gatehouse benchmark package\n"
            "Requires-Python: >=3.9\n"
        ).encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\n"
            b"Generator: gatehouse-bench\n"
            b"Root-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
        f"{info}/top_level.txt": f"{spec.module}\n".encode(),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    record += f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            entry = zipfile.ZipInfo(path, date_time=_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data)
    return buffer.getvalue()


def write_wheels(folder: Path, specs: list[WheelSpec]) -> list[Path]:
    """One wheel per spec in ``folder`` (made if missing); their paths, in ``specs``' order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, spec in enumerate(specs):
        path = folder / spec.filename
        path.write_bytes(wheel_bytes(spec, seed=n))
        paths.append(path)
    return paths


def bench_specs(
    count: int, *, prefix: str = "gh-bench-pkg", version: str = "1.0.0"
) -> list[WheelSpec]:
    return [WheelSpec(name=f"{prefix}-{n:03d}", version=version) for n in range(count)]
