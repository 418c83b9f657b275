"""``gatehouse signatures backfill-all``: index every mirror from scratch and verify every
signed commit again (a deploy-time command, e.g. after an upgrade of the verification).

The command queues a ``reverify_all`` job for the running signature-verifier (its worker
holds the process pool and publishes the verdicts) and follows the run's progress
(``reverify_runs``) with a progress bar on stderr (plain lines when stderr is not a
terminal) until it is done. Exit 0 done, 1 failed or not finished within ``--wait``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from typing import Any, TextIO

import asyncpg

from services.signature_verifier.signatures import store
from services.signature_verifier.signatures.projection import REVERIFY_ALL_JOB
from shared import jobs
from shared.db import connect
from shared.logging import configure_logging
from shared.settings import load_settings

POLL_SECONDS = 0.2
BAR_WIDTH = 30


async def start_run(conn: asyncpg.Connection) -> str:
    """Queue a backfill-all run; its id."""
    run_id = uuid.uuid4().hex
    async with conn.transaction():
        await conn.execute("INSERT INTO signature_verifier.reverify_runs (id) VALUES ($1)", run_id)
        await jobs.enqueue(
            conn,
            store.JOBS_TABLE,
            job_id=f"{REVERIFY_ALL_JOB}:{run_id}",
            kind=REVERIFY_ALL_JOB,
            payload={"run_id": run_id},
            sequence=await store.key_set_version(conn),
        )
    return run_id


def render(state: str, done: int, total: int, *, tty: bool) -> str:
    if state in ("pending", "indexing"):
        return f"backfill-all: {state} …"
    share = done / total if total else 1.0
    if not tty:
        return f"backfill-all: {state} {done}/{total} ({share:.0%})"
    filled = round(share * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    return f"backfill-all [{bar}] {done}/{total} ({share:.0%}) {state}"


async def await_run(
    conn: asyncpg.Connection, run_id: str, *, wait: float, out: TextIO = sys.stderr
) -> int:
    """Follow the run until it ends; 0 done, 1 failed or still running after ``wait``."""
    tty = out.isatty()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    last = ""
    while True:
        row = await conn.fetchrow(
            "SELECT state, done, total, error FROM signature_verifier.reverify_runs WHERE id = $1",
            run_id,
        )
        line = render(row["state"], row["done"], row["total"], tty=tty)
        if line != last:
            # Plain text: one line per change (a log); a terminal: one line redrawn.
            out.write(("\r" + line) if tty else (line + "\n"))
            out.flush()
            last = line
        if row["state"] == "done":
            out.write("\n" if tty else "")
            print(f"re-verified {row['total']} signed commit(s)")
            return 0
        if row["state"] == "failed":
            out.write("\n" if tty else "")
            print(f"backfill-all failed: {row['error']}", file=out)
            return 1
        if loop.time() > deadline:
            out.write("\n" if tty else "")
            print(
                f"backfill-all still {row['state']} after {wait:g}s (run {run_id}; is the "
                "signature-verifier running? it goes on in the background)",
                file=out,
            )
            return 1
        await asyncio.sleep(POLL_SECONDS)


def _cmd(args: argparse.Namespace) -> int:
    configure_logging(service="signatures", level="warning")

    async def run() -> int:
        conn = await connect(load_settings(service="cli").database_url)
        try:
            run_id = await start_run(conn)
            return await await_run(conn, run_id, wait=args.wait)
        finally:
            await conn.close()

    return asyncio.run(run())


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "signatures",
        help="commit signatures: re-verify every repository",
        description="Commit signature verification (the signature-verifier service).",
    )
    ssub = s.add_subparsers(dest="signatures_command", required=True, metavar="command")
    b = ssub.add_parser(
        "backfill-all",
        help="index every mirror from scratch and verify every signed commit again",
        description="Queues the work for the running signature-verifier and shows its "
        "progress; changed verdicts are published as commit.verified.",
    )
    b.add_argument(
        "--wait",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="how long to follow the run (default %(default)s)",
    )
    b.set_defaults(func=_cmd)
