"""Reading uploaded distributions: metadata that must agree with the file name, corrupt
archives, zip bombs, PEP 770 SBOMs; each attack built here and refused with its code."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from services.gateway.packages.domain.archive import (
    ArchiveLimits,
    inspect_distribution,
    parse_core_metadata,
)
from services.gateway.packages.domain.errors import (
    ArchiveTooExpanded,
    CorruptArchive,
    InvalidDistribution,
    MetadataMismatch,
)
from services.gateway.packages.domain.filenames import parse_dist_filename
from shared.errors import GatehouseError

LIMITS = ArchiveLimits()


def metadata(name: str, version: str, requires_python: str | None = None) -> bytes:
    lines = ["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}"]
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    return ("\n".join(lines) + "\n\nA description.\n").encode()


def write_wheel(
    folder: Path,
    filename: str,
    *,
    meta: bytes | None,
    dist_info: str | None = None,
    extra: list[tuple[str, bytes]] | None = None,
) -> Path:
    stem = filename.removesuffix(".whl").split("-")
    dist_info = dist_info or f"{stem[0]}-{stem[1]}.dist-info"
    path = folder / filename
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{stem[0]}/__init__.py", b"VALUE = 1\n")
        if meta is not None:
            archive.writestr(f"{dist_info}/METADATA", meta)
        archive.writestr(f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\n")
        for name, data in extra or []:
            archive.writestr(name, data)
    return path


def inspect(path: Path, limits: ArchiveLimits = LIMITS):  # type: ignore[no-untyped-def]
    return inspect_distribution(path, parse_dist_filename(path.name), limits)


def refused(path: Path, error: type[GatehouseError], limits: ArchiveLimits = LIMITS) -> str:
    with pytest.raises(error) as caught:
        inspect(path, limits)
    assert caught.value.status == 400
    return caught.value.detail


def test_a_wheel_reads_its_metadata(tmp_path: Path) -> None:
    meta = metadata("Demo.Pkg", "1.0", ">=3.9,<4")
    path = write_wheel(tmp_path, "demo_pkg-1.0-py3-none-any.whl", meta=meta)
    found = inspect(path)
    assert found.metadata.name == "Demo.Pkg"
    assert found.metadata.version == "1.0"
    assert found.metadata.requires_python == ">=3.9,<4"
    assert found.metadata_file == meta  # served as is (PEP 658)
    assert found.sboms == ()


def test_pep770_sboms_are_extracted(tmp_path: Path) -> None:
    sbom = b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}'
    path = write_wheel(
        tmp_path,
        "demo-1.0-py3-none-any.whl",
        meta=metadata("demo", "1.0"),
        extra=[("demo-1.0.dist-info/sboms/bom.cdx.json", sbom)],
    )
    found = inspect(path)
    assert [(s.path, s.data) for s in found.sboms] == [
        ("demo-1.0.dist-info/sboms/bom.cdx.json", sbom)
    ]


def test_too_many_or_too_large_sboms_are_refused(tmp_path: Path) -> None:
    extra = [(f"demo-1.0.dist-info/sboms/{i}.json", b"{}") for i in range(3)]
    path = write_wheel(
        tmp_path, "demo-1.0-py3-none-any.whl", meta=metadata("demo", "1.0"), extra=extra
    )
    refused(path, ArchiveTooExpanded, ArchiveLimits(max_sboms=2))
    refused(path, ArchiveTooExpanded, ArchiveLimits(max_sbom_bytes=1))


@pytest.mark.parametrize(
    ("meta", "field"),
    [
        (metadata("other", "1.0"), "Name"),
        (metadata("demo", "1.1"), "Version"),
    ],
)
def test_metadata_must_agree_with_the_file_name(tmp_path: Path, meta: bytes, field: str) -> None:
    path = write_wheel(
        tmp_path, "demo-1.0-py3-none-any.whl", meta=meta, dist_info="demo-1.0.dist-info"
    )
    detail = refused(path, MetadataMismatch)
    assert field in detail


def test_equal_spellings_agree(tmp_path: Path) -> None:
    path = write_wheel(
        tmp_path, "demo_pkg-1.0-py3-none-any.whl", meta=metadata("demo.pkg", "1.0.0")
    )
    assert inspect(path).metadata.version == "1.0.0"


def test_a_wheel_without_metadata_is_refused(tmp_path: Path) -> None:
    path = write_wheel(tmp_path, "demo-1.0-py3-none-any.whl", meta=None)
    assert "METADATA" in refused(path, InvalidDistribution)


def test_invalid_requires_python_is_refused(tmp_path: Path) -> None:
    path = write_wheel(tmp_path, "demo-1.0-py3-none-any.whl", meta=metadata("demo", "1.0", "~~3"))
    assert "Requires-Python" in refused(path, InvalidDistribution)


def test_a_corrupt_zip_is_refused(tmp_path: Path) -> None:
    good = write_wheel(tmp_path, "demo-1.0-py3-none-any.whl", meta=metadata("demo", "1.0"))
    data = good.read_bytes()
    truncated = tmp_path / "trunc" / "demo-1.0-py3-none-any.whl"
    truncated.parent.mkdir()
    truncated.write_bytes(data[: len(data) // 2])
    refused(truncated, CorruptArchive)
    garbage = tmp_path / "garbage" / "demo-1.0-py3-none-any.whl"
    garbage.parent.mkdir()
    garbage.write_bytes(b"not a zip at all" * 10)
    refused(garbage, CorruptArchive)


def test_a_flipped_byte_in_any_entry_is_found(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    payload = bytes(range(256)) * 64
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("demo-1.0.dist-info/METADATA", metadata("demo", "1.0"))
        archive.writestr("demo/data.bin", payload)
    data = bytearray(path.read_bytes())
    at = data.index(payload[:64]) + 100
    data[at] ^= 0xFF  # the CRC no longer matches
    path.write_bytes(bytes(data))
    assert "data.bin" in refused(path, CorruptArchive)


def test_a_zip_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("demo-1.0.dist-info/METADATA", metadata("demo", "1.0"))
        archive.writestr("demo/zeros.bin", b"\0" * (20 << 20))  # 20 MiB of zeros: ~1000:1
    assert "expands more than" in refused(path, ArchiveTooExpanded)
    assert "more than 4096 bytes" in refused(
        path, ArchiveTooExpanded, ArchiveLimits(max_expanded_bytes=4096)
    )


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    extra = [(f"demo/f{i}.py", b"") for i in range(20)]
    path = write_wheel(
        tmp_path, "demo-1.0-py3-none-any.whl", meta=metadata("demo", "1.0"), extra=extra
    )
    assert "entries" in refused(path, ArchiveTooExpanded, ArchiveLimits(max_entries=10))


def test_a_size_field_that_lies_buys_nothing(tmp_path: Path) -> None:
    """An entry whose central directory claims fewer bytes than it expands to."""
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("demo-1.0.dist-info/METADATA", metadata("demo", "1.0"))
        archive.writestr("demo/big.txt", b"x" * 100_000)
    data = bytearray(path.read_bytes())
    central = data.rindex(b"PK\x01\x02")  # the last central directory entry: demo/big.txt
    data[central + 24 : central + 28] = (1000).to_bytes(4, "little")  # uncompressed size
    path.write_bytes(bytes(data))
    with pytest.raises((ArchiveTooExpanded, CorruptArchive)):
        inspect(path)


def test_overlapping_entries_are_refused(tmp_path: Path) -> None:
    """Two central directory entries pointing at one local entry (the "better zip bomb")."""
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("demo-1.0.dist-info/METADATA", metadata("demo", "1.0"))
        archive.writestr("demo/a.txt", b"a" * 1000)
        archive.writestr("demo/b.txt", b"b" * 1000)
    data = bytearray(path.read_bytes())
    entries = [i for i in range(len(data)) if data.startswith(b"PK\x01\x02", i)]
    a_offset = data[entries[1] + 42 : entries[1] + 46]
    data[entries[2] + 42 : entries[2] + 46] = a_offset  # b's data is a's
    path.write_bytes(bytes(data))
    assert "overlap" in refused(path, ArchiveTooExpanded)


def test_unsafe_entry_names_are_refused(tmp_path: Path) -> None:
    path = write_wheel(
        tmp_path,
        "demo-1.0-py3-none-any.whl",
        meta=metadata("demo", "1.0"),
        extra=[("../../etc/evil", b"x")],
    )
    assert "unsafe entry name" in refused(path, CorruptArchive)


def write_sdist(folder: Path, filename: str, members: dict[str, bytes]) -> Path:
    path = folder / filename
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_a_tar_gz_sdist_reads_its_pkg_info(tmp_path: Path) -> None:
    path = write_sdist(
        tmp_path,
        "demo_pkg-1.0.tar.gz",
        {
            "demo_pkg-1.0/PKG-INFO": metadata("demo-pkg", "1.0", ">=3.10"),
            "demo_pkg-1.0/demo_pkg/__init__.py": b"",
            "demo_pkg-1.0/src/x.egg-info/PKG-INFO": metadata("x", "9"),  # not the top one
        },
    )
    found = inspect(path)
    assert (found.metadata.name, found.metadata.requires_python) == ("demo-pkg", ">=3.10")
    assert found.metadata_file is None


def test_sdist_problems(tmp_path: Path) -> None:
    mismatch = write_sdist(
        tmp_path, "demo-1.0.tar.gz", {"demo-1.0/PKG-INFO": metadata("demo", "2.0")}
    )
    refused(mismatch, MetadataMismatch)
    (tmp_path / "none").mkdir()
    missing = write_sdist(tmp_path / "none", "demo-1.0.tar.gz", {"demo-1.0/setup.py": b""})
    refused(missing, InvalidDistribution)
    (tmp_path / "bad").mkdir()
    corrupt = tmp_path / "bad" / "demo-1.0.tar.gz"
    corrupt.write_bytes(mismatch.read_bytes()[:-30])
    refused(corrupt, CorruptArchive)
    (tmp_path / "bomb").mkdir()
    bomb = write_sdist(
        tmp_path / "bomb",
        "demo-1.0.tar.gz",
        {"demo-1.0/PKG-INFO": metadata("demo", "1.0"), "demo-1.0/zeros": b"\0" * (8 << 20)},
    )
    refused(bomb, ArchiveTooExpanded)


def test_a_zip_sdist(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("demo-1.0/PKG-INFO", metadata("Demo", "1.0"))
    assert inspect(path).metadata.name == "Demo"


def test_core_metadata_needs_name_and_version() -> None:
    with pytest.raises(InvalidDistribution):
        parse_core_metadata(b"Metadata-Version: 2.1\nName: x\n", where="METADATA")
