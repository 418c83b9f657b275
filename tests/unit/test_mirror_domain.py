"""The mirrors' pure rules: which commits a fetch announces, their ids, the remote's
default branch, and how a status reads."""

from __future__ import annotations

from services.signature_verifier.mirrors.domain.announce import announcement_id, new_commits
from services.signature_verifier.mirrors.domain.view import fetch_status
from services.signature_verifier.mirrors.git import remote_default_branch
from services.signature_verifier.mirrors.store import NEVER_FETCHED, StatusRow

CHAIN = ["e", "d", "c", "b", "a"]  # newest first


def test_first_fetch_and_force_push_announce_only_the_head() -> None:
    assert new_commits(CHAIN, old_head=None, old_is_ancestor=False) == ["e"]
    assert new_commits(CHAIN, old_head="x", old_is_ancestor=False) == ["e"]


def test_new_commits_since_the_old_head_in_push_order() -> None:
    assert new_commits(CHAIN, old_head="b", old_is_ancestor=True) == ["c", "d", "e"]
    assert new_commits(CHAIN, old_head="e", old_is_ancestor=True) == []
    assert new_commits([], old_head=None, old_is_ancestor=False) == []


def test_announcements_are_capped_to_the_newest() -> None:
    chain = [f"c{i}" for i in range(300, 0, -1)]
    assert new_commits(chain, old_head="c1", old_is_ancestor=True, cap=100) == [
        f"c{i}" for i in range(201, 301)
    ]
    # The old head merged in beside the first-parent line: the chain up to the cap.
    assert new_commits(CHAIN, old_head="z", old_is_ancestor=True, cap=2) == ["d", "e"]


def test_announcement_ids_are_stable_and_distinct() -> None:
    one = announcement_id(repo="Acme/W", branch="main", old_head="a", new_head="e", commit="c")
    assert one == announcement_id(
        repo="acme/w", branch="main", old_head="a", new_head="e", commit="c"
    )
    assert one != announcement_id(
        repo="acme/w", branch="main", old_head=None, new_head="e", commit="c"
    )


def test_the_remote_default_branch() -> None:
    refs = {"HEAD": "1", "refs/heads/dev": "1", "refs/heads/main": "2"}
    assert remote_default_branch(refs, "refs/heads/dev") == "dev"
    assert remote_default_branch(refs, None) == "dev"
    assert remote_default_branch({**refs, "refs/heads/main": "1"}, None) == "main"
    assert remote_default_branch({"refs/heads/zeta": "3", "refs/heads/alpha": "4"}, None) == "alpha"
    assert remote_default_branch({}, None) is None


def test_a_waiting_fetch_reads_queued_unless_one_runs() -> None:
    assert fetch_status(NEVER_FETCHED, queued=False).state == "never_fetched"
    assert fetch_status(NEVER_FETCHED, queued=True).state == "queued"
    running = StatusRow(
        **{**NEVER_FETCHED.__dict__, "state": "fetching", "progress": {"total_objects": 9}}
    )
    status = fetch_status(running, queued=True)
    assert status.state == "fetching" and status.progress is not None
    assert status.progress.total_objects == 9 and status.progress.received_objects == 0
