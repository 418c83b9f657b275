"""Registers the signatures part on the signature-verifier's runtime: the signatures
projection (users, keys, the verification cache), the ``gpg_key_*`` / ``ssh_key_*``
endpoints, and the job worker that verifies commits (pool of child processes included)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid

from contracts.rpc import signatures as rpc
from services.signature_verifier.signatures import store
from services.signature_verifier.signatures.handlers import KeyHandlers
from services.signature_verifier.signatures.projection import JOB_KINDS, SignaturesProjection
from services.signature_verifier.signatures.verifier import Verifier
from services.signature_verifier.signatures.worker import VerificationWorker
from shared import jobs
from shared.service import Runtime

RUNNER_KEY = "signatures.runner"
VERIFIER_KEY = "signatures.verifier"
WORKER_KEY = "signatures.worker"
WARM_KEY = "signatures.warming"


async def setup(runtime: Runtime) -> None:
    runner = runtime.add_projection(SignaturesProjection())
    runtime.state[RUNNER_KEY] = runner
    handlers = KeyHandlers(
        pool=runtime.pool, bus=runtime.bus, runner=runner, settings=runtime.settings
    )
    for operation, request_type, handler in (
        (rpc.GPG_KEY_ADD, rpc.GpgKeyAddRequest, handlers.gpg_add),
        (rpc.GPG_KEYS_LIST, rpc.KeysListRequest, handlers.gpg_list),
        (rpc.GPG_KEY_GET, rpc.KeyRequest, handlers.gpg_get),
        (rpc.GPG_KEY_DELETE, rpc.KeyRequest, handlers.gpg_delete),
        (rpc.SSH_KEY_ADD, rpc.SshKeyAddRequest, handlers.ssh_add),
        (rpc.SSH_KEYS_LIST, rpc.KeysListRequest, handlers.ssh_list),
        (rpc.SSH_KEY_GET, rpc.KeyRequest, handlers.ssh_get),
        (rpc.SSH_KEY_DELETE, rpc.KeyRequest, handlers.ssh_delete),
    ):
        runtime.rpc.add(operation, request_type, handler)  # type: ignore[arg-type]

    verifier = Verifier(pool=runtime.pool, bus=runtime.bus)
    runtime.state[VERIFIER_KEY] = verifier
    work = VerificationWorker(pool=runtime.pool, verifier=verifier, settings=runtime.settings)

    async def caught_up() -> bool:
        return await jobs.projection_caught_up(runtime.bus, runner)

    worker = jobs.JobWorker(
        name="signatures",
        pool=runtime.pool,
        database_url=runtime.settings.database_url,
        table=store.JOBS_TABLE,
        kinds=JOB_KINDS,
        handler=work.run,
        caught_up=caught_up,
        wait_progress=jobs.progress_waiter(runner),
        owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        lease_seconds=runtime.settings.job_lease_seconds,
        max_attempts=runtime.settings.job_max_attempts,
        bus=runtime.bus,
        give_up=work.give_up,
    )
    runtime.state[WORKER_KEY] = worker

    async def started() -> None:
        # The children import pgpy in the background: the first verification finds them up.
        runtime.state[WARM_KEY] = asyncio.create_task(verifier.warm())
        worker.start()

    async def stopping() -> None:
        warming = runtime.state.pop(WARM_KEY, None)
        if warming is not None:
            warming.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await warming
        await worker.stop()
        verifier.close()

    runtime.on_started.append(started)
    runtime.on_stopping.append(stopping)
