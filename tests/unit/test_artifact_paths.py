"""Artifact paths: every traversal spelling is refused with invalid_artifact_path; plain
relative paths pass unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.artifact_paths import (
    MAX_PATH_LENGTH,
    InvalidArtifactPath,
    check_artifact_path,
    check_filename,
    decode_url_path,
)


@pytest.mark.parametrize(
    "path",
    [
        "tool.tar.gz",
        "tools/linux/amd64/tool-1.2.3.tar.gz",
        "a b/c d.txt",
        "café/naïve.bin",
        "x..y/..z",  # dots inside a name are not traversal
        ".hidden/.config",
    ],
)
def test_plain_relative_paths_pass(path: str) -> None:
    assert check_artifact_path(path) == path


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "empty"),
        ("../etc/passwd", "dots only"),
        ("a/../../b", "dots only"),
        ("a/./b", "dots only"),
        ("..", "dots only"),
        ("...", "dots only"),
        ("a/\uff0e\uff0e/b", "dots only"),  # fullwidth dots fold to ".."
        ("/etc/passwd", "absolute"),
        ("C:/Windows/system32", "absolute"),
        ("c:evil", "absolute"),
        ("a\\..\\b", "backslash"),
        ("a\x00b", "NUL"),
        ("a\nb", "control character"),
        ("a\x7fb", "control character"),
        ("evil\u202etxt.exe", "control character"),  # right-to-left override
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("%2e%2e/x", "percent-escape"),  # double-encoded: left after the URL's decoding
        ("a/%2F/b", "percent-escape"),
        (" a/b", "whitespace"),
        ("a/b ", "whitespace"),
        ("x" * (MAX_PATH_LENGTH + 1), "longer than"),
        ("x" * 256, "segment longer"),
        ("/".join(["d"] * 40), "segments"),
    ],
)
def test_unsafe_paths_are_refused_with_the_rule(path: str, why: str) -> None:
    with pytest.raises(InvalidArtifactPath) as caught:
        check_artifact_path(path)
    assert caught.value.code == "invalid_artifact_path"
    assert caught.value.status == 400
    assert why in caught.value.detail


def test_a_file_name_is_one_segment() -> None:
    assert check_filename("demo-1.0-py3-none-any.whl") == "demo-1.0-py3-none-any.whl"
    with pytest.raises(InvalidArtifactPath, match="cannot contain '/'"):
        check_filename("dir/demo-1.0.tar.gz")


def test_url_decoding_happens_once_and_must_be_utf8() -> None:
    assert decode_url_path("%2e%2e") == ".."
    assert decode_url_path("%252e%252e") == "%2e%2e"
    assert decode_url_path("caf%C3%A9") == "café"
    with pytest.raises(InvalidArtifactPath, match="not UTF-8"):
        decode_url_path("bad%FF")


_SEGMENT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Zs")),
    min_size=1,
    max_size=20,
).filter(lambda s: "/" not in s and "\\" not in s and "%" not in s and set(s) != {"."})


@given(st.lists(_SEGMENT, min_size=1, max_size=8))
def test_accepted_paths_never_hold_a_traversal_segment(segments: list[str]) -> None:
    path = "/".join(segments)
    try:
        checked = check_artifact_path(path)
    except InvalidArtifactPath:
        return  # refused is always safe
    assert checked == path
    parts = checked.split("/")
    assert all(p and p not in (".", "..") for p in parts)
    assert not checked.startswith("/")
    assert "\x00" not in checked


@given(st.text(max_size=60))
def test_any_text_is_either_refused_or_a_clean_relative_path(text: str) -> None:
    try:
        checked = check_artifact_path(text)
    except InvalidArtifactPath:
        return
    assert ".." not in checked.split("/")
    assert "" not in checked.split("/")
    assert "\\" not in checked and "\x00" not in checked
