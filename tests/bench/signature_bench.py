"""Commit signatures, on a signature-verifier of its own (a child process):

(i) ``signature_cold``: a synthetic repository of 5,000 commits, 1,000 of them signed by four
    keys (OpenPGP RSA 2048 and Ed25519, SSH RSA 2048 and Ed25519; 250 each), keys uploaded,
    from "mirror fetched" (``index_mirror`` called as the fetcher calls it, here from the bench
    process: the mirror registration and fetch are another part's) to every signed commit's
    row stamped in the verification cache (``commit.verified`` published and projected), vs
    ``git log --all --format='%H %G?'`` over the same repository with GnuPG (a temporary
    GNUPGHOME with the two OpenPGP public keys imported) and ``gpg.ssh.allowedSignersFile``
    for the SSH ones. Each round indexes the mirror under a new repository name, so nothing
    is cached; rounds are interleaved with the baseline; the ratio is baseline / subject.
(j) ``signature_backfill``: the same history indexed before any key is uploaded (1,000 rows
    ``unknown_key``), then the four keys uploaded: from the first upload request until the
    four keys' backfills say ``done`` with 1,000 commits re-verified (reported; the issue
    sets no bound).

    .venv/bin/python -m tests.bench.signature_bench [--rounds 3] [--commits 5000] [--signed 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import msgspec
import pygit2
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from contracts.events.identity import UserCreated, UserEmail
from contracts.rpc import signatures as rpc
from services.signature_verifier.signatures.index import index_mirror
from shared.bus import Bus
from shared.db import create_pool
from shared.logging import configure_logging
from shared.rpc import CallContext, call
from shared.settings import load_settings
from tests.bench import report
from tests.bench.harness import BENCH_STREAM, HarnessError, Infra, service_process
from tests.integration.signatures_support import pgp_key, pgp_sign, ssh_public_line, ssh_sign

COLD_TITLE = "(i) cold verification of 5,000 commits (1,000 signed) vs git log %G? with GnuPG"
BACKFILL_TITLE = "(j) key upload -> backfill of 1,000 affected commits finished"
COLD_RATIO_MIN = 1.0
EMAIL = "dev@example.com"
WAIT_SECONDS = 120.0


def cold_targets(actual: float | None = None) -> list[report.Target]:
    return [
        report.check(
            "git+gpg seconds / our seconds", op=">=", threshold=COLD_RATIO_MIN, actual=actual
        )
    ]


class Keys(msgspec.Struct, frozen=True):
    gpg: list[str]  # armoured public keys
    ssh: list[str]  # public key lines


def build_repository(path: Path, *, commits: int, signed: int) -> Keys:
    """``commits`` commits on main, every (commits // signed)-th one signed, the four keys in
    turn. Signatures are made in-process (pgpy, cryptography), not by 1,000 gpg calls."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gpg_rsa, gpg_ed = pgp_key(EMAIL, rsa_bits=2048), pgp_key(EMAIL)
    ssh_ed = ed25519.Ed25519PrivateKey.generate()
    ssh_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signers: list[Any] = [
        lambda p: pgp_sign(gpg_rsa, p),
        lambda p: pgp_sign(gpg_ed, p),
        lambda p: ssh_sign(ssh_ed, p),
        lambda p: ssh_sign(ssh_rsa, p),
    ]
    repo = pygit2.init_repository(str(path), bare=True)
    blob = repo.create_blob(b"synthetic\n")
    builder = repo.TreeBuilder()
    builder.insert("README", blob, pygit2.enums.FileMode.BLOB)
    tree = builder.write()
    every = max(1, commits // signed)
    head: pygit2.Oid | None = None
    made = 0
    for n in range(commits):
        person = pygit2.Signature("Dev", EMAIL, 1_700_000_000 + n, 0)
        text = repo.create_commit_string(
            person, person, f"commit {n}\n", tree, [head] if head is not None else []
        )
        if n % every == 0 and made < signed:
            head = repo.create_commit_with_signature(text, signers[made % 4](text.encode()))
            made += 1
        else:
            head = repo.odb.write(pygit2.enums.ObjectType.COMMIT, text.encode())
    repo.references.create("refs/heads/main", head, force=True)
    return Keys(
        gpg=[str(gpg_rsa.pubkey), str(gpg_ed.pubkey)],
        ssh=[ssh_public_line(ssh_ed), ssh_public_line(ssh_rsa)],
    )


def prepare_gnupg(work: Path, keys: Keys) -> tuple[dict[str, str], Path]:
    home = Path(tempfile.mkdtemp(prefix="gnupg-", dir=work))
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    for armored in keys.gpg:
        subprocess.run(
            ["gpg", "--batch", "--quiet", "--import"],
            input=armored.encode(),
            env=env,
            check=True,
            capture_output=True,
        )
    allowed = work / "allowed_signers"
    allowed.write_text("".join(f'{EMAIL} namespaces="git" {line}\n' for line in keys.ssh))
    return env, allowed


def git_log_seconds(path: Path, env: dict[str, str], allowed: Path) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(
        [
            "git",
            "-C",
            str(path),
            "-c",
            f"gpg.ssh.allowedSignersFile={allowed}",
            "log",
            "--all",
            "--format=%H %G?",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    good = sum(1 for line in done.stdout.splitlines() if line.endswith((" G", " U")))
    return elapsed, good


async def _wait(predicate: Any, *, what: str, interval: float = 0.005) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not await predicate():
        if time.monotonic() > deadline:
            raise HarnessError(f"{what} did not happen within {WAIT_SECONDS:g}s")
        await asyncio.sleep(interval)


async def measure_signatures(
    infra: Infra, *, rounds: int = 3, commits: int = 5000, signed: int = 1000
) -> list[report.Figure]:
    try:
        return await _measure(infra, rounds=rounds, commits=commits, signed=signed)
    except (HarnessError, OSError, TimeoutError, subprocess.CalledProcessError) as exc:
        reason = str(exc)[:2000]
        return [
            report.not_measured(
                "signature_cold", COLD_TITLE, reason=reason, targets=cold_targets()
            ),
            report.not_measured("signature_backfill", BACKFILL_TITLE, reason=reason, targets=[]),
        ]


async def _measure(infra: Infra, *, rounds: int, commits: int, signed: int) -> list[report.Figure]:
    if shutil.which("gpg") is None:
        raise HarnessError("gpg is not installed: no baseline")
    await infra.reset_stream(BENCH_STREAM)
    database_url = await infra.fresh_database("signatures")
    service = service_process(infra, "signature-verifier", database_url=database_url)
    work = Path(tempfile.mkdtemp(prefix="sigbench-", dir=infra.work_dir))
    mirror = work / "synthetic.git"
    keys = await asyncio.to_thread(build_repository, mirror, commits=commits, signed=signed)
    env, allowed = await asyncio.to_thread(prepare_gnupg, work, keys)
    settings = load_settings(
        {}, nats_url=infra.nats_url, database_url=database_url, stream_name=BENCH_STREAM
    )
    service.start()
    try:
        await service.wait_ready()
        bus = await Bus.connect(settings, name="bench-signatures")
        pool = await create_pool(database_url, min_size=1, max_size=4)
        try:
            return await _rounds(
                bus, pool, mirror, keys, env, allowed, rounds=rounds, signed=signed
            )
        finally:
            await pool.close()
            await bus.close()
    finally:
        service.stop()
        shutil.rmtree(work, ignore_errors=True)


async def _stamped(pool: Any, repo: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM signature_verifier.verifications WHERE repo_key = $1", repo
        )
    )


async def _rounds(
    bus: Bus,
    pool: Any,
    mirror: Path,
    keys: Keys,
    env: dict[str, str],
    allowed: Path,
    *,
    rounds: int,
    signed: int,
) -> list[report.Figure]:
    ctx = CallContext(request_id="bench", actor="bench")
    await bus.publish(
        UserCreated(login="dev", name="Dev", emails=[UserEmail(email=EMAIL, verified=True)]),
        aggregate="user:dev",
        actor="bench",
    )
    await _wait(
        lambda: pool.fetchval("SELECT count(*) = 1 FROM signature_verifier.users"), what="user"
    )
    # (j) indexed with no key: every signed commit unknown_key; then the keys arrive.
    await index_mirror(pool, repo="bench/backfill", path=mirror)
    await _wait(lambda: _count_is(pool, "bench/backfill", signed), what="unknown_key rows")
    started = time.perf_counter()
    for armored in keys.gpg:
        await call(
            bus,
            rpc.SERVICE,
            rpc.GPG_KEY_ADD,
            rpc.GpgKeyAddRequest(login="dev", key=rpc.GpgKeyBody(armored_public_key=armored)),
            rpc.GpgKey,
            ctx=ctx,
            timeout=30,
        )
    for line in keys.ssh:
        await call(
            bus,
            rpc.SERVICE,
            rpc.SSH_KEY_ADD,
            rpc.SshKeyAddRequest(login="dev", key=rpc.SshKeyBody(key=line)),
            rpc.SshSigningKey,
            ctx=ctx,
            timeout=30,
        )
    answered = time.perf_counter() - started

    async def backfilled() -> bool:
        row = await pool.fetchrow(
            "SELECT count(*) FILTER (WHERE state = 'done') AS done, coalesce(sum(done), 0) AS n "
            "FROM signature_verifier.key_backfills"
        )
        valid = await pool.fetchval(
            "SELECT count(*) FROM signature_verifier.verifications "
            "WHERE repo_key = 'bench/backfill' AND reason = 'valid'"
        )
        return bool(row["done"] == 4 and row["n"] == signed and valid == signed)

    await _wait(backfilled, what="the backfill")
    backfill_seconds = time.perf_counter() - started
    backfill = report.measured(
        "signature_backfill",
        BACKFILL_TITLE,
        subject={
            "seconds": round(backfill_seconds, 3),
            "uploads_answered_seconds": round(answered, 3),
            "commits": signed,
        },
        targets=[],
        context={"keys": "OpenPGP RSA 2048 + Ed25519, SSH RSA 2048 + Ed25519, 250 commits each"},
    )

    subject_rounds: list[float] = []
    baseline_rounds: list[float] = []
    details: list[dict[str, Any]] = []
    for n in range(rounds):
        base, good = await asyncio.to_thread(git_log_seconds, mirror, env, allowed)
        repo = f"bench/cold-{n}-{uuid.uuid4().hex[:6]}"
        started = time.perf_counter()
        await index_mirror(pool, repo=repo, path=mirror)
        await _wait(lambda repo=repo: _count_is(pool, repo, signed), what="cold verification")
        ours = time.perf_counter() - started
        valid = await pool.fetchval(
            "SELECT count(*) FROM signature_verifier.verifications WHERE repo_key = $1 "
            "AND reason = 'valid'",
            repo,
        )
        baseline_rounds.append(base)
        subject_rounds.append(ours)
        details.append(
            {
                "ours_s": round(ours, 3),
                "git_gpg_s": round(base, 3),
                "valid": valid,
                "gpg_good": good,
            }
        )
    ratio = report.paired_ratio(baseline_rounds, subject_rounds)
    cold = report.measured(
        "signature_cold",
        COLD_TITLE,
        subject={"seconds": round(report.median(subject_rounds), 3), "signed_commits": signed},
        baseline={"seconds": round(report.median(baseline_rounds), 3)},
        baseline_description="git log --all --format='%H %G?' with GnuPG (2 OpenPGP keys "
        "imported) and gpg.ssh.allowedSignersFile (2 SSH keys), same repository",
        ratio_value=ratio,
        ratio_meaning="git+gpg seconds / ours (higher is better)",
        targets=cold_targets(ratio),
        rounds=details,
        context={
            "commits": 5000,
            "workers": os.cpu_count(),
            "start": "index_mirror (as the fetcher calls it) -> every row stamped",
        },
    )
    return [cold, backfill]


async def _count_is(pool: Any, repo: str, expected: int) -> bool:
    return await _stamped(pool, repo) >= expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--commits", type=int, default=5000)
    parser.add_argument("--signed", type=int, default=1000)
    args = parser.parse_args()
    configure_logging(service="bench", level="error")
    infra = Infra.start()
    try:
        figures = asyncio.run(
            measure_signatures(infra, rounds=args.rounds, commits=args.commits, signed=args.signed)
        )
        asyncio.run(infra.drop_databases())
    finally:
        infra.stop()
    print(msgspec.json.format(msgspec.json.encode(figures), indent=2).decode())


if __name__ == "__main__":
    main()
