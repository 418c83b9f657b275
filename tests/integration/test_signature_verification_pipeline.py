"""The verification pipeline on a bare repository the test builds: index → verify (child
processes) → ``commit.verified`` → the cache; key upload → backfill; e-mail verified →
re-stamp; revocation → ``unsigned``; replay → identical rows; ``backfill-all``."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import subprocess
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from pgpy.constants import KeyFlags

from contracts.rpc import signatures as rpc
from services.registry import definition
from services.signature_verifier.signatures import store
from services.signature_verifier.signatures.cli import await_run, start_run
from services.signature_verifier.signatures.index import index_mirror
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import StartService, shared_data, table_digest, wait_until
from tests.integration.signatures_support import (
    RepoBuilder,
    count_events,
    create_user,
    pgp_key,
    pgp_sign,
    rpc_call,
    ssh_public_line,
    ssh_sign,
    verify_email,
)

ANN, LATE, OTHER = "ann@example.com", "ann@late.example", "someone@else.example"
REPO = "acme/widgets"
UTC = dt.UTC


async def _reasons(runtime: Runtime) -> dict[str, tuple[str, bool, bool]]:
    rows = await runtime.pool.fetch(
        "SELECT oid, reason, verified, verified_at IS NOT NULL AS stamped "
        "FROM signature_verifier.verifications WHERE repo_key = $1",
        REPO,
    )
    return {r["oid"]: (r["reason"], r["verified"], r["stamped"]) for r in rows}


async def _all_checked(runtime: Runtime) -> bool:
    open_jobs = await runtime.pool.fetchval(
        "SELECT count(*) FROM signature_verifier.signature_jobs WHERE status <> 'done'"
    )
    unchecked = await runtime.pool.fetchval(
        "SELECT count(*) FROM signature_verifier.signed_commits WHERE checked_version IS NULL"
    )
    return open_jobs == 0 and unchecked == 0


async def _settled(runtime: Runtime) -> None:
    """Every job done and every event the jobs published applied by the projection."""
    await wait_until(lambda: _all_checked(runtime), timeout=30)
    runner = runtime.runners["signatures"]
    last = await runtime.bus.last_sequence_of(runner.projection.subjects)
    await runner.wait_for(last, timeout=10)


async def _add_gpg(runtime: Runtime, key: object) -> rpc.GpgKey:
    return await rpc_call(
        runtime,
        rpc.GPG_KEY_ADD,
        rpc.GpgKeyAddRequest(login="ann", key=rpc.GpgKeyBody(armored_public_key=str(key))),
        rpc.GpgKey,
    )


async def test_pipeline_backfill_restamp_revoke_replay(
    start_service: StartService, settings: Settings
) -> None:
    runtime = await start_service("signature-verifier")
    await create_user(runtime, "ann", (ANN, True), (LATE, False))

    rsa_key = pgp_key(ANN, rsa_bits=2048)
    ed_key = pgp_key(ANN)
    late_key = pgp_key(LATE)
    expired_key = pgp_key(
        ANN, created=dt.datetime(2020, 1, 1, tzinfo=UTC), expires=dt.timedelta(days=30)
    )
    certify_only = pgp_key(ANN, usage={KeyFlags.Certify})
    stranger = pgp_key(ANN)
    ssh_ed = ed25519.Ed25519PrivateKey.generate()
    ssh_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    repo = RepoBuilder(Path(tempfile.mkdtemp(prefix="sigrepo-")) / "widgets.git")
    expected: dict[str, str] = {}
    repo.commit(ANN)  # unsigned: not indexed, reads unsigned
    expected[repo.commit(ANN, sign=lambda p: pgp_sign(rsa_key, p))] = "valid"
    expected[repo.commit(ANN, sign=lambda p: pgp_sign(ed_key, p))] = "valid"
    expected[repo.commit(OTHER, sign=lambda p: pgp_sign(ed_key, p))] = "bad_email"
    late = repo.commit(LATE, sign=lambda p: pgp_sign(late_key, p))
    expected[late] = "unverified_email"
    at = dt.datetime(2020, 6, 1, tzinfo=UTC)
    expected[repo.commit(ANN, sign=lambda p: pgp_sign(expired_key, p, at=at))] = "expired_key"
    expected[repo.commit(ANN, sign=lambda p: pgp_sign(certify_only, p))] = "not_signing_key"
    expected[repo.commit(ANN, sign=lambda p: pgp_sign(rsa_key, p), tamper=True)] = "invalid"
    garbage = "-----BEGIN PGP SIGNATURE-----\n\nZ2FyYmFnZQ==\n-----END PGP SIGNATURE-----\n"
    expected[repo.commit(ANN, sign=garbage)] = "malformed_signature"
    x509 = "-----BEGIN SIGNED MESSAGE-----\nMIIE\n-----END SIGNED MESSAGE-----\n"
    expected[repo.commit(ANN, sign=x509)] = "unknown_signature_type"
    expected[repo.commit(ANN, sign=lambda p: ssh_sign(ssh_ed, p))] = "valid"
    expected[repo.commit(ANN, sign=lambda p: ssh_sign(ssh_rsa, p))] = "valid"
    expected[repo.commit(ANN, sign=lambda p: pgp_sign(stranger, p))] = "unknown_key"

    assert await index_mirror(runtime.pool, repo=REPO, path=repo.path) == len(expected)
    # Incremental: nothing new, nothing indexed.
    assert await index_mirror(runtime.pool, repo=REPO, path=repo.path) == 0
    await _settled(runtime)
    before_keys = await _reasons(runtime)
    assert set(before_keys) == set(expected)
    for oid, reason in expected.items():
        if reason in ("malformed_signature", "unknown_signature_type"):
            assert before_keys[oid][0] == reason
        elif reason == "invalid":
            assert before_keys[oid][0] == "unknown_key"  # no key yet to check it against
        else:
            assert before_keys[oid][0] == "unknown_key", (oid, reason)
    assert await count_events(runtime, "commit.verified") == len(expected)

    added = [
        await _add_gpg(runtime, k.pubkey)
        for k in (rsa_key, ed_key, late_key, expired_key, certify_only)
    ]
    for private in (ssh_ed, ssh_rsa):
        added_ssh = await rpc_call(
            runtime,
            rpc.SSH_KEY_ADD,
            rpc.SshKeyAddRequest(login="ann", key=rpc.SshKeyBody(key=ssh_public_line(private))),
            rpc.SshSigningKey,
        )
    await _settled(runtime)
    stamped = await _reasons(runtime)
    assert {oid: r[0] for oid, r in stamped.items()} == expected
    assert all(r[1] == (r[0] == "valid") for r in stamped.values())
    backfilled = await rpc_call(
        runtime, rpc.GPG_KEY_GET, rpc.KeyRequest(id=added[0].id), rpc.GpgKey
    )
    # The RSA key's commits: the valid one and the tampered one.
    assert backfilled.backfill == rpc.Backfill(state="done", done=2, total=2)
    ssh_view = await rpc_call(
        runtime, rpc.SSH_KEY_GET, rpc.KeyRequest(id=added_ssh.id), rpc.SshSigningKey
    )
    assert ssh_view.backfill == rpc.Backfill(state="done", done=1, total=1)

    # The e-mail on the late key becomes verified: its commit is stamped valid.
    events = await count_events(runtime, "commit.verified")
    await verify_email(runtime, "ann", LATE)
    await wait_until(lambda: _is(runtime, late, "valid"), timeout=30)
    await _settled(runtime)
    assert await count_events(runtime, "commit.verified") == events + 1

    # Revoking the RSA key: its commits read unsigned, not stamped, with an event each.
    events = await count_events(runtime, "commit.verified")
    await rpc_call(runtime, rpc.GPG_KEY_DELETE, rpc.KeyRequest(id=added[0].id), rpc.GpgKey)
    await _settled(runtime)
    revoked = await _reasons(runtime)
    changed = {oid for oid in expected if revoked[oid] != stamped[oid] and oid != late}
    assert len(changed) == 2
    assert all(revoked[oid] == ("unsigned", False, False) for oid in changed)
    assert await count_events(runtime, "commit.verified") == events + 2
    # Re-uploading it stamps them again.
    await _add_gpg(runtime, rsa_key.pubkey)
    await _settled(runtime)
    again = await _reasons(runtime)
    assert {oid: again[oid][0] for oid in changed} == {oid: expected[oid] for oid in changed}

    # backfill-all: everything verified again from scratch, nothing changed, nothing published.
    events = await count_events(runtime, "commit.verified")
    async with runtime.pool.acquire() as conn:
        run_id = await start_run(conn)
        out = io.StringIO()
        assert await await_run(conn, run_id, wait=60, out=out) == 0
    assert f"backfill-all: done {len(expected)}/{len(expected)} (100%)" in out.getvalue()
    assert await count_events(runtime, "commit.verified") == events
    assert await runtime.pool.fetchval(
        "SELECT total FROM signature_verifier.reverify_runs WHERE id = $1", run_id
    ) == len(expected)

    # Replay from zero: identical rows.
    await _settled(runtime)
    await runtime.stop()
    tables = list(store.PROJECTION_TABLES)
    before = await table_digest(settings.database_url, store.SCHEMA, tables)
    replayer = Runtime(
        definition("signature-verifier"), settings.with_(service="signature-verifier")
    )
    await replayer.start(serve=False)
    try:
        assert await replayer.runners["signatures"].replay() > 0
    finally:
        await replayer.stop()
    assert await table_digest(settings.database_url, store.SCHEMA, tables) == before


async def _is(runtime: Runtime, oid: str, reason: str) -> bool:
    return (await _reasons(runtime)).get(oid, ("",))[0] == reason


async def test_openvex_history_agrees_with_gnupg(start_service: StartService) -> None:
    bundle = shared_data("git", "openvex-spec.bundle")
    verdicts = shared_data("git", "openvex-spec.gpg-verdicts.txt").read_text().splitlines()
    web_flow = shared_data("git", "github-web-flow-4AEE18F83AFDEB23.asc").read_text()
    mirror = Path(tempfile.mkdtemp(prefix="openvex-")) / "spec.git"
    clone = ["git", "clone", "--quiet", "--mirror", str(bundle), str(mirror)]
    await asyncio.to_thread(subprocess.run, clone, check=True)
    runtime = await start_service("signature-verifier")
    await create_user(runtime, "web-flow", ("noreply@github.com", True))
    await index_mirror(runtime.pool, repo="openvex/spec", path=mirror)
    await rpc_call(
        runtime,
        rpc.GPG_KEY_ADD,
        rpc.GpgKeyAddRequest(login="web-flow", key=rpc.GpgKeyBody(armored_public_key=web_flow)),
        rpc.GpgKey,
    )
    await _settled(runtime)
    rows = await runtime.pool.fetch(
        "SELECT oid, reason, signature_kind FROM signature_verifier.verifications "
        "WHERE repo_key = 'openvex/spec'"
    )
    ours = {r["oid"]: (r["reason"], r["signature_kind"]) for r in rows}
    meaning = {"G": "valid", "U": "valid", "E": "unknown_key"}
    # GnuPG answers N for every block it cannot read: unsigned commits, but also gitsign
    # (x509) and SSH signatures, which GitHub answers differently.
    unreadable = {None: "unsigned", "x509": "unknown_signature_type", "ssh": "unknown_key"}
    assert len(verdicts) == 72
    seen: dict[tuple[str, str], int] = {}
    for line in verdicts:
        sha, gpg, *_ = line.split()
        reason, kind = ours.get(sha, ("unsigned", None))
        assert reason == (meaning[gpg] if gpg in meaning else unreadable[kind]), (sha, gpg)
        seen[(gpg, reason)] = seen.get((gpg, reason), 0) + 1
    assert seen == {
        ("U", "valid"): 20,
        ("E", "unknown_key"): 15,
        ("N", "unsigned"): 12,
        ("N", "unknown_signature_type"): 21,
        ("N", "unknown_key"): 4,
    }
