"""Run the fault ring alone and print its figures (a Markdown table) for a note:

    .venv/bin/python -m tests.faults.report [--out fault-ring.json] [--only NAME ...]

Every fault of ``tests/faults`` in turn: the single-node faults against one stack, the loss
of the stream leader against a 3-node JetStream cluster. Exit code 1 when any fault lost,
duplicated or invented a write, or left the audit chain broken.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from shared.logging import configure_logging
from tests.faults.ring import NATS_LEADER_LOSS, SINGLE_NODE_FAULTS, Fault, Row, run_fault, table
from tests.faults.ring import write_report as write_json
from tests.faults.stack import Stack


async def run(faults: list[Fault], *, nats_nodes: int, rows: list[Row]) -> None:
    if not faults:
        return
    stack = Stack.create(nats_nodes=nats_nodes)
    try:
        await stack.start()
        for fault in faults:
            print(f"… {fault.name}", file=sys.stderr, flush=True)
            rows.append(await run_fault(stack, fault, tag=f"r{len(rows)}"))
    finally:
        await asyncio.to_thread(stack.stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.report", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("fault-ring.json"))
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="faults whose name contains one of these words (e.g. gateway cluster PostgreSQL)",
    )
    args = parser.parse_args(argv)
    configure_logging(service="faults", level="warning")

    def chosen(fault: Fault) -> bool:
        return args.only is None or any(word in fault.name for word in args.only)

    rows: list[Row] = []

    async def everything() -> None:
        await run([f for f in SINGLE_NODE_FAULTS if chosen(f)], nats_nodes=1, rows=rows)
        await run([f for f in [NATS_LEADER_LOSS] if chosen(f)], nats_nodes=3, rows=rows)

    asyncio.run(everything())
    write_json(rows, args.out)
    print(table(rows))
    for row in rows:
        for detail in row.details:
            print(f"- {row.fault}: {detail}")
        for answered in row.unacknowledged_answers:
            print(f"- {row.fault}, not acknowledged: {answered}")
    print(f"(written to {args.out})")
    clean = all(
        not (r.lost or r.duplicated or r.phantom or r.incomplete) and r.audit_chain_ok for r in rows
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
