"""The commits API's pure parts: path and revision arguments, git log's walk and history
simplification, message and verification views."""

from __future__ import annotations

import datetime as dt

import pytest

from services.signature_verifier.commits.domain.arguments import repo_path, revision
from services.signature_verifier.commits.domain.errors import InvalidPath
from services.signature_verifier.commits.domain.history import Node, PathState, simplify, walk
from services.signature_verifier.commits.domain.views import (
    Signed,
    VerificationRow,
    author_matches,
    decode,
    split_message,
    verification,
    when,
)


@pytest.mark.parametrize(
    ("raw", "path"),
    [("src", "src"), ("src/", "src"), ("a/b.c", "a/b.c"), ("...", "..."), ("a..b/c", "a..b/c")],
)
def test_repo_paths(raw: str, path: str) -> None:
    assert repo_path(raw) == path


@pytest.mark.parametrize(
    "raw", ["..", "../x", "a/../b", "./a", "a/.", "/etc", "a//b", "a\\b", "a\x00b", "a\nb", "/", ""]
)
def test_repo_paths_refused(raw: str) -> None:
    with pytest.raises(InvalidPath) as refused:
        repo_path(raw)
    assert refused.value.status == 422 and refused.value.code == "invalid_path"


def test_revisions() -> None:
    assert revision("HEAD").ref_names == ("HEAD",)
    spec = revision("Main")
    assert spec.ref_names == ("refs/heads/Main", "refs/tags/Main", "refs/Main")
    assert spec.hex_prefix is None
    assert revision("DEADbeef").hex_prefix == "deadbeef"
    assert revision("abc").hex_prefix is None  # shorter than git's shortest abbreviation
    assert revision("refs/tags/v1").ref_names == ("refs/tags/v1",)


def test_simplify_follows_git() -> None:
    blob: PathState = ("b1", 0o100644)
    other: PathState = ("b2", 0o100644)
    assert simplify(blob, []) == (True, ())  # root with the path
    assert simplify(None, []) == (False, ())  # root without it
    assert simplify(blob, [blob]) == (False, (0,))
    assert simplify(blob, [other]) == (True, (0,))
    assert simplify(blob, [("b1", 0o100755)]) == (True, (0,))  # a mode change is a change
    assert simplify(None, [None]) == (False, (0,))
    # A merge treesame to its second parent follows only that parent, hidden.
    assert simplify(blob, [other, blob]) == (False, (1,))
    assert simplify(blob, [blob, blob]) == (False, (0,))
    assert simplify(blob, [other, None]) == (True, (0, 1))


def graph(*edges: tuple[str, int, tuple[str, ...]]) -> dict[str, Node[str]]:
    return {name: Node(id=name, commit_time=t, parents=ps) for name, t, ps in edges}


def test_walk_orders_by_commit_time_first_queued_first() -> None:
    nodes = graph(
        ("m", 10, ("a", "b")),
        ("a", 5, ("r",)),
        ("b", 5, ("r",)),  # same time as a: a was queued first
        ("r", 1, ()),
    )
    assert [n.id for n in walk("m", load=nodes.__getitem__)] == ["m", "a", "b", "r"]
    skewed = graph(("h", 10, ("p",)), ("p", 20, ("q",)), ("q", 15, ()))
    assert [n.id for n in walk("h", load=skewed.__getitem__)] == ["h", "p", "q"]


def test_walk_since_stops_and_until_skips() -> None:
    nodes = graph(("c", 30, ("b",)), ("b", 20, ("a",)), ("a", 10, ()))
    assert [n.id for n in walk("c", load=nodes.__getitem__, until=25)] == ["b", "a"]
    assert [n.id for n in walk("c", load=nodes.__getitem__, since=20)] == ["c", "b"]
    # git stops at a commit older than since: what lies behind it is not reached.
    skewed = graph(("c", 30, ("old",)), ("old", 5, ("new",)), ("new", 40, ()))
    assert [n.id for n in walk("c", load=skewed.__getitem__, since=20)] == ["c"]


def test_walk_prunes_the_side_a_merge_did_not_take() -> None:
    nodes = graph(
        ("merge", 50, ("main", "side")),
        ("main", 40, ("base",)),
        ("side", 45, ("base",)),
        ("base", 10, ()),
    )
    content = {"merge": ("x", 1), "main": ("x", 1), "side": ("y", 1), "base": ("x", 1)}
    shown = walk("merge", load=nodes.__getitem__, path_state=content.__getitem__)
    assert [n.id for n in shown] == ["base"]  # merge/main treesame, side never reached
    loaded: list[str] = []

    def load(name: str) -> Node[str]:
        loaded.append(name)
        return nodes[name]

    lazy = walk("merge", load=load)
    assert next(lazy).id == "merge" and loaded == ["merge", "main", "side"]


def test_messages_and_texts() -> None:
    assert split_message("Subject\n\nBody line\n\nmore\n") == ("Subject", "Body line\n\nmore")
    assert split_message("Only a subject\n") == ("Only a subject", "")
    assert split_message("Subject\r\n\r\nbody") == ("Subject", "body")
    assert decode("Caf\xe9".encode("latin-1"), "ISO-8859-1") == "Café"
    assert decode(b"bad \xff", None) == "bad \ufffd"
    assert decode(b"plain", "no-such-encoding") == "plain"
    assert author_matches("ADA", "Ada Lovelace", "a@x") and author_matches("X.ORG", "n", "a@x.org")
    assert not author_matches("bob", "Ada", "ada@x")


def test_times_keep_their_offset() -> None:
    moment = when(1704110400, 330)
    assert moment.isoformat() == "2024-01-01T17:30:00+05:30"
    assert when(1704110400, 60 * 24).utcoffset() == dt.timedelta(0)  # impossible offset: UTC
    assert when(10**20, 0).year == 9999


def test_verification_views() -> None:
    signed = Signed(signature="-----BEGIN PGP SIGNATURE-----\n...", payload=b"tree 1\n\nmsg\n")
    stamped = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    none = verification(None, None)
    assert (none.verified, none.reason, none.signature, none.payload, none.verified_at) == (
        False,
        "unsigned",
        None,
        None,
        None,
    )
    pending = verification(signed, None)
    assert pending.reason == "unsigned" and pending.payload == "tree 1\n\nmsg\n"
    assert pending.signature == signed.signature and pending.verified_at is None
    valid = verification(
        signed, VerificationRow(verified=True, reason="valid", verified_at=stamped)
    )
    assert valid.verified and valid.verified_at == stamped
    revoked = VerificationRow(verified=False, reason="unsigned", verified_at=stamped)
    assert verification(signed, revoked).verified_at is None
    unknown = VerificationRow(verified=False, reason="unknown_key", verified_at=stamped)
    assert verification(signed, unknown).reason == "unknown_key"
    # Only `valid` is verified, whatever the row says.
    lying = VerificationRow(verified=True, reason="invalid", verified_at=stamped)
    assert verification(signed, lying).verified is False
