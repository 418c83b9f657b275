"""Candidate versions, commit ids and environment names, parsed the way Aviator does.

A release candidate version is the release version followed by ``-rcN`` (``v1.4.0-rc2`` is
candidate 2 of release ``v1.4.0``); the suffix is required. A commit is a full SHA (40 hex
digits, or 64 for SHA-256 repositories): a short one could name a different commit later,
and decisions are kept per full commit id.
"""

from __future__ import annotations

import re

import msgspec

_CANDIDATE = re.compile(r"^(?P<release>[A-Za-z0-9][A-Za-z0-9._+-]{0,119})-rc(?P<n>[0-9]{1,6})$")
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}/[A-Za-z0-9._-]{1,100}$")
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


class InvalidCandidateVersion(ValueError):
    """Not ``<release>-rcN``: the -rcN suffix is required."""


class InvalidCommitHash(ValueError):
    """Not a full commit id: 40 (SHA-1) or 64 (SHA-256) hex digits, in any case."""


class CandidateVersion(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    release: str
    rc_number: int


def parse_candidate_version(text: str) -> CandidateVersion:
    """``v1.4.0-rc2`` → release ``v1.4.0``, candidate 2; anything without ``-rcN`` fails."""
    match = _CANDIDATE.match(text)
    if match is None:
        raise InvalidCandidateVersion(text)
    return CandidateVersion(
        version=text, release=match.group("release"), rc_number=int(match.group("n"))
    )


def normalise_commit(text: str) -> str:
    """The commit id in lower case; raises for anything but a full SHA."""
    commit = text.strip().lower()
    if _COMMIT.match(commit) is None:
        raise InvalidCommitHash(text)
    return commit


def is_repo(text: str) -> bool:
    return _REPO.match(text) is not None


def repo_in_project(repo: str, project_repos: list[str]) -> str | None:
    """The project's spelling of ``repo`` (owner/name compare case-insensitively, as on
    GitHub), or None when the project does not list it."""
    wanted = repo.lower()
    for listed in project_repos:
        if listed.lower() == wanted:
            return listed
    return None


def is_environment_name(text: str) -> bool:
    return _ENVIRONMENT.match(text) is not None
