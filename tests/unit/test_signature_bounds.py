"""Oversized signature blocks: never parsed, never shipped whole in a listing."""

from __future__ import annotations

from services.signature_verifier.commits.domain.views import (
    Signed,
    VerificationRow,
    verification,
)
from services.signature_verifier.domain.commits import split_commit
from services.signature_verifier.domain.model import MAX_SIGNATURE_CHARS
from services.signature_verifier.domain.verify import KeyRing

HEADERS = (
    b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
    b"author A <a@example.com> 1700000000 +0000\n"
    b"committer A <a@example.com> 1700000000 +0000\n"
)


def signed_commit(block: str) -> bytes:
    lines = block.split("\n")
    header = b"gpgsig " + "\n ".join(lines).encode() + b"\n"
    return HEADERS + header + b"\nmessage\n"


def armoured(kind: str, body_chars: int) -> str:
    rows = ["A" * 64] * (body_chars // 64)
    return "\n".join(
        [f"-----BEGIN {kind} SIGNATURE-----", "", *rows, f"-----END {kind} SIGNATURE-----"]
    )


def test_a_10_mib_block_is_malformed_without_parsing() -> None:
    for kind in ("PGP", "SSH"):
        signed = split_commit(signed_commit(armoured(kind, 10 * 1024 * 1024)))
        assert signed.signature is not None and len(signed.signature) > MAX_SIGNATURE_CHARS
        assert KeyRing().verify(signed).reason == "malformed_signature"


def test_a_block_under_the_bound_is_still_judged() -> None:
    signed = split_commit(signed_commit(armoured("PGP", 1024)))
    # Garbage base64 of an ordinary size: parsed, and found malformed by the parser.
    assert KeyRing().verify(signed).reason == "malformed_signature"
    signed = split_commit(signed_commit(armoured("FOO", 1024)))
    assert KeyRing().verify(signed).reason == "unknown_signature_type"


def test_the_listing_leaves_oversized_blocks_out_keeping_the_reason() -> None:
    row = VerificationRow(verified=False, reason="malformed_signature", verified_at=None)
    big = Signed(signature="x" * (MAX_SIGNATURE_CHARS + 1), payload=b"p")
    view = verification(big, row)
    assert view.signature is None and view.payload is None
    assert view.reason == "malformed_signature" and view.verified is False
    huge_payload = Signed(signature="s", payload=b"p" * (MAX_SIGNATURE_CHARS + 1))
    assert verification(huge_payload, None).payload is None
    small = Signed(signature="s" * MAX_SIGNATURE_CHARS, payload=b"p")
    assert verification(small, row).signature == small.signature
