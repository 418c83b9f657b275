"""Helpers for the registry metadata tests (no tests here): the scanner + gateway pair, RPC
calls to the scanner's registry as the package protocols make them, stream counts."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import msgspec

from contracts.rpc import registry as rpc
from services.scanner.registry.projection import NAME
from shared.errors import GatehouseError
from shared.jobs import projection_caught_up
from shared.rpc import CallContext, call
from shared.service import Runtime
from tests.conftest import StartService, wait_until
from tests.integration.test_gateway_support import Api, Reply, gateway_api
from tests.integration.test_scan_support import subject_counts

Resp = TypeVar("Resp", bound=msgspec.Struct)


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Registry:
    api: Api
    scanner: Runtime

    async def http(self, method: str, path: str, **kwargs: Any) -> Reply:
        return await self.api.call(method, path, **kwargs)

    async def ask(
        self,
        operation: str,
        request: msgspec.Struct,
        response_type: type[Resp],
        *,
        actor: str = "test",
        command_id: str = "",
    ) -> Resp:
        ctx = CallContext(request_id=str(uuid.uuid4()), actor=actor, command_id=command_id)
        return await call(
            self.api.runtime.bus,
            rpc.SERVICE,
            operation,
            request,
            response_type,
            ctx=ctx,
            timeout=10,
        )

    async def refused(self, operation: str, request: msgspec.Struct) -> GatehouseError:
        """The error ``operation`` answers (fails the test when it succeeds)."""
        try:
            await self.ask(operation, request, msgspec.Struct)
        except GatehouseError as exc:
            return exc
        raise AssertionError(f"{operation} succeeded")

    async def new_repo(
        self, project: str, slug: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        body = {"project_id": project, "slug": slug or f"r-{uuid.uuid4().hex[:8]}", **fields}
        body.setdefault("format", "pypi")
        reply = await self.http("POST", "/api/v1/repos", json=body)
        assert reply.status == 201, reply.body
        return dict(reply.body)

    async def register(
        self,
        repo_id: str,
        path: str,
        *,
        name: str | None = None,
        version: str | None = None,
        kind: str = "wheel",
        size: int = 10,
        digest: str | None = None,
        **fields: Any,
    ) -> rpc.Artifact:
        return await self.ask(
            rpc.ARTIFACT_REGISTER,
            register_request(
                repo_id,
                path,
                name=name,
                version=version,
                kind=kind,
                size=size,
                digest=digest,
                **fields,
            ),
            rpc.Artifact,
        )

    async def fetch(self, repo_id: str, path: str) -> rpc.ArtifactFetchReply:
        request = rpc.ArtifactFetchRequest(repo=rpc.RepositoryRef(id=repo_id), path=path)
        return await self.ask(rpc.ARTIFACT_FETCH, request, rpc.ArtifactFetchReply)

    async def counts(self, subjects: str = ">") -> dict[str, int]:
        return await subject_counts(self.scanner, subjects)

    async def settled(self) -> None:
        """Wait until the registry's jobs (scans on upload, blocks' effects) have done
        everything due now and the projection applied what they published."""
        await settled(self.scanner)


# An SBOM that is never stored: the scan on upload of an artifact naming it fails, so a
# quarantined artifact stays held (tests of the quarantine itself use it).
MISSING_SBOM = digest_of("an SBOM that was never stored")


async def open_registry_jobs(runtime: Runtime) -> int:
    conn = await asyncpg.connect(runtime.settings.database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM scanner.registry_jobs WHERE status IN "
                "('pending', 'running') AND (not_before IS NULL OR not_before <= now())"
            )
        )
    finally:
        await conn.close()


async def settled(scanner: Runtime) -> None:
    runner = scanner.runners[NAME]

    async def quiet() -> bool:
        return (
            await projection_caught_up(scanner.bus, runner)
            and await open_registry_jobs(scanner) == 0
            and await projection_caught_up(scanner.bus, runner)
        )

    await wait_until(quiet, timeout=20)


def register_request(
    repo_id: str,
    path: str,
    *,
    name: str | None = None,
    version: str | None = None,
    kind: str = "wheel",
    size: int = 10,
    digest: str | None = None,
    **fields: Any,
) -> rpc.ArtifactRegisterRequest:
    return rpc.ArtifactRegisterRequest(
        repo=rpc.RepositoryRef(id=repo_id),
        path=path,
        kind=kind,  # type: ignore[arg-type]
        digest=digest or digest_of(path),
        size=size,
        name=name,
        version=version,
        uploaded_by=fields.pop("uploaded_by", "apikey:uploader"),
        **fields,
    )


@asynccontextmanager
async def registry(start_service: StartService, **overrides: Any) -> AsyncIterator[Registry]:
    scanner = await start_service("scanner", **overrides)
    async with gateway_api(start_service, **overrides) as api:
        yield Registry(api=api, scanner=scanner)
