"""The artifact blob store's pure parts: its settings (fail fast, secrets hidden), digests,
byte ranges and the S3 XML it reads and writes."""

from __future__ import annotations

import pytest

from shared.artifact_blobs import InvalidDigest, sha256_hex
from shared.artifact_blobs.base import check_range
from shared.artifact_blobs.s3 import _complete_document, _xml_text
from shared.settings import SettingsError, load_settings

HEX = "ab" * 32
S3_ENV = {
    "GATEHOUSE_ARTIFACT_STORE": "s3",
    "GATEHOUSE_S3_ENDPOINT_URL": "https://s3.eu-central-1.amazonaws.com",
    "GATEHOUSE_S3_BUCKET": "artifacts",
    "GATEHOUSE_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "GATEHOUSE_S3_SECRET_ACCESS_KEY": "s3cr3t-value-never-shown",
}


def test_the_defaults_store_files_in_the_data_dir() -> None:
    settings = load_settings({})
    assert settings.artifact_store == "filesystem"
    assert settings.artifact_dir == ""
    assert settings.artifact_max_upload_bytes == 5 * 1024**3
    assert settings.s3_region == "us-east-1"
    assert settings.s3_multipart_part_bytes == 64 * 1024**2


def test_a_complete_s3_configuration_loads() -> None:
    settings = load_settings(S3_ENV)
    assert settings.artifact_store == "s3" and settings.s3_bucket == "artifacts"


@pytest.mark.parametrize(
    "missing",
    [
        "GATEHOUSE_S3_ENDPOINT_URL",
        "GATEHOUSE_S3_BUCKET",
        "GATEHOUSE_S3_ACCESS_KEY_ID",
        "GATEHOUSE_S3_SECRET_ACCESS_KEY",
    ],
)
def test_an_incomplete_s3_configuration_fails_naming_what_is_missing(missing: str) -> None:
    env = {k: v for k, v in S3_ENV.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        load_settings(env)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEHOUSE_S3_ENDPOINT_URL", "s3.amazonaws.com"),
        ("GATEHOUSE_S3_MULTIPART_PART_BYTES", str(1024 * 1024)),
        ("GATEHOUSE_ARTIFACT_STORE", "ftp"),
        ("GATEHOUSE_ARTIFACT_MAX_UPLOAD_BYTES", "0"),
    ],
)
def test_bad_values_fail_at_start_up(variable: str, value: str) -> None:
    with pytest.raises(SettingsError):
        load_settings({**S3_ENV, variable: value})


def test_secrets_are_hidden_from_repr() -> None:
    settings = load_settings(S3_ENV, nats_password="nats-pw-value", github_token="ghp_token_value")
    shown = repr(settings) + str(settings)
    for secret in ("s3cr3t-value-never-shown", "nats-pw-value", "ghp_token_value"):
        assert secret not in shown
    assert "s3_secret_access_key=***" in shown
    assert "AKIAEXAMPLE" in shown, "not a secret"
    assert "github_webhook_secret=''" in shown, "an empty secret says it is empty"


@pytest.mark.parametrize(
    "spelling", [HEX, "sha256:" + HEX, "SHA256:" + HEX.upper(), f"  sha256:{HEX}\n"]
)
def test_digests_in_either_spelling(spelling: str) -> None:
    assert sha256_hex(spelling) == HEX


@pytest.mark.parametrize(
    "bad", ["", "sha256:", HEX[:-1], HEX + "0", "sha512:" + HEX, "../" + HEX[3:], HEX[:-1] + "g"]
)
def test_anything_else_is_not_a_digest(bad: str) -> None:
    with pytest.raises(InvalidDigest) as raised:
        sha256_hex(bad)
    assert raised.value.status == 400


def test_byte_ranges() -> None:
    check_range(0, None)
    check_range(5, 5)
    for start, end in [(-1, None), (5, 4)]:
        with pytest.raises(ValueError):
            check_range(start, end)


def test_s3_xml_is_read_whatever_its_namespace() -> None:
    initiated = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Bucket>b</Bucket><Key>k</Key><UploadId>abc+/=</UploadId>"
        b"</InitiateMultipartUploadResult>"
    )
    assert _xml_text(initiated, "UploadId") == "abc+/="
    assert _xml_text(b"<Error><Code>NoSuchKey</Code></Error>", "Code") == "NoSuchKey"
    assert _xml_text(b"not xml", "Code") is None
    assert _xml_text(b"<Error/>", "Code") is None


def test_the_complete_document_lists_parts_in_order() -> None:
    assert _complete_document(['"a"', '"b"']) == (
        b'<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"a"</ETag></Part>'
        b'<Part><PartNumber>2</PartNumber><ETag>"b"</ETag></Part></CompleteMultipartUpload>'
    )
