"""Helpers for the commits API tests (no tests here): a git history built with the git CLI
that exercises what ``git log -- <path>`` and ``git show -M -C`` do — merges (one that kept
only the first parent's side), a rename, a copy, a binary file, a mode change, a type change,
a deletion, a message in ISO-8859-1 and one that is not valid UTF-8, an SSH-signed commit
and an annotated tag — and the mirror rows the service reads."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import asyncpg

from shared.settings import Settings

START = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)


class Builder:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.tick = 0
        work.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
        full = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_COMMITTER_NAME": "Tagger",
            "GIT_COMMITTER_EMAIL": "tagger@example.org",
            **(env or {}),
        }
        done = subprocess.run(
            ["git", "-C", str(self.work), *args],
            env=full,
            input=stdin,
            capture_output=True,
            check=True,
        )
        return done.stdout.decode("utf-8", "replace")

    def write(self, name: str, content: bytes | str) -> None:
        target = self.work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)

    def commit(
        self,
        message: bytes | str,
        *,
        author: str = "Ada Lovelace <ada@example.org>",
        offset: str = "+0000",
        extra: tuple[str, ...] = (),
        config: tuple[str, ...] = (),
    ) -> str:
        """Commit everything staged, one hour after the previous commit."""
        self.tick += 1
        moment = int((START + dt.timedelta(hours=self.tick)).timestamp())
        name, email = author[:-1].split(" <")
        env = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_AUTHOR_DATE": f"{moment} {offset}",
            "GIT_COMMITTER_NAME": "Committer",
            "GIT_COMMITTER_EMAIL": "committer@example.org",
            "GIT_COMMITTER_DATE": f"{moment} +0000",
        }
        body = message.encode() if isinstance(message, str) else message
        cfg = [arg for pair in config for arg in ("-c", pair)]
        self.git(*cfg, "commit", "-q", "--allow-empty", *extra, "-F", "-", env=env, stdin=body)
        return self.git("rev-parse", "HEAD").strip()

    def commit_raw(self, message: bytes, *, author: bytes) -> str:
        """A commit object written byte for byte (``git commit`` would re-encode a message
        that is not UTF-8), staged tree on top of HEAD."""
        self.tick += 1
        moment = int((START + dt.timedelta(hours=self.tick)).timestamp())
        tree = self.git("write-tree").strip()
        parent = self.git("rev-parse", "HEAD").strip()
        raw = (
            f"tree {tree}\nparent {parent}\n".encode()
            + b"author "
            + author
            + f" {moment} +0000\n".encode()
            + f"committer Committer <committer@example.org> {moment} +0000\n\n".encode()
            + message
        )
        oid = self.git("hash-object", "-t", "commit", "-w", "--stdin", stdin=raw).strip()
        self.git("update-ref", "HEAD", oid)
        return oid

    def merge(self, branch: str, *options: str) -> str:
        self.tick += 1
        moment = int((START + dt.timedelta(hours=self.tick)).timestamp())
        env = {
            "GIT_AUTHOR_NAME": "Merger",
            "GIT_AUTHOR_EMAIL": "merger@example.org",
            "GIT_AUTHOR_DATE": f"{moment} +0000",
            "GIT_COMMITTER_NAME": "Merger",
            "GIT_COMMITTER_EMAIL": "merger@example.org",
            "GIT_COMMITTER_DATE": f"{moment} +0000",
        }
        self.git("merge", "-q", "--no-ff", *options, "-m", f"Merge {branch}", branch, env=env)
        return self.git("rev-parse", "HEAD").strip()


def build_history(work: Path) -> Builder:
    b = Builder(work)
    b.write("README.md", "hello\n")
    b.write("src/a.py", "".join(f"line {i}\n" for i in range(40)))
    b.write("docs/guide.md", "".join(f"guide {i}\n" for i in range(30)))
    b.write("bin/data.bin", bytes(range(256)) * 4)
    b.write("script.sh", "#!/bin/sh\necho hi\n")
    b.git("add", "-A")
    b.commit("Initial import\n\nThe first commit.\n")
    b.write("src/a.py", "".join(f"line {i}\n" for i in range(42)))
    b.git("add", "-A")
    b.commit("Grow a.py", author="Grace Hopper <grace@navy.example>", offset="+0530")

    b.git("checkout", "-q", "-b", "feature")
    b.git("mv", "src/a.py", "src/b.py")
    b.write("src/b.py", "".join(f"line {i}\n" for i in range(41)))
    b.write("feature.txt", "feature\n")
    b.git("add", "-A")
    b.commit("Rename a.py to b.py", author="Grace Hopper <grace@navy.example>")
    b.git("checkout", "-q", "main")
    b.write("docs/guide.md", "".join(f"guide {i}\n" for i in range(31)))
    b.git("update-index", "--chmod=+x", "script.sh")
    b.git("add", "docs/guide.md")
    b.commit("Extend the guide, make script.sh executable")
    b.merge("feature")

    # A side branch touching the guide, merged keeping main's version (-s ours): `git log --
    # docs/guide.md` prunes the side's commits.
    b.git("checkout", "-q", "-b", "side")
    b.write("docs/guide.md", "side version\n")
    b.git("add", "-A")
    b.commit("Side rewrite of the guide")
    b.git("checkout", "-q", "main")
    b.write("README.md", "hello again\n")
    b.git("add", "-A")
    b.commit("Touch the README")
    b.merge("side", "-s", "ours")

    # A copy: copy.md from guide.md while guide.md changes too (git -C finds it).
    b.write("docs/copy.md", (work / "docs/guide.md").read_text())
    b.write("docs/guide.md", "".join(f"guide {i}\n" for i in range(29)))
    b.git("add", "-A")
    b.commit("Copy the guide")
    # Type change: script.sh becomes a symlink; the binary changes.
    (work / "script.sh").unlink()
    (work / "script.sh").symlink_to("README.md")
    b.write("bin/data.bin", bytes(range(255, -1, -1)) * 4)
    b.git("add", "-A")
    b.commit("Symlink the script, flip the binary")
    (work / "docs/copy.md").unlink()
    b.git("add", "-A")
    b.commit(
        "Caf\xe9 au lait\n\nLatin-1 body \xe9\n".encode("latin-1"),
        config=("i18n.commitEncoding=ISO-8859-1",),
    )
    b.write("notes.txt", "n\n")
    b.git("add", "-A")
    b.commit_raw(b"Bad bytes \xff\xfe here\n\nbody\n", author=b"Zed <zed@example.com>")
    b.git("tag", "-a", "v1.0", "-m", "release 1.0")
    if shutil.which("ssh-keygen"):
        key = work.parent / "signing_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
            check=True,
            capture_output=True,
        )
        b.write("signed.txt", "signed\n")
        b.git("add", "-A")
        b.commit(
            "A signed commit\n",
            extra=("-S",),
            config=("gpg.format=ssh", f"user.signingkey={key}"),
        )
    b.write("src/b.py", "changed\n")
    b.git("add", "-A")
    b.commit("Last change to b.py", author="Ada Lovelace <ada@example.org>")
    return b


def mirror_into(source: Path, target: Path) -> None:
    """A bare mirror of ``source`` at ``target`` (as the fetcher would leave it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "clone", "-q", "--mirror", str(source), str(target)],
        check=True,
        capture_output=True,
        env={**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"},
    )


def git_lines(repo: Path, *args: str) -> list[str]:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env={**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"},
    )
    return [line for line in done.stdout.decode("utf-8", "replace").split("\n") if line]


async def add_mirror(
    settings: Settings, repo: str, *, default_branch: str | None = None, project_id: str = "p1"
) -> None:
    """The ``mirrors`` row the fetcher's projection would write."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO signature_verifier.mirrors (repo_key, repo, project_id, clone_url, "
            "default_branch, configured_seq) VALUES ($1, $2, $3, $4, $5, 1)",
            repo.lower(),
            repo,
            project_id,
            "file:///nowhere",
            default_branch,
        )
    finally:
        await conn.close()


async def add_verification(
    settings: Settings, repo: str, oid: str, *, reason: str, verified_at: dt.datetime | None
) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO signature_verifier.verifications (repo_key, oid, verified, reason, "
            "verified_at, event_id) VALUES ($1, $2, $3, $4, $5, 'e')",
            repo.lower(),
            oid,
            reason == "valid",
            reason,
            verified_at,
        )
    finally:
        await conn.close()


def git_bytes(repo: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env={**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"},
    ).stdout


def init_bare(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "--bare", str(target)], check=True, capture_output=True)
