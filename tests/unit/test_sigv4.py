"""SigV4 signing against AWS's own worked examples.

The S3 examples are those of "Signature Calculations for the Authorization Header:
Transferring Payload in a Single Chunk" (Amazon S3 API reference, sig-v4-header-based-auth):
access key AKIAIOSFODNN7EXAMPLE, 24 May 2013, us-east-1, bucket examplebucket. The
``get-vanilla`` pair comes from the AWS Signature Version 4 test suite (AKIDEXAMPLE,
30 Aug 2015). Each check names the intermediate value AWS documents too, so a failure says
which step went wrong.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.artifact_blobs.sigv4 import (
    EMPTY_SHA256,
    Credentials,
    amz_date,
    canonical_query,
    sign,
    sign_s3,
    uri_encode,
)

S3_EXAMPLE = Credentials(
    access_key_id="AKIAIOSFODNN7EXAMPLE",
    secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    region="us-east-1",
    service="s3",
)
S3_HOST = "examplebucket.s3.amazonaws.com"
MAY_24_2013 = datetime(2013, 5, 24, tzinfo=UTC)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_get_object_with_a_range() -> None:
    _path, _query, signed = sign_s3(
        S3_EXAMPLE,
        method="GET",
        host=S3_HOST,
        path="/test.txt",
        headers={"Range": "bytes=0-9"},
        now=MAY_24_2013,
    )
    assert signed.canonical_request == (
        "GET\n/test.txt\n\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "range:bytes=0-9\n"
        f"x-amz-content-sha256:{EMPTY_SHA256}\n"
        "x-amz-date:20130524T000000Z\n\n"
        "host;range;x-amz-content-sha256;x-amz-date\n"
        f"{EMPTY_SHA256}"
    )
    assert signed.string_to_sign == (
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    )
    assert signed.headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    assert signed.headers["x-amz-date"] == "20130524T000000Z"
    assert signed.headers["x-amz-content-sha256"] == EMPTY_SHA256
    assert signed.headers["Host"] == S3_HOST


def test_put_object_signs_the_payload_hash_and_encodes_the_key() -> None:
    payload_sha256 = _sha256("Welcome to Amazon S3.")
    assert payload_sha256 == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    path, _query, signed = sign_s3(
        S3_EXAMPLE,
        method="PUT",
        host=S3_HOST,
        path="/test$file.text",
        headers={
            "Date": "Fri, 24 May 2013 00:00:00 GMT",
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
        },
        payload_sha256=payload_sha256,
        now=MAY_24_2013,
    )
    assert path == "/test%24file.text"
    assert signed.canonical_request.splitlines()[:2] == ["PUT", "/test%24file.text"]
    assert signed.string_to_sign.endswith(
        "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"
    )
    assert signed.headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    )


def test_get_bucket_lifecycle_signs_a_bare_query_name_as_name_equals() -> None:
    _path, query, signed = sign_s3(
        S3_EXAMPLE, method="GET", host=S3_HOST, path="/", query=[("lifecycle", "")], now=MAY_24_2013
    )
    assert query == "lifecycle="
    assert signed.string_to_sign.endswith(
        "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca"
    )
    assert signed.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"


def test_list_objects_sorts_the_query() -> None:
    _path, query, signed = sign_s3(
        S3_EXAMPLE,
        method="GET",
        host=S3_HOST,
        path="/",
        query=[("prefix", "J"), ("max-keys", "2")],
        now=MAY_24_2013,
    )
    assert query == "max-keys=2&prefix=J"
    assert signed.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"


# The generic SigV4 test suite signs exactly the headers given (no x-amz-content-sha256).
SUITE = Credentials(
    access_key_id="AKIDEXAMPLE",
    secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    region="us-east-1",
    service="service",
)
SUITE_HEADERS = {"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"}


@pytest.mark.parametrize(
    ("query", "canonical_sha256", "signature"),
    [
        # get-vanilla
        (
            [],
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        # get-vanilla-query-order-key-case
        (
            [("Param2", "value2"), ("Param1", "value1")],
            None,
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
    ],
)
def test_the_generic_test_suite(
    query: list[tuple[str, str]], canonical_sha256: str | None, signature: str
) -> None:
    signed = sign(
        SUITE,
        method="GET",
        encoded_path="/",
        query=canonical_query(query),
        headers=SUITE_HEADERS,
        payload_sha256=EMPTY_SHA256,
        timestamp="20150830T123600Z",
    )
    if canonical_sha256:
        assert _sha256(signed.canonical_request) == canonical_sha256
    assert signed.signature == signature
    assert signed.headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request,"
        "SignedHeaders=host;x-amz-date,"
    )


def test_uri_encode_keeps_only_unreserved_characters() -> None:
    assert uri_encode("a-b_c.d~e", keep_slash=False) == "a-b_c.d~e"
    assert uri_encode("a b+c=d&é", keep_slash=False) == "a%20b%2Bc%3Dd%26%C3%A9"
    assert uri_encode("!'()*", keep_slash=False) == "%21%27%28%29%2A"
    assert uri_encode("a/b", keep_slash=False) == "a%2Fb"
    assert uri_encode("a/b c", keep_slash=True) == "a/b%20c"


def test_multipart_query_values_are_encoded() -> None:
    # Upload ids hold '+', '/' and '='; signed and sent in the same encoding.
    assert canonical_query([("uploadId", "a/b+c=="), ("partNumber", "2")]) == (
        "partNumber=2&uploadId=a%2Fb%2Bc%3D%3D"
    )
    assert canonical_query([("uploads", "")]) == "uploads="


def test_header_values_are_trimmed_and_spaces_collapsed() -> None:
    a = sign(
        SUITE,
        method="GET",
        encoded_path="/",
        query="",
        headers={**SUITE_HEADERS, "My-Header1": "  value1   with  spaces "},
        payload_sha256=EMPTY_SHA256,
        timestamp="20150830T123600Z",
    )
    assert "my-header1:value1 with spaces\n" in a.canonical_request


def test_the_date_is_utc_and_naive_times_are_refused() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert amz_date(datetime(2013, 5, 24, 2, 0, tzinfo=plus_two)) == "20130524T000000Z"
    with pytest.raises(ValueError):
        amz_date(datetime(2013, 5, 24))


def test_a_different_secret_or_payload_is_a_different_signature() -> None:
    def signature(credentials: Credentials, payload: str) -> str:
        return sign_s3(
            credentials,
            method="PUT",
            host=S3_HOST,
            path="/k",
            payload_sha256=payload,
            now=MAY_24_2013,
        )[2].signature

    base = signature(S3_EXAMPLE, EMPTY_SHA256)
    other_secret = Credentials("AKIAIOSFODNN7EXAMPLE", "another-secret", "us-east-1")
    assert signature(other_secret, EMPTY_SHA256) != base
    assert signature(S3_EXAMPLE, _sha256("x")) != base


def test_the_secret_never_shows_in_repr() -> None:
    assert "EXAMPLEKEY" not in repr(S3_EXAMPLE)
    assert "AKIAIOSFODNN7EXAMPLE" in repr(S3_EXAMPLE)
