"""Upload archives: every attack is built in the test and refused with its stable code."""

from __future__ import annotations

import io
import stat
import struct
import zipfile

import pytest

from services.scanner.domain.archive import ArchiveLimits, SafeZip, normalise_entry_path
from services.scanner.domain.errors import ArchiveError
from services.scanner.domain.lockfiles import ZipTree, scan_tree


def make_zip(
    entries: list[tuple[str | zipfile.ZipInfo, bytes]], method: int = zipfile.ZIP_DEFLATED
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


def refused(data: bytes, code: str, limits: ArchiveLimits | None = None) -> ArchiveError:
    with pytest.raises(ArchiveError) as caught:
        archive = SafeZip.open(data, limits)
        for entry in archive.entries:
            archive.read(entry.path)
    assert caught.value.code == code, caught.value.detail
    return caught.value


def patch_central(data: bytes, offset: int, fmt: str, value: int, *, index: int = 0) -> bytes:
    """Rewrite a field of the index-th central directory record."""
    patched = bytearray(data)
    position = -1
    for _ in range(index + 1):
        position = patched.find(b"PK\x01\x02", position + 1)
    struct.pack_into(fmt, patched, position + offset, value)
    return bytes(patched)


def test_a_plain_archive_reads() -> None:
    data = make_zip(
        [
            ("repo/package-lock.json", b"{}"),
            ("repo/src/", b""),
            ("repo\\win\\go.mod", b"module m\n"),
        ]
    )
    archive = SafeZip.open(data)
    assert [e.path for e in archive.entries] == ["repo/package-lock.json", "repo/win/go.mod"]
    assert archive.read("repo/win/go.mod") == b"module m\n"


@pytest.mark.parametrize(
    "name",
    [
        "../evil",
        "a/../../evil",
        "/etc/passwd",
        "C:/windows/win.ini",
        "c:relative",
        "C:\\x",
        "\\\\server\\share\\x",
        "a\\..\\..\\x",
    ],
)
def test_path_traversal(name: str) -> None:
    error = refused(make_zip([(name, b"x")]), "archive_path_traversal")
    assert error.location == name
    assert error.status == 422


def test_harmless_dots_are_normalised() -> None:
    limits = ArchiveLimits()
    assert normalise_entry_path("./a/./b//c", limits) == "a/b/c"
    assert normalise_entry_path("a/", limits) is None
    assert normalise_entry_path("a/..b/c", limits) == "a/..b/c"  # "..b" is a name, not a parent


def test_long_and_deep_paths() -> None:
    # (A NUL in a name never arrives: zipfile cuts names at the first NUL byte.)
    assert refused(make_zip([("a" * 2000, b"x")]), "archive_invalid")
    assert refused(make_zip([("/".join(["d"] * 100), b"x")]), "archive_invalid")


def test_symlinks() -> None:
    link = zipfile.ZipInfo("link")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    error = refused(make_zip([(link, b"/etc/passwd")]), "archive_symlink")
    assert error.location == "link"


def test_device_files() -> None:
    device = zipfile.ZipInfo("dev")
    device.create_system = 3
    device.external_attr = (stat.S_IFCHR | 0o600) << 16
    refused(make_zip([(device, b"")]), "archive_invalid")


def test_regular_unix_files_and_windows_attributes_are_fine() -> None:
    regular = zipfile.ZipInfo("a")
    regular.create_system = 3
    regular.external_attr = (stat.S_IFREG | 0o644) << 16
    windows = zipfile.ZipInfo("b")
    windows.create_system = 0
    windows.external_attr = 0x20  # FILE_ATTRIBUTE_ARCHIVE
    assert len(SafeZip.open(make_zip([(regular, b"1"), (windows, b"2")])).entries) == 2


def test_too_many_entries() -> None:
    data = make_zip([(f"f{i}", b"x") for i in range(11)])
    error = refused(data, "archive_too_many_entries", ArchiveLimits(max_entries=10))
    assert error.status == 413


def test_total_uncompressed_size() -> None:
    data = make_zip([(f"f{i}", b"x" * 1000) for i in range(5)])
    error = refused(data, "archive_too_large", ArchiveLimits(max_total_size=4500))
    assert error.location == "f4"


def test_entry_size() -> None:
    data = make_zip([("big", b"x" * 5000)])
    refused(data, "archive_too_large", ArchiveLimits(max_entry_size=4999))


def test_compression_ratio_bomb() -> None:
    data = make_zip([("bomb.txt", b"\0" * (4 << 20))])
    assert len(data) < 10_000  # ~1000:1
    error = refused(data, "archive_bomb")
    assert "ratio" in error.detail


def test_small_files_may_compress_well() -> None:
    data = make_zip([("zeros", b"\0" * 100_000)])
    assert SafeZip.open(data).read("zeros") == b"\0" * 100_000


def test_overlapping_entries_bomb() -> None:
    """Fifield's "better zip bomb": central records that share one compressed stream."""
    data = make_zip([("a", b"\0" * 50_000), ("b", b"\0" * 50_000)])
    first_offset = struct.unpack_from("<I", data, data.find(b"PK\x01\x02") + 42)[0]
    error = refused(patch_central(data, 42, "<I", first_offset, index=1), "archive_bomb")
    assert "overlap" in error.detail


def test_declared_size_that_lies_is_caught_on_read() -> None:
    data = make_zip([("a", b"x" * 1000)])
    lying = patch_central(data, 24, "<I", 10)  # uncompressed size
    refused(lying, "archive_invalid")


def test_encrypted_entries() -> None:
    data = make_zip([("secret", b"x")])
    error = refused(patch_central(data, 8, "<H", 0x1), "archive_encrypted")
    assert error.location == "secret"


def test_unknown_compression_method() -> None:
    data = make_zip([("a", b"x")])
    refused(patch_central(data, 10, "<H", 99), "archive_invalid")


def test_duplicate_paths() -> None:
    refused(make_zip([("a/b", b"1"), ("a//b", b"2")]), "archive_invalid")


@pytest.mark.parametrize("data", [b"", b"not a zip", b"PK\x03\x04truncated"])
def test_not_a_zip(data: bytes) -> None:
    error = refused(data, "archive_invalid")
    assert error.status == 422


def test_truncated_zip() -> None:
    data = make_zip([("a", b"x" * 1000)])
    refused(data[: len(data) // 2], "archive_invalid")


def test_nested_zips_are_not_expanded() -> None:
    inner = make_zip([("go.mod", b"module m\n\nrequire a.b/c v1.0.0\n")])
    outer = make_zip([("inner.zip", inner)])
    tree = ZipTree.open(outer)
    assert list(tree.walk()) == ["inner.zip"]
    assert scan_tree(tree).components == ()


def test_limits_are_checked_before_any_read() -> None:
    """A refused archive is refused at open, so no reader sees a byte of it."""
    data = make_zip([("ok.txt", b"x"), ("../evil", b"y")])
    with pytest.raises(ArchiveError):
        ZipTree.open(data)


def test_read_budget_counts_actual_bytes() -> None:
    data = make_zip([("a", b"x" * 3000), ("b", b"x" * 3000)])
    archive = SafeZip.open(data, ArchiveLimits(max_total_size=6000))
    archive.read("a")
    archive.read("b")
    with pytest.raises(ArchiveError) as caught:
        archive.read("a")  # a second read is counted again
    assert caught.value.code == "archive_too_large"
